"""Journal rows to typed records: current rows come back as they were written, older ones get what they lack filled in."""
from __future__ import annotations

import logging
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson
import pytest

from bot.daemon.recovery import restore_orchestrator, tripped_currency
from bot.event_codec import encode_record, payload_json
from bot.events import FillRecord, KillSwitch, PortfolioSnapshot, TradeRecord
from bot.journal import Journal, JournalError
from bot.journal.records import JournalledTrade, kill_switch_record, pending_order_record, portfolio_record, position_record
from bot.trading.actions import OpenPosition
from bot.trading.journalled import PendingOrder
from bot.trading.orders import Order
from tests.journal.builders import journalled_rig, order_as_journalled, position_as_journalled
from tests.support import Rig, candles_from
from tests.trading.helpers import SYMBOL, Session, flat, quiet

LADDER = {"stop_loss_pct": 5, "take_profit": [{"pct": 2, "close_pct": 50}, {"pct": 4, "close_pct": 50}]}


def test_a_journalled_position_comes_back_as_its_record() -> None:
    session = Session(quiet(exits=LADDER))
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 1.0))
    session.bars(flat(100), (100.0, 102.5, 99.5, 102.0))
    position = session.position()
    restored = position_record(position_as_journalled(position))
    assert restored.state == position.record() and restored.rules_kept
    assert (restored.trail_anchor, restored.closed_quantity, restored.exit_value) == (0.0, 0.5, position.exit_value)


def test_a_position_journalled_before_positions_kept_their_rules_takes_the_strategys() -> None:
    session = Session(quiet(exits=LADDER))
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 1.0))
    session.bars(flat(100))
    row = encode_record(session.position().record())
    for key in ("ladder_closes_all", "break_even", "trailing_activation_price", "group"):
        del row[key]
    record = position_record(row)
    assert not record.rules_kept and record.state.trailing_activation_price is None and record.state.group is None
    assert (record.trail_anchor, record.closed_quantity, record.exit_value) == (0.0, 0.0, 0.0)
    after = Session(quiet(exits={**LADDER, "break_even_after_first_take_profit": True}))
    after.orch().positions.restore([record], [], 1, 1)
    restored = after.position()
    assert restored.ladder_closes_all and restored.break_even and restored.stop_loss == record.state.stop_loss


def test_a_pending_order_with_older_schemas_nulls_is_a_market_order_without_rung_or_group() -> None:
    order = Order("s1-3", "s1", SYMBOL, "sell", 0.5, "close", "s1-p1", "signal", 7, 101.0)
    row = {**order_as_journalled(order), "order_type": None, "limit_price": None, "stop_price": None, "rung": None, "pair_group": None}
    pending = pending_order_record(row, "s1")
    assert pending.order == order and pending.pair_group is None
    leg = Order("s1-4", "s1", SYMBOL, "buy", 1.0, "open", "s1-p2", "pair", 7, 101.0, "limit", 100.5, rung=None)
    assert pending_order_record(order_as_journalled(leg, "s1-g2"), "s1").pair_group == "s1-g2"


def test_an_older_portfolio_snapshot_gets_market_value_peak_and_drawdown() -> None:
    old = {"start": 1000.0, "cash": 900.0, "equity": 1050.0, "realised": 30.0, "unrealised": 21.0, "fees": 1.0}
    assert portfolio_record(old) == PortfolioSnapshot(1000.0, 900.0, 1050.0, 30.0, 21.0, 1.0, 150.0, 1050.0, 0.0, 0.0)


def test_recovery_reads_the_journal_as_typed_records(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        rig = journalled_rig(journal)
        rig.start(quiet(exits=LADDER))
        orchestrator = rig.manager.get("s1")
        rig.feed(SYMBOL, candles_from([(100.0, 100.0, 100.0, 100.0)]))
        orchestrator.actions.put(OpenPosition(SYMBOL, "long", 1.0))
        orchestrator.actions.drain()
        (pending,) = journal.order_records("s1")
        assert pending == PendingOrder(orchestrator.positions.pending_orders()[0], None)
        rig.feed(SYMBOL, candles_from([(100.0, 100.0, 100.0, 100.0)], start_ts=1_640_995_260_000))
        (position,) = journal.position_records("s1")
        live = orchestrator.positions.position_on(SYMBOL)
        assert live is not None and position.state == live.record() and position.rules_kept
        stored, booked = journal.portfolio_record("s1"), orchestrator.portfolio.record()
        assert stored is not None and (stored.start, stored.cash, stored.realised, stored.fees) == (booked.start, booked.cash, booked.realised, booked.fees)


# A trade record as each earlier version journalled it: before pairs (no group), before fills were journalled with
# their position change (no fill), and now.
_OLDEST_TRADE: dict[str, Any] = {
    "strategy_id": "s1", "position_id": "s1-p1", "symbol": SYMBOL, "side": "long", "quantity": 1.0, "entry_ts": 0, "entry_price": 100.0,
    "exit_ts": 60_000, "exit_price": 101.0, "pnl": 0.9, "fees": 0.1, "exit_reason": "take_profit_1",
}
_FILL: dict[str, Any] = {"client_id": "s1-4", "symbol": SYMBOL, "side": "sell", "quantity": 1.0, "price": 99.0, "fee": 0.1, "liquidity": "taker", "reason": "stop_loss", "fill_ts": 120_000}


def _journal_with_trades(path: Path, *records: dict[str, Any]) -> None:
    with closing(sqlite3.connect(path)) as conn, conn:
        for number, record in enumerate(records, 1):
            conn.execute(
                "INSERT INTO trades (strategy_id, position_id, exit_ts, ts, seq, record) VALUES ('s1', ?, 0, ?, ?, ?)",
                (f"s1-p{number}", number, number, orjson.dumps(record).decode()),
            )


def test_trades_of_every_earlier_version_come_back_as_typed_records_and_restore_the_counts(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    Journal(path).close()
    with_group = {**_OLDEST_TRADE, "position_id": "s1-p2", "pnl": -1.5, "group": "s1-g1"}
    current = {**_OLDEST_TRADE, "position_id": "s1-p3", "pnl": 2.0, "exit_reason": "stop_loss", "group": None, "fill": _FILL}
    _journal_with_trades(path, _OLDEST_TRADE, with_group, current)
    with Journal(path) as journal:
        oldest, grouped, now = journal.closed_trades("s1")
        assert oldest == JournalledTrade(TradeRecord(**{**_OLDEST_TRADE, "group": None}), None)
        assert (grouped.trade.group, grouped.trade.pnl, grouped.fill) == ("s1-g1", -1.5, None)
        assert now.fill == FillRecord(**_FILL) and now.trade.exit_reason == "stop_loss"
        rig = Rig()
        orchestrator = rig.manager.load(quiet())
        assert restore_orchestrator(journal, orchestrator)["trades"] == 3
        assert (orchestrator.positions.closed_trades, orchestrator.positions.winning_trades) == (3, 2)


def test_a_trade_row_that_does_not_fit_names_the_file_the_row_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    Journal(path).close()
    _journal_with_trades(path, _OLDEST_TRADE, {**_OLDEST_TRADE, "pnl": "0.9"})
    with Journal(path) as journal, pytest.raises(JournalError) as raised:
        journal.closed_trades("s1")
    assert str(raised.value) == f"{path}: table trades, row 2 of 's1', column record: field pnl: expected float, got str"


def test_an_unreadable_trade_row_leaves_the_counters_at_zero_and_the_open_positions_restored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path) as journal:
        rig = journalled_rig(journal)
        rig.start(quiet())
        orchestrator = rig.manager.get("s1")
        rig.feed(SYMBOL, candles_from([(100.0, 100.0, 100.0, 100.0)]))
        orchestrator.actions.put(OpenPosition(SYMBOL, "long", 1.0))
        orchestrator.actions.drain()
        rig.feed(SYMBOL, candles_from([(100.0, 100.0, 100.0, 100.0)], start_ts=1_640_995_260_000))
    _journal_with_trades(path, _OLDEST_TRADE, {**_OLDEST_TRADE, "pnl": "0.9"})
    rig = Rig()
    logger = logging.getLogger("bot.tests")  # the rig's: it does not propagate, and logs criticals only
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.ERROR)
    try:
        with Journal(path) as journal:
            orchestrator = rig.manager.load(quiet())
            counts = restore_orchestrator(journal, orchestrator)
    finally:
        logger.removeHandler(caplog.handler)
        logger.setLevel(logging.CRITICAL)
    assert counts == {"positions": 1, "pending_orders": 0, "trades": 0}
    assert orchestrator.positions.position_on(SYMBOL) is not None and orchestrator.positions.closed_trades == 0
    assert "closed trades unreadable, its trade counters start from 0" in caplog.text and "row 2 of 's1'" in caplog.text


def test_a_journalled_kill_switch_names_its_currency_and_an_older_or_unreadable_one_none() -> None:
    current = payload_json(KillSwitch(1, 0, 0, 120.0, 100.0, "USD", "a")).decode()
    assert current == '{"daily_loss":120.0,"limit":100.0,"currency":"USD","tripped_by":"a"}'
    assert tripped_currency(current) == "USD"
    assert kill_switch_record(current, "meta").currency == "USD"
    # Before tallies were kept per currency: no currency; "" was the one currency of every symbol not written BASE/QUOTE.
    assert tripped_currency('{"daily_loss":120.0,"limit":100.0,"tripped_by":"a"}') is None
    assert tripped_currency('{"daily_loss":120.0,"limit":100.0,"currency":"","tripped_by":"a"}') is None
    for unreadable in ("not json", "[1]", '{"daily_loss":"x","limit":100.0,"currency":"USD","tripped_by":"a"}'):
        assert tripped_currency(unreadable) is None
    with pytest.raises(JournalError, match=r"^meta 'risk.kill_switch': field daily_loss: expected float, got str$"):
        kill_switch_record('{"daily_loss":"x","limit":100.0,"currency":"USD","tripped_by":"a"}', "meta 'risk.kill_switch'")
