"""An exchange refusing an order: what it reserved is released, and a refused pair leg never leaves its partner alone."""
from __future__ import annotations

from bot.events import ActionFailed, OrderRejected, OrderSubmitted, PositionOpened, RiskRejected
from bot.trading.actions import OpenPair, OpenPosition
from tests.support import candles_from
from tests.trading.helpers import MINUTE, SYMBOL, Session, flat, quiet

OTHER = "ETH/BTC"


def test_a_pair_leg_refused_while_its_partner_is_pending_closes_the_partner_when_it_fills() -> None:
    session = Session(quiet(quantity=1.0, risk={"max_open_positions": 2}))
    session.rig.services.hub.add_feed(OTHER, "1m")
    session.bars(flat(100))
    session.rig.feed(OTHER, candles_from([flat(0.05)], start_ts=session.next_ts - MINUTE, step_ms=MINUTE))
    manager = session.orch().positions
    manager.mark_to(OTHER, 0.05, session.next_ts)
    session.act(OpenPair(OpenPosition(SYMBOL, "long", 1.0), OpenPosition(OTHER, "short", 10.0)))
    assert session.events(ActionFailed) == [] and session.events(RiskRejected) == []
    long_leg, short_leg = manager.pending_orders()
    # The exchange refuses the long leg (as a live account reports it); the short one is still on its way.
    manager._account.cancel_pending()  # take both out of the paper book, as a live account's outcomes would
    manager._account.pending_orders.append(short_leg)
    manager.drop_order(long_leg, "rejected", "insufficient_funds", "Account has insufficient balance")
    assert manager.open_count() == 1
    # Then the exchange reports the short leg filled.
    manager._account.pending_orders.remove(short_leg)
    fill = manager._account.fill_now(short_leg, 0.05, session.next_ts)
    assert fill is not None
    manager.apply_fill(fill)
    opened = session.events(PositionOpened)
    assert [p.position.symbol for p in opened] == [OTHER]
    closes = [o for o in session.events(OrderSubmitted) if o.intent == "close"]
    assert [(c.symbol, c.reason) for c in closes] == [(OTHER, "pair_incomplete")]
    assert [r.kind for r in session.events(OrderRejected)] == ["insufficient_funds"]
