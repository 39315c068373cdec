"""One log line per event of interest, with the strategy id, for the daemon's stderr; candle gaps summarised per symbol."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.event_codec import payload_of
from bot.events import (
    ActionFailed,
    CandleGap,
    Event,
    FeedState,
    KillSwitch,
    PositionClosed,
    PositionOpened,
    PositionReduced,
    RiskRejected,
    StrategyFault,
    StrategyStateChanged,
)
from bot.fmt import format_fields, format_number, format_price, format_qty

LOGGED_EVENTS: tuple[type[Event], ...] = (
    StrategyStateChanged,
    StrategyFault,
    PositionOpened,
    PositionReduced,
    PositionClosed,
    RiskRejected,
    ActionFailed,
    KillSwitch,
    FeedState,
    CandleGap,
)
_WARNINGS: tuple[type[Event], ...] = (StrategyFault, KillSwitch, RiskRejected)
# At most one gap line per symbol in this many seconds of wall-clock time.
GAP_LINE_INTERVAL = 60.0


@dataclass
class _SymbolGaps:
    """What one symbol's gaps look like since its last gap line."""

    timeframe: str = ""
    held: int = 0  # gaps counted but not logged yet
    missing: int = 0  # candles missing in those gaps
    first_after: int = 0
    last_next: int = 0
    total: int = 0  # gaps logged since the start
    logged_at: float | None = None  # wall-clock seconds of the last line
    seen: set[tuple[str, int]] = field(default_factory=set)  # positions within the looped recording
    told_repeat: bool = False


class GapLines:
    """Candle gaps as summaries: at most one line per symbol per `interval` wall-clock seconds, with counts.

    A looped recording replays the same holes on every pass: a gap at a position of the
    recording already logged (its time modulo `loop_period(symbol)`, None for a symbol that
    does not loop) is not counted again. `clock` is a monotonic clock in seconds; `flush_due`
    logs what waited longer than the interval (the daemon calls it now and then), `flush`
    everything (at stop).
    """

    def __init__(
        self,
        logger: logging.Logger,
        clock: Callable[[], float],
        loop_period: Callable[[str], int | None] = lambda symbol: None,
        interval: float = GAP_LINE_INTERVAL,
    ) -> None:
        self._log = logger
        self._clock = clock
        self._loop_period = loop_period
        self._interval = interval
        self._symbols: dict[str, _SymbolGaps] = {}

    def __call__(self, event: CandleGap) -> None:
        """Count one candle_gap event; log its symbol's line if none was logged within the interval."""
        symbol = event.symbol
        gaps = self._symbols.setdefault(symbol, _SymbolGaps())
        period = self._loop_period(symbol)
        if period:
            position = (event.timeframe, event.after % period)
            if position in gaps.seen:
                if not gaps.told_repeat:
                    gaps.told_repeat = True
                    self._log.info("candle gaps of %s repeat as the recording loops: each is logged once", symbol)
                return
            gaps.seen.add(position)
        if not gaps.held:
            gaps.first_after = event.after
        gaps.timeframe = event.timeframe
        gaps.held += 1
        gaps.missing += event.missing
        gaps.last_next = event.next
        now = self._clock()
        if gaps.logged_at is None or now - gaps.logged_at >= self._interval:
            self._line(symbol, gaps, now)

    def flush_due(self) -> None:
        """Log the held gaps of every symbol whose last line is at least the interval old."""
        now = self._clock()
        for symbol, gaps in self._symbols.items():
            if gaps.held and (gaps.logged_at is None or now - gaps.logged_at >= self._interval):
                self._line(symbol, gaps, now)

    def flush(self) -> None:
        """Log every held gap now (the daemon is stopping)."""
        now = self._clock()
        for symbol, gaps in self._symbols.items():
            if gaps.held:
                self._line(symbol, gaps, now)

    def _line(self, symbol: str, gaps: _SymbolGaps, now: float) -> None:
        gaps.total += gaps.held
        if gaps.held == 1:
            fields = {"symbol": symbol, "timeframe": gaps.timeframe, "missing": gaps.missing, "after": gaps.first_after, "next": gaps.last_next, "total": gaps.total}
            self._log.warning("candle gap %s", format_fields(fields))
        else:
            fields = {
                "symbol": symbol,
                "timeframe": gaps.timeframe,
                "gaps": gaps.held,
                "missing": gaps.missing,
                "since": gaps.first_after,  # the first gap began after this candle
                "until": gaps.last_next,  # the last gap ended at this one
                "total": gaps.total,
            }
            self._log.warning("candle gaps %s", format_fields(fields))
        gaps.held = gaps.missing = 0
        gaps.logged_at = now


class EventLines:
    """A bus subscriber that logs the events an operator wants to see scroll by (candle gaps go to `gaps`)."""

    def __init__(self, logger: logging.Logger, gaps: GapLines) -> None:
        self._log = logger
        self._gaps = gaps

    def __call__(self, event: Event) -> None:
        """Log one event."""
        if isinstance(event, CandleGap):
            self._gaps(event)
            return
        who = f"[{event.strategy_id}] " if event.strategy_id else ""
        if isinstance(event, StrategyStateChanged):
            text = f"{event.change} -> {event.state}" + (f" ({event.policy})" if event.policy else "") + (f": {event.error}" if event.error else "")
        elif isinstance(event, PositionOpened):
            position = event.position
            stop = "no stop" if position.stop_loss is None else f"stop {format_price(position.stop_loss)}"
            text = f"opened {position.side} {format_qty(position.quantity)} {position.symbol} @ {format_price(position.entry_price)} ({stop})"
        elif isinstance(event, PositionReduced):
            text = f"reduced {event.position.position_id} by {format_qty(event.closed_quantity)} @ {format_price(event.price)} ({event.reason})"
        elif isinstance(event, PositionClosed):
            trade = event.trade
            text = f"closed {trade.position_id} @ {format_price(trade.exit_price)} ({trade.exit_reason}), pnl {format_number(trade.pnl)}"
        elif isinstance(event, RiskRejected):
            text = f"entry refused by {event.rule}: {event.reason}"
        elif isinstance(event, StrategyFault):
            text = f"error: {event.error} ({event.note})"
        else:
            text = f"{event.type} {format_fields(payload_of(event))}"
        self._log.log(logging.WARNING if isinstance(event, _WARNINGS) else logging.INFO, "%s%s", who, text)
