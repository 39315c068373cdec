"""The daemon's candle feeds behind one interface: recorded candles, or live candles from a ccxt exchange.

`bot run` trades on whichever `feed.source` names. The recorded feed publishes files clock-driven
(bot/daemon/feed.py); `LiveFeed` wraps bot/live's LiveCandleFeed: a REST backfill up to now, then
the websocket stream (or polling), every closed candle into the candle hub, every per-symbol state
change a market-wide `feed_state` event. Event time is then the wall clock, not the candle clock.
ccxt is imported only when a live feed is built: other commands never pay for it.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

import anyio
from anyio.abc import TaskStatus

from bot.bus import EventBus
from bot.candles.hub import CandleHub
from bot.candles.sources import CandleSource
from bot.config.exchange import DEFAULT_START_TIMEOUT_S, LiveFeedConfig
from bot.daemon.feed import RecordedFeed
from bot.errors import BotError, FeedStateError
from bot.events import FeedState
from bot.ohlcv import Candle, timeframe_ms

if TYPE_CHECKING:
    from bot.live.ccxt_feed import LiveCandleFeed

# Per-symbol live states that make the daemon's health "degraded" while they last.
TROUBLED = ("reconnecting", "stale", "failed")
_CLOSE_TIMEOUT_S = 5.0


class DaemonFeed(Protocol):
    """What the daemon and its control commands need from a feed."""

    @property
    def source(self) -> str:
        """`recorded` or `ccxt`."""

    @property
    def state(self) -> str:
        """The feed as a whole: starting, backfilling, playing, then ended, stopped or failed."""

    @property
    def published(self) -> int:
        """Candles published so far, backfill included."""

    @property
    def last_close(self) -> int | None:
        """Close time of the newest candle published while playing (the restart point once processed)."""

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Backfill, report started, then publish until stopped."""

    def stop(self) -> None:
        """Stop publishing; `run` returns."""

    def status(self) -> dict[str, Any]:
        """The `feed` entry of the `status` command (state and candles at least)."""

    def problems(self) -> list[str]:
        """What makes the daemon's health degraded, in words (empty when healthy)."""

    def add_source(self, source: CandleSource, now_ms: int) -> int:
        """Add a symbol mid-session from a recorded file; FeedCannotAddSymbol when this feed cannot."""

    def remove_source(self, symbol: str) -> None:
        """Stop a symbol added mid-session (no strategy may use it); FeedCannotAddSymbol when this feed cannot."""


class FeedCannotAddSymbol(FeedStateError):
    """The feed takes no new symbol while running."""


class LiveFeedError(BotError):
    """The live feed cannot start or cannot go on (unknown symbol, exchange refusing us, a bug)."""


class PlayedFeed(RecordedFeed):
    """The recorded feed with the status and health the control commands read."""

    source = "recorded"

    def status(self) -> dict[str, Any]:
        """State and candles published."""
        return {"source": self.source, "state": self.state, "candles": self.published}

    def problems(self) -> list[str]:
        """`feed stopped` once it stopped (an ended recording is not a problem)."""
        return ["feed stopped"] if self.state == "stopped" else []


class _OnBackfilled:
    """The task status LiveCandleFeed.run reports to: runs the daemon feed's hook, then tells the daemon."""

    def __init__(self, hook: Callable[[], None], outer: TaskStatus[None]) -> None:
        self._hook = hook
        self._outer = outer
        self.done = False

    def started(self, value: object = None) -> None:
        self._hook()
        self.done = True
        self._outer.started()


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class LiveFeed:
    """Live candles of `settings.symbols` at `settings.timeframe` from a ccxt exchange, for the daemon.

    `run` returns control (task status) once the REST backfill of `settings.backfill` candles
    before now is in the hub: strategies warm up from it and trade from the first live candle.
    With `resume_after` (a restart: the close time of the last candle processed before), the
    candles that closed while the daemon was down are reported as the downtime gap, per symbol.
    A failure before the backfill is done raises LiveFeedError (ExchangeUnreachable when the
    markets did not load within `start_timeout_s`; until then `problems` says why); a symbol
    failing later (an error retrying cannot fix) calls `on_fatal` with the reason: the daemon stops.
    """

    source: Literal["ccxt"] = "ccxt"

    def __init__(
        self,
        exchange: Any,
        settings: LiveFeedConfig,
        hub: CandleHub,
        bus: EventBus,
        logger: logging.Logger,
        *,
        redact: Callable[[str], str] = str,
        resume_after: int | None = None,
        on_published: Callable[[int], None] | None = None,
        on_fatal: Callable[[str], None] | None = None,
        stale_after_s: float | None = None,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
    ) -> None:
        from bot.live.ccxt_feed import LiveCandleFeed  # here: ccxt is slow to import

        if not settings.symbols:
            raise LiveFeedError("exchange.feed.symbols: no symbol to stream")
        self.symbols = list(settings.symbols)
        self.timeframe = settings.timeframe
        self._backfill = settings.backfill
        self._tf_ms = timeframe_ms(settings.timeframe)
        self._hub = hub
        self._bus = bus
        self._log = logger
        self._redact = redact
        self._resume_after = resume_after
        self._on_published = on_published
        self._on_fatal = on_fatal
        for symbol in self.symbols:
            hub.add_feed(symbol, settings.timeframe)
        # LiveCandleFeed logs each state change itself; the daemon logs the feed_state events
        # instead (one line each), so its own lines show only from warnings up, unless debugging.
        feed_log = logger.getChild("feed")
        if logger.getEffectiveLevel() > logging.DEBUG:
            feed_log.setLevel(max(logging.WARNING, logger.getEffectiveLevel()))
        self._live: LiveCandleFeed = LiveCandleFeed(
            exchange, self.symbols, settings, self._candle, self._symbol_state,
            logger=feed_log, redact=redact, stale_after_s=stale_after_s, start_timeout_s=start_timeout_s,
        )
        self._exchange = exchange
        self._closed = False
        self._stopping = False
        self.state = "starting"
        self.published = 0
        self.last_close: int | None = None
        self.downtime: dict[str, Any] | None = None
        self.error: str | None = None

    # -- what the daemon calls ------------------------------------------------------------------
    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Backfill, report started, then stream until `stop`; see the class docstring for failures."""
        self._set_state("backfilling", symbols=self.symbols, timeframe=self.timeframe, backfill=self._backfill)
        status = _OnBackfilled(self._backfilled, task_status)
        try:
            await self._live.run(task_status=status)
        except Exception as exc:
            self.error = self._redact(str(exc)) if isinstance(exc, BotError) else _describe(exc, self._redact)
            if not status.done:
                self._set_state("failed", error=self.error)
                if _unreachable(exc):
                    raise  # says what it is already: "exchange unreachable: ..."
                raise LiveFeedError(f"live feed did not start: {self.error}") from None
            self._log.error("live feed stopped by an error", exc_info=not isinstance(exc, BotError))
            self._fail(self.error)
            return
        if not status.done:
            # Stopped before the backfill was done (a signal during start-up): let the daemon go
            # on to its orderly stop rather than fail its start.
            task_status.started()
        if self.state != "failed":
            self._set_state("stopped")

    def stop(self) -> None:
        """Stop streaming or polling (and an unfinished backfill)."""
        self._stopping = True
        self._live.stop()

    def add_source(self, source: CandleSource, now_ms: int) -> int:
        """Not possible on a live feed: its symbols are fixed while it runs."""
        raise FeedCannotAddSymbol(
            f"adding a symbol at runtime needs the recorded feed; with feed.source ccxt, add {source.symbol} to exchange.feed.symbols and restart"
        )

    def remove_source(self, symbol: str) -> None:
        """Not possible on a live feed: its symbols are fixed while it runs."""
        raise FeedCannotAddSymbol(f"removing a symbol at runtime needs the recorded feed; with feed.source ccxt, remove {symbol} from exchange.feed.symbols and restart")

    def status(self) -> dict[str, Any]:
        """State, candles published, mode, malformed messages skipped, and per symbol its live state."""
        live = self._live.status()
        return {
            "source": self.source,
            "state": self.state,
            "candles": self.published,
            "timeframe": self.timeframe,
            "mode": live["mode"],
            "malformed": live["malformed"],
            "symbols": live["symbols"],
            "downtime": self.downtime,
            "error": self.error,
        }

    def problems(self) -> list[str]:
        """The exchange not answering at start; symbols reconnecting, stale or failed; the feed stopped or failed."""
        found = []
        starting = self._live.start_problem
        if starting is not None:
            found.append(starting)
        for symbol in self.symbols:
            state = self._live.states[symbol]
            if state in TROUBLED:
                error = self._live.details[symbol].get("error")
                found.append(f"feed {symbol} {state}" + (f": {error}" if error else ""))
        if self.state == "failed":
            found.append(f"feed failed: {self.error}")
        elif self.state == "stopped":
            found.append("feed stopped")
        return found

    async def aclose(self) -> None:
        """Close the exchange's connections (once); never raises, never waits more than a few seconds."""
        if self._closed:
            return
        self._closed = True
        await close_exchange(self._exchange, self._redact, self._log)

    # -- callbacks from LiveCandleFeed (its task, synchronous) ------------------------------------
    def _candle(self, symbol: str, timeframe: str, candle: Candle) -> None:
        self._hub.ingest(symbol, candle)
        self.published += 1
        if self.state == "playing":
            close = candle.ts + self._tf_ms
            if self.last_close is None or close > self.last_close:
                self.last_close = close
            if self._on_published is not None:
                self._on_published(close)

    def _symbol_state(self, symbol: str, state: str, detail: dict[str, Any]) -> None:
        self._bus.publish(FeedState, None, state, dict(detail), symbol, self.timeframe)
        if state == "failed" and self.state == "playing":
            self.error = f"{symbol}: {detail.get('error', 'failed')}"
            self._fail(self.error)

    # -- internals ----------------------------------------------------------------------------
    def _set_state(self, state: str, **info: Any) -> None:
        self.state = state
        self._bus.publish(FeedState, None, state, {"source": self.source, "candles": self.published, **info})

    def _fail(self, reason: str) -> None:
        self.state = "failed"
        self._bus.publish(FeedState, None, "failed", {"source": self.source, "candles": self.published, "error": reason})
        if self._on_fatal is not None and not self._stopping:
            self._on_fatal(f"live feed failed: {reason}")

    def _backfilled(self) -> None:
        """The backfill is in the hub: measure the downtime gap (a restart), then play."""
        info: dict[str, Any] = {"mode": self._live.mode}
        if self._resume_after is not None:
            missed: dict[str, int] = {}
            newest = self._resume_after
            for symbol in self.symbols:
                last = self._live.last_ts[symbol]
                if last is None:
                    continue
                close = last + self._tf_ms
                newest = max(newest, close)
                missed[symbol] = max(0, (close - self._resume_after) // self._tf_ms)
            self.downtime = {"after": self._resume_after, "until": newest, "missed": missed}
            info["downtime"] = self.downtime
            if any(missed.values()):
                self._log.warning(
                    "downtime gap: %s closed after %s (the last candle processed before the restart) and before %s; "
                    "they warmed the strategies, nothing was traded on them",
                    ", ".join(f"{n} {symbol} candles" for symbol, n in missed.items()), _iso(self._resume_after), _iso(newest),
                )
        self._set_state("playing", **info)


def _unreachable(exc: BaseException) -> bool:
    from bot.live.markets import (
        ExchangeUnreachable,  # ccxt is loaded by now: a live feed was built
    )

    return isinstance(exc, ExchangeUnreachable)


def _describe(exc: BaseException, redact: Callable[[str], str]) -> str:
    from bot.live.errors import describe  # ccxt is loaded by now: a live feed was built

    return describe(exc, redact)


async def close_exchange(exchange: Any, redact: Callable[[str], str], logger: logging.Logger) -> None:
    """`await exchange.close()`, shielded from cancellation and bounded in time; errors are logged, redacted."""
    with anyio.CancelScope(shield=True):
        try:
            with anyio.fail_after(_CLOSE_TIMEOUT_S):
                await exchange.close()
        except Exception as exc:  # noqa: BLE001  closing is best effort: the process is ending anyway
            logger.warning("closing the exchange connection failed: %s", _describe(exc, redact))
