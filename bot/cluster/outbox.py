"""The hub's outbox: every candle its history takes and every event it publishes, to the cluster's JetStream streams, in order.

Fed synchronously from the candle hub's history observer and a bus subscriber (never blocking
the trading path: two bounded queues, events and candles, each dropping its oldest when full,
counted apart), emptied by one task that publishes events first, each message with its msg-id,
and waits for the server's ack before the next, so each stream keeps the order things happened
in. (No window of publishes in flight: with message k refused for now or unanswered and k+1
acked, k's retry would be stored after k+1.) A publish whose outcome is unknown (a timeout,
the connection lost or reconnecting) is retried with the same msg-id until acked: the server's
duplicate window stores it once; so is one the server refuses for now (503, 500: its store full,
a leader being elected). A message refused for itself (too big, a 400, an answer of no known kind)
or that makes no message is dropped, counted, and the next one published.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
import msgspec
import nats.errors
import nats.js.errors
from anyio.abc import TaskStatus

from bot.cluster.access import ClusterConnectError
from bot.cluster.connection import ClusterConnection, Health
from bot.cluster.error_lines import ErrorLines
from bot.cluster.streams import StreamConfigError, StreamNames, ensure_streams
from bot.event_codec import encode_message
from bot.events import Event
from bot.live.backoff import Backoff
from bot.ohlcv import Candle

# Events waiting at most; beyond, the oldest is dropped (counted). Candles wait in a queue of their own, so a flood of them never pushes an event out.
DEFAULT_CAPACITY: Final[int] = 100_000
# The candle streams (symbol x timeframe) a hub is sized for: the candle queue holds twice the whole history of that many
# (a start's preload while the server is down, and as much again), at least DEFAULT_CAPACITY (a day of 1m candles for ~70 streams).
HUB_STREAMS: Final[int] = 100
# Seconds one publish waits for its ack before its outcome counts as unknown (then retried with the same msg-id).
PUBLISH_TIMEOUT_S: Final[float] = 2.0
# Delays between attempts while the server answers but does not ack (JetStream still starting after a restart).
RETRY_MIN_S: Final[float] = 0.05
RETRY_MAX_S: Final[float] = 2.0
# A publish failed with the connection down waits this long for it to come back before trying again anyway.
RECONNECT_WAIT_S: Final[float] = 5.0
# Errors after which the outcome of a publish is unknown: the message may be stored or not.
_UNKNOWN_OUTCOME: Final = (
    nats.errors.TimeoutError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionClosedError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    TimeoutError,
)
# The server refuses for now what it may take later (503: resources exhausted, a leader being elected; 500): retried like the above.
_REFUSED_FOR_NOW: Final = (nats.js.errors.ServiceUnavailableError, nats.js.errors.ServerError)
# Refusals of one message (too big for the server, a 400 about its content): that message is dropped, the next published.
_REFUSED_MESSAGE: Final = (nats.errors.MaxPayloadError, nats.js.errors.BadRequestError)


@dataclass(frozen=True, slots=True)
class _Candle:
    symbol: str
    timeframe: str
    candle: Candle


def _open_time(data: bytes | None) -> int | None:
    """The open time of a stored candle (ours: its JSON array); None for a message not ours to read."""
    try:
        return msgspec.json.decode(data or b"", type=Candle).ts
    except msgspec.DecodeError:
        return None


def _error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def _describe(item: _Candle | Event) -> str:
    if isinstance(item, _Candle):
        return f"the {item.symbol} {item.timeframe} candle at {item.candle.ts}"
    return f"event {item.seq} ({item.type})"


@dataclass(slots=True)
class _Queue:
    """Candles or events waiting, oldest first, at most `capacity`; `dropped` counts what was lost of them."""

    name: str
    capacity: int
    items: deque[_Candle | Event] = field(default_factory=deque)
    dropped: int = 0


@dataclass(frozen=True, slots=True)
class _Message:
    stream: str
    subject: str
    msg_id: str
    data: bytes
    # A candle's open time (None: an event).
    candle_ts: int | None = None


class Outbox:
    """Publishes the hub's candles (to MD_<cid>) and events (to EVT_<cid>) through `connection`, each exactly once and in order.

    `candle` and `event` are the synchronous observers (the hub's history, the bus); `run` is the
    task in the daemon's task group that connects (retrying forever), makes sure the streams
    exist and publishes; `close` flushes for a bounded time. While the server is down the daemon
    trades on and the outbox buffers up to `capacity` events and as many candles (by default:
    DEFAULT_CAPACITY events, the candles of a start's preload twice over); events are published
    before candles, so candles never push an event out. `health` says degraded and the
    log says so once a minute. `run_id` tells this process's events from an earlier start's,
    since the bus numbers them from 1 each time.
    """

    def __init__(
        self,
        connection: ClusterConnection,
        names: StreamNames,
        exchange: str,
        run_id: str,
        history_size: int,
        logger: logging.Logger,
        *,
        capacity: int | None = None,
        publish_timeout: float = PUBLISH_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity is not None and capacity < 1:
            raise ValueError("the outbox needs room for at least one message")
        self._connection = connection
        self._names = names
        self._exchange = exchange
        self._run_id = run_id
        self._history_size = history_size
        self._log = logger
        self._publish_timeout = publish_timeout
        self._lines = ErrorLines(logger, clock)
        self._events = _Queue("events", capacity or DEFAULT_CAPACITY)
        self._candles = _Queue("candles", capacity or max(DEFAULT_CAPACITY, 2 * history_size * HUB_STREAMS))
        # Set by a drop, cleared when the server next takes a message (health degraded meanwhile; the counts stay).
        self._dropped_since_drained = False
        self._more = anyio.Event()
        # The queue of the message being published (None: none is).
        self._in_flight: _Queue | None = None
        self._drained = anyio.Event()
        self._drained.set()
        self._done = anyio.Event()
        self._scope: anyio.CancelScope | None = None
        self._failure: str | None = None
        self._waiting_since: float | None = None
        self._clock = clock
        self.published = 0
        # Candles not published because the stream holds them already (an earlier start's); and the last open time stored per subject.
        self.skipped = 0
        self._last_stored: dict[str, int | None] = {}

    # -- the trading path's side: synchronous, O(1), never blocks -----------------------------------
    def candle(self, symbol: str, timeframe: str, candle: Candle) -> None:
        """Queue a candle the hub's history took (the hub's history observer)."""
        self._put(_Candle(symbol, timeframe, candle))

    def event(self, event: Event) -> None:
        """Queue an event the bus delivered, so already journalled (a bus subscriber of every type)."""
        self._put(event)

    def _put(self, item: _Candle | Event) -> None:
        queue = self._queue_of(item)
        if self._failure is not None:
            queue.dropped += 1
            return
        if len(queue.items) >= queue.capacity:
            queue.items.popleft()
            queue.dropped += 1
            self._dropped_since_drained = True
            self._lines(
                f"full {queue.name}", f"cluster: the outbox's {queue.name} are full, the oldest dropped ({queue.dropped} dropped in all): {self._why_waiting()}"
            )
        queue.items.append(item)
        if self._drained.is_set():
            self._drained = anyio.Event()
        self._more.set()

    # -- state ----------------------------------------------------------------------------------
    @property
    def backlog(self) -> int:
        """Messages not acked by the server yet (the one being published included)."""
        return len(self._events.items) + len(self._candles.items) + (self._in_flight is not None)

    @property
    def dropped(self) -> int:
        """Candles and events dropped since the start: a full queue's oldest, or a message refused or unpublishable."""
        return self._candles.dropped + self._events.dropped

    @property
    def dropped_candles(self) -> int:
        """Candles dropped since the start."""
        return self._candles.dropped

    @property
    def dropped_events(self) -> int:
        """Events dropped since the start."""
        return self._events.dropped

    @property
    def health(self) -> Health:
        """Connected while the server takes what comes; degraded while it does not (with the backlog); closed once given up."""
        if self._failure is not None:
            return Health("closed", f"{self._failure}; {self.dropped} dropped")
        link = self._connection.health
        dropped = f", {self.dropped} dropped" if self.dropped else ""
        if link.state != "connected" or self._waiting_since is not None:
            return Health("degraded", f"{self._why_waiting()}: {self.backlog} waiting{dropped}")
        if self._dropped_since_drained:
            return Health("degraded", f"{self.dropped} dropped")
        return Health("connected")

    def status(self) -> dict[str, Any]:
        """What `bot ctl status` shows under `cluster`: health, backlog, and the counts since the start."""
        health = self.health
        return {
            "state": health.state,
            "detail": health.detail,
            "url": self._connection.url,
            "backlog": self.backlog,
            "published": self.published,
            "dropped_candles": self.dropped_candles,
            "dropped_events": self.dropped_events,
            "skipped": self.skipped,
        }

    def _why_waiting(self) -> str:
        link = self._connection.health
        if link.state != "connected":
            return link.detail or link.state
        return "the server does not ack" if self._waiting_since is not None else "the outbox is full"

    # -- the publishing task --------------------------------------------------------------------
    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect (retrying forever), make sure the streams exist, then publish what comes until `close`."""
        try:
            with anyio.CancelScope() as scope:
                self._scope = scope
                task_status.started()
                try:
                    await self._connection.connect()
                    await self._ensure_streams()
                    await self._publish_all()
                except (ClusterConnectError, StreamConfigError, nats.js.errors.Error, nats.errors.Error) as exc:
                    # Ours to report, not to trade on: the daemon goes on without the server.
                    self._give_up(str(exc) if isinstance(exc, (ClusterConnectError, StreamConfigError)) else _error(exc))
        finally:
            try:
                # Also when the daemon's start failed and its task group cancelled this task: no client left running.
                with anyio.CancelScope(shield=True):
                    await self._connection.close()
            finally:
                self._done.set()

    def _give_up(self, reason: str) -> None:
        self._failure = reason
        if self._in_flight is not None:
            self._in_flight.dropped += 1
            self._in_flight = None
        for queue in (self._events, self._candles):
            queue.dropped += len(queue.items)
            queue.items.clear()
        self._drained.set()
        self._log.error("cluster: no longer publishing candles and events: %s", reason)

    async def _ensure_streams(self) -> None:
        backoff = Backoff(RETRY_MIN_S, RETRY_MAX_S)
        while True:
            try:
                for line in await ensure_streams(self._connection.jetstream(self._publish_timeout), self._names, self._history_size):
                    self._log.info("cluster: %s", line)
                return
            except (*_UNKNOWN_OUTCOME, *_REFUSED_FOR_NOW, nats.errors.NoRespondersError) as exc:
                await self._wait_to_retry(exc, backoff)

    async def _publish_all(self) -> None:
        while True:
            while not (self._events.items or self._candles.items):
                self._drained.set()
                self._more = anyio.Event()
                await self._more.wait()
            # Events first: they are the audit trail; candles can be read again from the exchange.
            item = (self._events.items or self._candles.items).popleft()
            try:
                message = self._message(item)
            except Exception as exc:  # noqa: BLE001  one item we cannot publish must not end publishing, nor the daemon's task group
                self._drop(self._queue_of(item), "unpublishable", f"cannot make a message of {_describe(item)}: {type(exc).__name__}: {exc}")
                continue
            self._in_flight = self._queue_of(item)
            if isinstance(item, _Candle) and await self._stored_since(message.subject, item.candle.ts):
                self.skipped += 1
                published = False
            else:
                published = await self._publish(message)
                if published and isinstance(item, _Candle):
                    self._last_stored[message.subject] = item.candle.ts
            self._in_flight = None
            self.published += published

    async def _stored_since(self, subject: str, ts: int) -> bool:
        """Whether MD holds a candle of `subject` opened at `ts` or later: one a start before this one published.

        The duplicate window (10 minutes) does not reach back to an earlier start's preload; the
        last message stored on the subject does. Asked once per subject (then known from the acks).
        """
        if subject not in self._last_stored:
            backoff = Backoff(RETRY_MIN_S, RETRY_MAX_S)
            while True:
                try:
                    last = await self._connection.jetstream(self._publish_timeout).get_last_msg(self._names.md, subject)
                except nats.js.errors.NotFoundError:
                    self._last_stored[subject] = None
                    break
                except (*_UNKNOWN_OUTCOME, *_REFUSED_FOR_NOW, nats.errors.NoRespondersError) as exc:
                    await self._wait_to_retry(exc, backoff)
                    continue
                self._last_stored[subject] = _open_time(last.data)
                break
        stored = self._last_stored[subject]
        return stored is not None and ts <= stored

    def _queue_of(self, item: _Candle | Event) -> _Queue:
        return self._candles if isinstance(item, _Candle) else self._events

    def _drop(self, queue: _Queue, kind: str, reason: str) -> None:
        """Count one message of `queue` dropped for a reason of its own; the reason logged once a minute per kind."""
        queue.dropped += 1
        self._dropped_since_drained = True
        self._lines(kind, f"cluster: dropped a message ({self.dropped} dropped in all): {reason}")

    def _message(self, item: _Candle | Event) -> _Message:
        names = self._names
        if isinstance(item, _Candle):
            return _Message(
                names.md,
                names.md_subject(self._exchange, item.symbol, item.timeframe),
                names.md_msg_id(self._exchange, item.symbol, item.timeframe, item.candle.ts),
                msgspec.json.encode(item.candle),
                item.candle.ts,
            )
        return _Message(names.evt, names.evt_subject(item.strategy_id, item.type), names.evt_msg_id(self._run_id, item.seq), encode_message(item))

    async def _publish(self, message: _Message) -> bool:
        """Publish until acked (True) or refused for itself (False: dropped, counted); the same msg-id every time, so a retry of a message the server stored is a duplicate it drops.

        A 400 is taken as about this message (its size, its headers): should a stream's setting make
        every message refused, each is dropped and the log says so once a minute, health degraded.
        """
        backoff = Backoff(RETRY_MIN_S, RETRY_MAX_S)
        js = self._connection.jetstream(self._publish_timeout)
        while True:
            try:
                await js.publish(message.subject, message.data, stream=message.stream, headers={"Nats-Msg-Id": message.msg_id})
            except (*_UNKNOWN_OUTCOME, *_REFUSED_FOR_NOW) as exc:
                await self._wait_to_retry(exc, backoff)
                if message.stream == self._names.md and message.candle_ts is not None:
                    # It may have been stored: after a wait beyond the duplicate window the msg-id would not catch a second copy.
                    self._last_stored.pop(message.subject, None)
                    if await self._stored_since(message.subject, message.candle_ts):
                        return True
                continue
            except _REFUSED_MESSAGE as exc:
                self._drop(self._candles if message.stream == self._names.md else self._events, "refused", f"the server refused {message.msg_id} on {message.subject}: {_error(exc)}")
                return False
            except nats.js.errors.NoStreamResponseError as exc:
                # No stream took the subject: JetStream not up yet after a restart, or a store without our streams.
                await self._wait_to_retry(exc, backoff)
                await self._ensure_streams()  # a StreamConfigError gives up (run), this message counted with the rest
                continue
            except (nats.js.errors.Error, nats.errors.Error) as exc:
                # An answer of no kind above (another API error): about this message as far as we can tell; the next is tried.
                self._drop(self._candles if message.stream == self._names.md else self._events, "failed", f"publishing {message.msg_id} on {message.subject} failed: {_error(exc)}")
                return False
            if self._waiting_since is not None:
                self._log.info("cluster: the server takes candles and events again (%s waiting)", self.backlog)
                self._waiting_since = None
            # Degraded by drops until the server takes a message again: one that refuses all stays degraded.
            self._dropped_since_drained = False
            return True

    async def _wait_to_retry(self, exc: Exception, backoff: Backoff) -> None:
        if self._waiting_since is None:
            self._waiting_since = self._clock()
        self._lines("waiting", f"cluster: candles and events wait for {self._connection.url} ({self._why_waiting()}: {type(exc).__name__}); {self.backlog} waiting")
        if self._connection.health.state != "connected":
            with anyio.move_on_after(RECONNECT_WAIT_S):
                await self._connection.wait_for("connected")
        else:
            await anyio.sleep(backoff.next_delay())

    # -- stop -----------------------------------------------------------------------------------
    async def close(self, timeout: float) -> None:
        """Publish what is waiting for at most `timeout` seconds, then stop the task and close the connection; log what was left."""
        # Even while disconnected: a server back within the bound takes what waits.
        with anyio.move_on_after(timeout):
            await self._drained.wait()
        left = self.backlog if self._failure is None else 0
        if self._scope is not None:
            self._scope.cancel()
            await self._done.wait()  # the task closes the connection as it ends
        else:
            await self._connection.close()
        if left:
            self._log.warning("cluster: stopped with %d candles and events not taken by the server (%d published, %d dropped)", left, self.published, self.dropped)
        else:
            skipped = f", {self.skipped} candles stored by an earlier start" if self.skipped else ""
            self._log.info("cluster: published %d candles and events (%d dropped%s)", self.published, self.dropped, skipped)
