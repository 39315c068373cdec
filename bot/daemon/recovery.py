"""Crash recovery: put strategies back as the journal last recorded them, before any candle is routed."""
from __future__ import annotations

import logging
from typing import Any

from bot.candles.hub import CandleHub
from bot.event_codec import record_json
from bot.events import Event
from bot.journal import Journal, JournalError
from bot.journal.records import JournalRecordError, currency_tally_record, kill_switch_record, strategy_tally_record
from bot.ohlcv import timeframe_ms
from bot.strategy.manager import StrategyManager
from bot.strategy.orchestrator import TradingOrchestrator
from bot.trading.risk import DailyTally, RiskManager

_DAY_MS = 86_400_000

FEED_POSITION = "feed.last_ts"
STRATEGY_FILE = "strategy_file:"
ADDED_SYMBOL = "added_symbol:"
KILL_SWITCH = "risk.kill_switch"
OVERRIDES = "strategy_overrides:"
# A strategy's own daily loss tally (risk.day:<strategy id>), and a currency's global one (risk.day.currency:<code>).
RISK_DAY = "risk.day:"
RISK_CURRENCY_DAY = "risk.day.currency:"


def restore_orchestrator(journal: Journal, orchestrator: TradingOrchestrator, hub: CandleHub | None = None) -> dict[str, Any]:
    """Restore one freshly loaded strategy's positions, pending orders, id counters and portfolio.

    With `hub`, open positions are marked at the latest close it holds for their symbol.
    """
    sid = orchestrator.strategy_id
    try:
        closed = journal.closed_trades(sid)
    except JournalError as exc:
        # History that only feeds the trade counters: its open positions must still be restored and managed.
        orchestrator.log.error("closed trades unreadable, its trade counters start from 0: %s", exc)
        closed = []
    positions = journal.position_records(sid)
    pending = journal.order_records(sid)
    orchestrator.positions.restore(positions, pending, journal.last_order_number(sid), journal.last_position_number(sid))
    portfolio = journal.portfolio_record(sid)
    if portfolio is not None:
        orchestrator.portfolio.restore(portfolio)
    if hub is not None:
        mark_at_last_close(orchestrator, hub)
    orchestrator.positions.closed_trades = len(closed)
    orchestrator.positions.winning_trades = sum(1 for t in closed if t.trade.pnl > 0)
    return {"positions": len(positions), "pending_orders": len(pending), "trades": len(closed)}


def unread_holdings(journal: Journal, orchestrator: TradingOrchestrator) -> list[str]:
    """The symbols the journal holds open positions or pending orders of a strategy on that it does not read
    at its trading timeframe: their fills and stops would never be checked."""
    sid = orchestrator.strategy_id
    held = {p.state.symbol for p in journal.position_records(sid)} | {o.order.symbol for o in journal.order_records(sid)}
    return sorted(held - {symbol for symbol, _ in orchestrator.trading_streams()})


def mark_at_last_close(orchestrator: TradingOrchestrator, hub: CandleHub) -> None:
    """Mark a strategy's open positions at the hub's latest close of their symbol, if it has one."""
    for symbol in {p.symbol for p in orchestrator.positions.positions.values()}:
        last = hub.history(symbol, orchestrator.timeframe, limit=1)
        if last:
            candle = last[0]
            orchestrator.positions.mark_to(symbol, candle.close, candle.ts + timeframe_ms(orchestrator.timeframe))


class DailySnapshots:
    """A bus subscriber (candle events) that journals every strategy's equity once per UTC day.

    Not for candles at or before `after` (the close an earlier run had reached): a restart's backfill
    replays days whose equity that run journalled, and the equity now is not theirs.
    """

    def __init__(self, journal: Journal, manager: StrategyManager, after: int | None = None) -> None:
        self._journal = journal
        self._manager = manager
        self._after = after if after is not None else -1
        self._day: int | None = None

    def __call__(self, event: Event) -> None:
        """On the first candle of a new UTC day, snapshot every loaded strategy."""
        if event.ts <= self._after:
            return
        day = event.ts // _DAY_MS
        if day == self._day:
            return
        self._day = day
        manager = self._manager
        self._journal.snapshot_equities(event.ts, [(sid, manager.get(sid).portfolio.record()) for sid in manager.ids()])


def tripped_currency(kill_switch: str) -> str | None:
    """The currency a journalled kill_switch payload names; None when it names none (an older journal's) or is unreadable."""
    try:
        currency = kill_switch_record(kill_switch, f"meta {KILL_SWITCH!r}").currency
    except JournalError:
        return None
    # "": the one currency an older version counted every symbol not written BASE/QUOTE in, now one group per symbol.
    return currency or None


class DailyTallies:
    """Journals the daily loss tallies after each booking and takes them back at a restart.

    Each strategy's own tally goes under its id, and each currency's global tally under its
    code: a currency's tally sums all of its strategies, so no one strategy's record can hold
    it (restored from strategies' records, the last one restored would win).
    """

    def __init__(self, journal: Journal, risk: RiskManager, log: logging.Logger) -> None:
        self._journal = journal
        self._risk = risk
        self._log = log
        self._told_old = False

    def record(self, strategy_id: str) -> None:
        """After a booking event of `strategy_id`: journal its own tally and every currency tally booked since the last call."""
        own = self._risk.daily_state(strategy_id)
        if own is not None:  # None: booked after its unload (an order settling); its currency's tally still moved
            self._journal.set_meta(RISK_DAY + strategy_id, record_json(own).decode())
        for currency, tally in self._risk.changed_tallies().items():
            self._journal.set_meta(RISK_CURRENCY_DAY + currency, record_json(tally).decode())

    def restore_currencies(self) -> None:
        """At start, before any strategy books: take back every currency's journalled global tally."""
        for currency, text in self._journal.meta_with_prefix(RISK_CURRENCY_DAY).items():
            if currency == "":
                # An older version's one tally of every symbol not written BASE/QUOTE: each such symbol
                # is a currency group of its own now, and a sum over several cannot be split among them.
                self._log.warning(
                    "journal %s: meta %r is the daily loss of all symbols not written BASE/QUOTE together (an older "
                    "version's): each is a currency group of its own now, so their global daily loss counts from the next trade",
                    self._journal.path, RISK_CURRENCY_DAY,
                )
                continue
            key = RISK_CURRENCY_DAY + currency
            try:
                self._risk.restore_tally(currency_tally_record(text, currency, f"{self._journal.path}: meta {key!r}"))
            except JournalRecordError as exc:
                self._log.error(
                    "journal %s: meta %r is not a daily loss tally (%s): the daily loss of %s starts from 0",
                    self._journal.path, key, exc.problem, currency,
                )

    def restore_strategy(self, strategy_id: str) -> None:
        """Take back a freshly loaded strategy's own tally; an unreadable record is logged and the tally starts from 0.

        Never a reason not to load the strategy: its positions must be restored and protected.
        """
        key = RISK_DAY + strategy_id
        text = self._journal.get_meta(key)
        if not text:
            return
        try:
            record = strategy_tally_record(text, f"{self._journal.path}: meta {key!r}")
        except JournalRecordError as exc:
            self._log.error(
                "[%s] journal %s: meta %r is not a daily loss tally (%s): its daily loss starts from 0",
                strategy_id, self._journal.path, key, exc.problem,
            )
            return
        if isinstance(record, DailyTally):
            self._risk.restore_daily(strategy_id, record)
            return
        # An older version's record: its own figure is still the strategy's, always in its own currency; its global
        # one (summed across currencies, or its currency's as this strategy last saw it) is not taken back: the
        # currencies' own records hold the global tallies.
        own = self._risk.daily_state(strategy_id)
        if own is not None and record.day is not None and record.pnl is not None:
            self._risk.restore_daily(strategy_id, DailyTally(own.currency, int(record.day), float(record.pnl)))
        if not self._told_old:
            self._told_old = True
            self._log.warning(
                "the journal's daily loss tallies were written before they were kept per currency: the global "
                "daily loss of before the restart is not carried over (each strategy's own is); the global limits "
                "count from the next trade"
            )
