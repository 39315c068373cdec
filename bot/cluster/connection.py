"""The process's connection to the cluster's NATS server: connect, reconnect forever with backoff, health, nats-py's callbacks to our log.

Its options are set here alone (timeouts, reconnect, callbacks); the cluster's other modules use the client it holds.
"""
from __future__ import annotations

import asyncio
import logging
import random as _random
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from bot.cluster.access import ClusterConnectError, Credentials, read_credentials, tls_context
from bot.cluster.error_lines import ErrorLines
from bot.config.cluster import ClusterConfig
from bot.live.backoff import Backoff

HealthState = Literal["connected", "degraded", "closed"]
# Seconds one attempt may take (TCP, TLS, INFO, CONNECT) before it counts as failed.
CONNECT_TIMEOUT_S = 2
# A server that answers no ping for PING_INTERVAL_S * MAX_OUTSTANDING_PINGS is lost (nats-py's default: 2 minutes each).
PING_INTERVAL_S = 5
MAX_OUTSTANDING_PINGS = 3
# Seconds given to closing the client of a failed attempt.
DISCARD_TIMEOUT_S = 0.5
# Seconds given to closing the connection (flushing what is pending to a server that may be gone).
CLOSE_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class Health:
    """The connection as status shows it: connected, degraded (connecting or reconnecting: `detail` says why) or closed."""

    state: HealthState
    detail: str = ""


class _AttemptFailed(Exception):
    """Raised from the error callback of a first connection attempt, to end that attempt (our loop retries with backoff).

    Not an OSError, nats error or TimeoutError: nats-py's connect catches those and would retry on its own.
    """


def _describe(error: BaseException) -> str:
    text = str(error).removeprefix("nats: ").strip()
    name = type(error).__name__
    return f"{name}: {text}" if text and text != name else name


class ClusterConnection:
    """One process's link to the cluster's NATS server, from the `cluster` config section and the environment.

    `connect()` retries an unreachable server forever with backoff and refuses at once what no
    retry can fix (credentials, certificates: ClusterConnectError naming the url and the setting,
    never a secret). Once connected, nats-py reconnects forever (our backoff) and replays
    subscriptions; `health` says connected, degraded or closed. nats-py's errors go to `logger`,
    one line per kind per minute, never as tracebacks. `label` names the process on the server.
    """

    def __init__(
        self,
        config: ClusterConfig,
        base_dir: Path,
        logger: logging.Logger,
        *,
        label: str,
        environ: Mapping[str, str],
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.config = config
        self.url = config.url
        self._base_dir = base_dir
        self._log = logger
        self._label = label
        self._environ = environ
        self._random = random
        self._errors = ErrorLines(logger, clock)
        self._errors_seen = 0
        self._reconnects = 0
        self._client: Client | None = None
        self._closing = False
        self._health = Health("closed", "not connected yet")
        self._changed = asyncio.Condition()
        self._reconnect_backoff = self._backoff()

    def _backoff(self) -> Backoff:
        return Backoff(self.config.reconnect_min_s, self.config.reconnect_max_s, random=self._random)

    @property
    def health(self) -> Health:
        """The connection's state now."""
        return self._health

    @property
    def errors_seen(self) -> int:
        """How many errors the client reported since this object was made (most are logged only once a minute)."""
        return self._errors_seen

    @property
    def reconnects(self) -> int:
        """How many times the connection came back after a loss (a subscription whose server state may be gone: an ordered consumer)."""
        return self._reconnects

    async def wait_reconnect(self, seen: int) -> int:
        """Return `reconnects` once it is more than `seen` (at once if it is); ClusterConnectError once closed (none will come)."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._reconnects > seen or self._health.state == "closed")
            if self._reconnects > seen:
                return self._reconnects
            raise ClusterConnectError(f"the connection to {self.url} is {self._health.detail or 'closed'}: no reconnect will come")

    @property
    def client(self) -> Client:
        """The nats-py client, for subscriptions and requests; ClusterConnectError before `connect()` or after `close()`."""
        if self._client is None:
            raise ClusterConnectError(f"not connected to {self.url}")
        return self._client

    def jetstream(self, timeout: float = 2.0) -> JetStreamContext:
        """A JetStream context on the connection; a request unanswered within `timeout` seconds raises nats.errors.TimeoutError."""
        return self.client.jetstream(timeout=timeout)

    async def _set(self, health: Health) -> None:
        async with self._changed:
            self._health = health
            self._changed.notify_all()

    async def wait_for(self, state: HealthState) -> Health:
        """Return once the health is `state` (at once if it is); callers bound the wait (asyncio.timeout)."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._health.state == state)
            return self._health

    async def connect(self) -> None:
        """Connect; retry an unreachable server forever with backoff (health degraded); ClusterConnectError for what retrying cannot fix."""
        if self._client is not None:
            raise ClusterConnectError(f"already connected to {self.url}")
        credentials = read_credentials(self.config, self._environ)
        tls = tls_context(self.config.tls, self._base_dir) if self.config.tls is not None else None
        backoff = self._backoff()
        self._closing = False
        await self._set(Health("degraded", f"connecting to {self.url}"))
        while True:
            client = Client()
            # Every error the attempt's client reports, closing included: with TLS 1.3 a refused client
            # certificate may first show as a reset connection, and the server's alert only on close.
            failures: list[Exception] = []
            try:
                await client.connect(**self._options(client, credentials, tls, failures))
            except _AttemptFailed:
                await self._discard(client)
                refusals = [r for r in (self._refusal(error, credentials) for error in failures) if r is not None]
                if refusals:
                    await self._set(Health("closed", refusals[0]))
                    raise ClusterConnectError(refusals[0]) from None
                self._errors_seen += 1
                delay = backoff.next_delay()
                problem = _describe(failures[0])
                self._errors(type(failures[0]).__name__, f"cluster: cannot connect to {self.url} ({problem}); trying again, now every {delay:.1f} s or so")
                await self._set(Health("degraded", f"connecting to {self.url}: {problem}"))
                await asyncio.sleep(delay)
                continue
            except BaseException:
                await self._discard(client)
                raise
            self._client = client
            self._reconnect_backoff.reset()
            self._log.info("cluster: connected to %s as %s", self.url, self._label)
            await self._set(Health("connected"))
            return

    def _options(self, client: Client, credentials: Credentials | None, tls: ssl.SSLContext | None, failures: list[Exception]) -> dict[str, Any]:
        """nats-py's connect options, with callbacks that act only for `client` (a failed attempt's client says nothing)."""
        options: dict[str, Any] = {
            "servers": [self.url],
            "name": self._label,
            "connect_timeout": CONNECT_TIMEOUT_S,
            "ping_interval": PING_INTERVAL_S,
            "max_outstanding_pings": MAX_OUTSTANDING_PINGS,
            # Reconnect forever; the delay between attempts is ours (exponential, jittered).
            "allow_reconnect": True,
            "max_reconnect_attempts": -1,
            "reconnect_to_server_handler": lambda servers, info: (None, self._reconnect_backoff.next_delay()),
            "error_cb": self._guarded(client, self._on_error, failures),
            "disconnected_cb": self._guarded(client, self._on_disconnected),
            "reconnected_cb": self._guarded(client, self._on_reconnected),
            "closed_cb": self._guarded(client, self._on_closed),
        }
        if credentials is not None:
            options["user"] = credentials.user
            options["password"] = credentials.password
        if tls is not None:
            options["tls"] = tls
            if self.config.tls is not None and self.config.tls.server_name is not None:
                options["tls_hostname"] = self.config.tls.server_name
        if self.url.startswith("tls://") or self.config.tls is not None:
            # TLS before anything else: nats-py otherwise upgrades only when the server's plaintext INFO asks, so whoever
            # answers in its place could say it does not and read the credentials in the CONNECT that follows.
            options["tls_handshake_first"] = True
        return options

    def _guarded(self, client: Client, callback: Callable[..., Awaitable[None]], failures: list[Exception] | None = None) -> Callable[..., Awaitable[None]]:
        """`callback` for the connected client; before that, an error (collected in `failures`) ends the attempt."""

        async def guarded(*args: Any) -> None:
            if self._client is client:
                await callback(*args)
            elif failures is not None:
                failures.append(args[0])
                raise _AttemptFailed(args[0])

        return guarded

    async def _on_error(self, error: Exception) -> None:
        self._errors_seen += 1
        self._errors(type(error).__name__, f"cluster: {self.url}: {_describe(error)}")

    async def _on_disconnected(self) -> None:
        if self._closing:
            return
        self._errors("disconnected", f"cluster: lost {self.url}; reconnecting")
        await self._set(Health("degraded", f"reconnecting to {self.url}"))

    async def _on_reconnected(self) -> None:
        self._reconnect_backoff.reset()
        held = self._errors.held()
        self._log.info("cluster: reconnected to %s%s", self.url, f" ({held} errors not logged meanwhile)" if held else "")
        async with self._changed:
            self._reconnects += 1
            self._health = Health("connected")
            # Wakes wait_reconnect as well as wait_for: both read their condition under this lock.
            self._changed.notify_all()

    async def _on_closed(self) -> None:
        if self._closing:
            return
        client = self._client
        cause = client.last_error if client is not None else None
        detail = f"closed by the server or the client: {_describe(cause)}" if cause is not None else "closed"
        self._log.warning("cluster: the connection to %s is %s", self.url, detail)
        await self._set(Health("closed", detail))

    def _refusal(self, error: Exception, credentials: Credentials | None) -> str | None:
        """The operator's message when `error` is one no retry can fix (None: retry)."""
        text = str(error)
        if isinstance(error, nats.errors.AuthorizationError) or "authorization violation" in text.lower():
            if credentials is None:
                return f"{self.url} requires credentials: set cluster.user_env and cluster.password_env to the environment variables holding them"
            return f"{self.url} refused the user and password in {credentials.source} (authorization violation): check those variables and the server's users"
        if isinstance(error, ssl.SSLCertVerificationError):
            trusted = f"the CA in cluster.tls.ca_file ({self.config.tls.ca_file})" if self.config.tls and self.config.tls.ca_file else "the system's CAs"
            hint = "" if self.config.tls and self.config.tls.ca_file else " (set cluster.tls.ca_file to the CA that signed it)"
            return f"{self.url}: the server's certificate is not trusted by {trusted}: {error.verify_message}{hint}"
        if isinstance(error, ssl.SSLError):
            if "CERTIFICATE_REQUIRED" in text:
                return f"{self.url} requires a client certificate: set cluster.tls.cert_file and key_file"
            return f"{self.url}: TLS failed: {_describe(error)} (check cluster.tls and the server's TLS settings)"
        return None

    async def _discard(self, client: Client) -> None:
        """Close a client whose first attempt failed (its socket may be open); it has no callbacks of ours left to run."""
        try:
            # Bounded: after a failed TLS handshake the socket is closed but asyncio's close waiter never resolves (3.11).
            async with asyncio.timeout(DISCARD_TIMEOUT_S):
                await client.close()
        except Exception as exc:  # noqa: BLE001  a failed attempt's leftovers: nothing to recover, the attempt already failed
            self._log.debug("cluster: closing a failed attempt's client: %s", _describe(exc))

    async def close(self) -> None:
        """Close the connection (pending publishes flushed first, for at most CLOSE_TIMEOUT_S); health closed. Safe to call twice.

        Never raises for the connection's own state: closed while nats-py reconnects to a server
        that is down, its close re-raises the reset of the lost socket; logged at debug, closed all the same.
        """
        client = self._client
        self._closing = True
        if client is not None:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await client.close()
            except Exception as exc:  # noqa: BLE001  the client is closed (no reconnect follows) whatever its flush raised
                self._log.debug("cluster: closing the connection to %s: %s", self.url, _describe(exc))
            finally:
                self._client = None
        await self._set(Health("closed", "closed by this process"))
