"""A worker's minds reached over NATS: the hub's MindTransport for a worker process, watched while its replies are awaited."""
from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from time import perf_counter_ns

import nats.errors

from bot.cluster.bridge import ClusterLink
from bot.cluster.lockstep import LockstepError
from bot.cluster.messages import ProtocolError, decode_batch

# Seconds a worker may take over one message before the run stops: far beyond any strategy's candle, short of forever.
REPLY_TIMEOUT_S = 300.0
# How often a wait for replies checks that the worker's process still runs.
WATCH_S = 0.5


class _Pending:
    """Replies on their way from one worker."""

    def __init__(self, future: concurrent.futures.Future[bytes], worker: RemoteMinds) -> None:
        self._future = future
        self._worker = worker

    def result(self) -> list[bytes]:
        """The worker's replies; LockstepError naming the worker when it exited, nothing listens, it took too long, or sending failed."""
        worker = self._worker
        future = self._future
        # Waited on with concurrent.futures.wait, not result(timeout): nats' own TimeoutError is a TimeoutError too.
        while not concurrent.futures.wait([future], timeout=WATCH_S).done:
            code = worker.exited()
            if code is not None:
                future.cancel()
                raise LockstepError(f"worker {worker.name} exited (code {code}) before it answered")
        try:
            data = future.result()
        except nats.errors.NoRespondersError:
            raise LockstepError(f"worker {worker.name}: nothing listens on {worker.subject} (its process is gone)") from None
        except nats.errors.TimeoutError:
            raise LockstepError(f"worker {worker.name}: no answer on {worker.subject} within {worker.timeout_s:g} s") from None
        except nats.errors.MaxPayloadError as exc:
            raise LockstepError(f"worker {worker.name}: a message too large for the server ({exc}): raise max_payload in its configuration") from None
        except Exception as exc:  # noqa: BLE001  whatever the client raised: the run stops, saying what
            raise LockstepError(f"worker {worker.name}: sending on {worker.subject} failed: {type(exc).__name__}: {exc}") from None
        try:
            return decode_batch(data)
        except ProtocolError as exc:
            raise LockstepError(f"worker {worker.name}: {exc}") from None


class RemoteMinds:
    """The minds of one worker process, behind its turn subject (a MindTransport); `exited` is its exit code once it has ended."""

    def __init__(self, link: ClusterLink, name: str, subject: str, exited: Callable[[], int | None], timeout_s: float = REPLY_TIMEOUT_S) -> None:
        self._link = link
        self.name = name
        self.subject = subject
        self.exited = exited
        self.timeout_s = timeout_s
        # Nanoseconds from each message sent to its replies received (on the link's thread): the run's round trips.
        self.round_trips: list[int] = []

    @property
    def max_message_bytes(self) -> int:
        """The largest message the server takes (its max_payload)."""
        return int(self._link.connection.client.max_payload)

    def send(self, message: bytes) -> _Pending:
        """Send `message` on the worker's subject; its replies to wait for."""
        sent = perf_counter_ns()
        future = self._link.submit(self._request(message))
        future.add_done_callback(lambda _: self.round_trips.append(perf_counter_ns() - sent))
        return _Pending(future, self)

    async def _request(self, message: bytes) -> bytes:
        reply = await self._link.connection.client.request(self.subject, message, timeout=self.timeout_s)
        return reply.data
