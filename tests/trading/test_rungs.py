"""The take-profit rung is a typed field of the order: the ladder sets it, recovery and refusals act on it, reason text never does."""
from __future__ import annotations

from typing import Any

from bot.event_codec import encode_record
from bot.events import OrderFilled, OrderSubmitted, PositionReduced
from bot.journal.records import pending_order_record, position_record
from bot.trading.actions import ClosePercent, OpenPosition
from bot.trading.orders import Order
from tests.journal.builders import order_as_journalled
from tests.trading.helpers import SYMBOL, Session, flat, quiet

LADDER = {"take_profit": [{"pct": 2, "close_pct": 50}, {"pct": 4, "close_pct": 50}]}


def _entered() -> Session:
    session = Session(quiet(exits=LADDER))
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 1.0))
    session.bars(flat(100))
    return session


def _restored(row: dict[str, Any], pending: dict[str, Any]) -> Session:
    """A fresh session whose strategy restores one position and one pending order, as after a crash."""
    after = Session(quiet(exits=LADDER))
    after.orch().positions.restore([position_record(row)], [pending_order_record(pending, "s1")], 2, 1)
    return after


def test_the_ladder_sets_the_rung_on_its_order_and_the_events_carry_it() -> None:
    session = _entered()
    session.bars((100.0, 102.5, 99.5, 102.0))
    (submitted,) = [e for e in session.rig.events if isinstance(e, OrderSubmitted) and e.intent == "close"]
    (reduced,) = [e for e in session.rig.events if isinstance(e, PositionReduced)]
    filled = [e for e in session.rig.events if isinstance(e, OrderFilled)][-1]
    assert (submitted.reason, submitted.rung) == ("take_profit_1", 0)
    assert (reduced.reason, reduced.rung, filled.fill.rung) == ("take_profit_1", 0, 0)


def test_a_strategy_close_named_like_a_rung_in_flight_at_a_crash_leaves_the_ladder_alone() -> None:
    session = _entered()
    position = session.position()
    session.act(ClosePercent(position.id, 50.0, "take_profit_1"))  # market: pending until the next open
    (pending,) = session.orch().positions.pending_orders()
    assert pending.rung is None
    after = _restored(encode_record(position.record()), order_as_journalled(pending))
    # The rung has not fired: it still may (the text named it, the order did not take it).
    assert [tp.done for tp in after.position().take_profits] == [False, False]


def test_a_rung_close_in_flight_at_a_crash_keeps_its_rung_taken() -> None:
    session = _entered()
    position = session.position()
    order = Order("s1-9", "s1", SYMBOL, "sell", 0.5, "close", position.id, "take_profit_1", 0, 102.0, rung=0)
    after = _restored(encode_record(position.record()), order_as_journalled(order))
    assert [tp.done for tp in after.position().take_profits] == [True, False]
