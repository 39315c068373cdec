"""Crash recovery: put strategies back as the journal last recorded them, before any candle is routed."""
from __future__ import annotations

from typing import Any

from bot.candles.hub import CandleHub
from bot.candles.model import timeframe_ms
from bot.events import Event
from bot.journal import Journal
from bot.strategy.manager import StrategyManager
from bot.strategy.orchestrator import TradingOrchestrator

_DAY_MS = 86_400_000

FEED_POSITION = "feed.last_ts"
STRATEGY_FILE = "strategy_file:"
ADDED_SYMBOL = "added_symbol:"
KILL_SWITCH = "risk.kill_switch"
OVERRIDES = "strategy_overrides:"
RISK_DAY = "risk.day:"


def restore_orchestrator(journal: Journal, orchestrator: TradingOrchestrator, hub: CandleHub | None = None) -> dict[str, Any]:
    """Restore one freshly loaded strategy's positions, pending orders, id counters and portfolio.

    With `hub`, open positions are marked at the latest close it holds for their symbol.
    """
    sid = orchestrator.strategy_id
    positions = journal.open_positions(sid)
    pending = journal.pending_orders(sid)
    orchestrator.positions.restore(positions, pending, journal.last_order_number(sid), journal.last_position_number(sid))
    portfolio = journal.portfolio(sid)
    if portfolio is not None:
        orchestrator.portfolio.restore(portfolio)
    if hub is not None:
        mark_at_last_close(orchestrator, hub)
    closed = journal.closed_trades(sid)
    orchestrator.positions.closed_trades = len(closed)
    orchestrator.positions.winning_trades = sum(1 for t in closed if t["pnl"] > 0)
    return {"positions": len(positions), "pending_orders": len(pending), "trades": len(closed)}


def mark_at_last_close(orchestrator: TradingOrchestrator, hub: CandleHub) -> None:
    """Mark a strategy's open positions at the hub's latest close of their symbol, if it has one."""
    for symbol in {p.symbol for p in orchestrator.positions.positions.values()}:
        last = hub.history(symbol, orchestrator.timeframe, limit=1)
        if last:
            candle = last[0]
            orchestrator.positions.mark_to(symbol, candle.close, candle.ts + timeframe_ms(orchestrator.timeframe))


class DailySnapshots:
    """A bus subscriber (candle events) that journals every strategy's equity once per UTC day."""

    def __init__(self, journal: Journal, manager: StrategyManager) -> None:
        self._journal = journal
        self._manager = manager
        self._day: int | None = None

    def __call__(self, event: Event) -> None:
        """On the first candle of a new UTC day, snapshot every loaded strategy."""
        day = event.ts // _DAY_MS
        if day == self._day:
            return
        self._day = day
        for sid in self._manager.ids():
            self._journal.snapshot_equity(sid, event.ts, self._manager.get(sid).portfolio.snapshot())
