"""Journal rows to typed records: current rows come back as they were written, older ones get what they lack filled in."""
from __future__ import annotations

from pathlib import Path

from bot.event_codec import encode_record
from bot.events import PortfolioSnapshot
from bot.journal import Journal
from bot.journal.records import pending_order_record, portfolio_record, position_record
from bot.trading.actions import OpenPosition
from bot.trading.journalled import PendingOrder
from bot.trading.orders import Order
from tests.journal.builders import journalled_rig, order_as_journalled, position_as_journalled
from tests.support import candles_from
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
