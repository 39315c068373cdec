"""Limit entries on the paper exchange: they rest until the price trades through them, and fill as maker."""
from __future__ import annotations

from pathlib import Path

from bot.events import ActionFailed, OrderCancelled, OrderFilled, OrderSubmitted
from bot.trading.actions import OpenPair, OpenPosition
from tests.support import Rig, approx_float, candles_from
from tests.trading.helpers import MINUTE, SYMBOL, T0, Session, flat, quiet

FEES = {"maker_bps": 2.0, "taker_bps": 5.0}


def test_a_limit_buy_rests_until_a_candle_trades_down_to_it_and_fills_at_the_limit_as_maker() -> None:
    session = Session(quiet(fees=FEES, fill={"model": "close", "slippage_bps": 10}))
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 2.0, "dip", limit_price=97.0))
    submitted = session.events(OrderSubmitted)
    assert [(o.order_type, o.limit_price, o.ref_price) for o in submitted] == [("limit", 97.0, 97.0)]
    # The close model fills market orders at once; a limit order waits whatever the model.
    session.bars((100.0, 101.0, 98.0, 99.0), (99.0, 99.5, 97.5, 98.0))
    assert session.events(OrderFilled) == [] and not session.orch().positions.is_flat(SYMBOL)
    session.bars((98.0, 98.5, 96.0, 96.5))
    fills = session.events(OrderFilled)
    assert [(f.fill.price, f.fill.quantity, f.fill.liquidity, f.fill.fee) for f in fills] == [(97.0, 2.0, "maker", approx_float(97.0 * 2 * 2 / 10_000))]
    assert session.position().entry_price == 97.0


def test_a_limit_sell_gapped_through_fills_at_the_better_open() -> None:
    session = Session(quiet(fees=FEES))
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "short", 1.0, "spike", limit_price=103.0))
    session.bars((105.0, 106.0, 104.0, 105.0))
    assert [f.fill.price for f in session.events(OrderFilled)] == [105.0]
    assert session.position().side == "short"


def test_deactivating_cancels_a_resting_limit_entry_and_releases_its_exposure() -> None:
    session = Session(quiet(fees=FEES))
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 1.0, "dip", limit_price=90.0))
    orchestrator = session.orch()
    assert orchestrator.positions.open_count() == 1 and not orchestrator.positions.is_flat(SYMBOL)
    session.rig.manager.deactivate("s1", "manage")
    assert [c.client_id for c in session.events(OrderCancelled)] == ["s1-1"]
    assert orchestrator.positions.open_count() == 0 and orchestrator.positions.is_flat(SYMBOL)
    session.bars((95.0, 95.0, 85.0, 88.0))
    assert session.events(OrderFilled) == []


def test_a_non_positive_limit_price_and_limit_pair_legs_are_refused() -> None:
    session = Session(quiet())
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 1.0, limit_price=0.0))
    session.act(OpenPair(OpenPosition(SYMBOL, "long", 1.0, limit_price=99.0), OpenPosition("ETH/BTC", "short", 1.0)))
    reasons = [f.error for f in session.events(ActionFailed)]
    assert len(reasons) == 2 and "limit price must be positive" in reasons[0] and "market orders" in reasons[1]
    assert session.events(OrderSubmitted) == []


def test_a_limit_entry_resting_at_a_crash_is_restored_as_a_limit_order(tmp_path: Path) -> None:
    from bot.daemon.recovery import restore_orchestrator
    from bot.journal import Journal
    from tests.journal.builders import journalled_rig, order_as_journalled

    with Journal(tmp_path / "journal.sqlite") as journal:
        rig = journalled_rig(journal)
        rig.start(quiet())
        rig.feed(SYMBOL, candles_from([flat(100)], start_ts=T0, step_ms=MINUTE))
        orchestrator = rig.manager.get("s1")
        orchestrator.actions.put(OpenPosition(SYMBOL, "long", 1.0, "dip", limit_price=95.0))
        orchestrator.actions.drain()
        (resting,) = orchestrator.positions.pending_orders()
        assert journal.pending_orders("s1") == [order_as_journalled(resting)]

        after = Rig()
        after.services.hub.ingest(SYMBOL, candles_from([flat(100)], start_ts=T0, step_ms=MINUTE)[0])
        after.manager.load(quiet(), announce=False)
        restore_orchestrator(journal, after.manager.get("s1"))
        (restored,) = after.manager.get("s1").positions.pending_orders()
        assert (restored.client_id, restored.order_type, restored.limit_price) == ("s1-1", "limit", 95.0)
        after.manager.activate("s1")
        after.feed(SYMBOL, candles_from([(99.0, 99.0, 96.0, 97.0), (97.0, 97.0, 94.0, 95.0)], start_ts=T0 + MINUTE, step_ms=MINUTE))
        assert [e.fill.price for e in after.of_type(OrderFilled, "s1")] == [95.0]
