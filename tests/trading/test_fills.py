"""Fill model tests: next-open and close fills, slippage, maker/taker fees, client order ids."""
from __future__ import annotations

import pytest

from bot.events import OrderFilled, OrderSubmitted, PositionClosed, Signal
from bot.trading.actions import ClosePercent, OpenPosition
from tests.support import approx_float, strategy
from tests.trading.helpers import SYMBOL, Row, Session, flat, quiet

# Closes 100..95 then 110: the 3/6 EMA cross happens on the 7th candle's close and on no
# earlier one (fast EMA 96 < slow EMA 97.5 after the 6th; 103 > 101.07 after the 7th).
CROSS_UP: list[Row] = [flat(100), flat(99), flat(98), flat(97), flat(96), flat(95), flat(110)]


def _filled(session: Session, strategy_id: str = "s1") -> list[OrderFilled]:
    return session.events(OrderFilled, strategy_id)


def test_signal_entry_fills_at_next_open() -> None:
    """An entry decided on the 7th close (110) fills at the 8th candle's open (111), not before."""
    session = Session(strategy(exit_threshold=None, quantity=1.0))
    session.bars(*CROSS_UP)
    signals = session.events(Signal)
    assert [(s.decision, s.score, s.close) for s in signals] == [("entry", 1.0, 110)]
    submitted = session.events(OrderSubmitted)
    assert [(o.client_id, o.side, o.quantity, o.intent, o.ref_price) for o in submitted] == [
        ("s1-1", "buy", 1.0, "open", 110)
    ]
    assert _filled(session) == []
    assert session.orch().positions.positions == {}

    session.bars((111.0, 112.0, 110.0, 111.5))
    fills = _filled(session)
    assert [(f.fill.client_id, f.fill.side, f.fill.price, f.fill.quantity, f.fill.liquidity) for f in fills] == [
        ("s1-1", "buy", 111.0, 1.0, "taker")
    ]
    position = session.position()
    assert position.entry_price == 111.0
    assert position.quantity == 1.0


def test_close_model_fills_at_the_deciding_close() -> None:
    """With fill model `close` the entry fills at once at the deciding close, before any next candle."""
    session = Session(strategy(exit_threshold=None, quantity=1.0, fill={"model": "close"}))
    session.bars(*CROSS_UP)
    fills = _filled(session)
    assert [(f.fill.client_id, f.fill.price, f.fill.quantity) for f in fills] == [("s1-1", 110.0, 1.0)]
    assert session.position().entry_price == 110.0
    session.bars((111.0, 112.0, 110.0, 111.5))
    assert len(_filled(session)) == 1


def test_close_model_applies_slippage_to_the_close() -> None:
    """Close model with 25 bps: a buy at close 110 fills at 110 * 1.0025 = 110.275."""
    session = Session(strategy(exit_threshold=None, quantity=1.0, fill={"model": "close", "slippage_bps": 25}))
    session.bars(*CROSS_UP)
    assert _filled(session)[0].fill.price == pytest.approx(110.275, rel=1e-12)


def test_slippage_moves_buy_up_and_sell_down_from_the_open() -> None:
    """10 bps: a buy filled at open 200 pays 200.2; a sell filled at open 300 gets 299.7."""
    session = Session(quiet(fill={"slippage_bps": 10}))
    session.bars(flat(150))
    session.act(OpenPosition(SYMBOL, "long", 1.0))
    session.bars((200.0, 210.0, 190.0, 205.0))
    position = session.position()
    assert position.entry_price == pytest.approx(200.2, rel=1e-12)
    session.act(ClosePercent(position.id, 100.0))
    session.bars((300.0, 310.0, 290.0, 305.0))
    prices = [(f.fill.side, f.fill.price) for f in _filled(session)]
    assert prices == [("buy", approx_float(200.2, rel=1e-12)), ("sell", approx_float(299.7, rel=1e-12))]
    closed = session.events(PositionClosed)
    assert len(closed) == 1
    # realised = 299.7 - 200.2 = 99.5, no fees.
    assert closed[0].trade.pnl == pytest.approx(99.5, rel=1e-12)


def test_short_slippage_sells_lower_and_buys_back_higher() -> None:
    """10 bps on a short: the opening sell at open 200 gets 199.8, the closing buy at 100 pays 100.1."""
    session = Session(quiet(fill={"slippage_bps": 10}))
    session.bars(flat(150))
    session.act(OpenPosition(SYMBOL, "short", 1.0))
    session.bars((200.0, 201.0, 199.0, 200.0))
    position = session.position()
    assert position.side == "short"
    assert position.entry_price == pytest.approx(199.8, rel=1e-12)
    session.act(ClosePercent(position.id, 100.0))
    session.bars((100.0, 101.0, 99.0, 100.0))
    assert [(f.fill.side, f.fill.price) for f in _filled(session)] == [
        ("sell", approx_float(199.8, rel=1e-12)),
        ("buy", approx_float(100.1, rel=1e-12)),
    ]
    # realised = (199.8 - 100.1) * 1 = 99.7
    assert session.events(PositionClosed)[0].trade.pnl == pytest.approx(99.7, rel=1e-12)


def test_market_fills_pay_the_taker_fee() -> None:
    """taker 20 bps, maker 5 bps: market buy 2 @ 100 pays 0.4, market sell 2 @ 110 pays 0.44."""
    session = Session(quiet(quantity=2.0, fees={"taker_bps": 20, "maker_bps": 5}))
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 2.0))
    session.bars(flat(100))
    session.act(ClosePercent(session.position().id, 100.0))
    session.bars(flat(110))
    fills = _filled(session)
    assert [(f.fill.liquidity, f.fill.fee) for f in fills] == [
        ("taker", approx_float(0.4, rel=1e-12)),
        ("taker", approx_float(0.44, rel=1e-12)),
    ]
    closed = session.events(PositionClosed)[0]
    assert closed.trade.fees == pytest.approx(0.84, rel=1e-12)
    # realised 2 * (110 - 100) = 20, net of fees 19.16
    assert closed.trade.pnl == pytest.approx(19.16, rel=1e-12)
    assert session.orch().portfolio.fees == pytest.approx(0.84, rel=1e-12)


def test_take_profit_pays_maker_and_stop_pays_taker() -> None:
    """TP1 (+2%, half) fills 0.5 @ 102 for a maker fee of 0.0255; the stop fills 0.5 @ 98 for a taker fee of 0.098."""
    spec = quiet(
        fees={"taker_bps": 20, "maker_bps": 5},
        exits={"stop_loss_pct": 2, "take_profit": [{"pct": 2, "close_pct": 50}, {"pct": 10, "close_pct": 50}]},
    )
    session = Session(spec)
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 1.0))
    session.bars((100.0, 102.5, 99.5, 101.0))  # fills at 100, TP1 at 102 inside
    session.bars((100.0, 100.5, 97.0, 97.5))  # stop at 98 inside
    fills = _filled(session)
    assert [(f.fill.reason, f.fill.liquidity, f.fill.price, f.fill.quantity, f.fill.fee) for f in fills] == [
        ("signal", "taker", 100.0, 1.0, approx_float(0.2, rel=1e-12)),
        ("take_profit_1", "maker", 102.0, 0.5, approx_float(0.0255, rel=1e-12)),
        ("stop_loss", "taker", 98.0, 0.5, approx_float(0.098, rel=1e-12)),
    ]


def test_client_ids_are_numbered_per_strategy_and_never_collide() -> None:
    """Every order of s1 is s1-1, s1-2, ... and of s2 s2-1, s2-2, ...; the two sets are disjoint."""
    session = Session(quiet(id="s1"), quiet(id="s2", exits={"stop_loss_pct": 5}))
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 1.0), strategy_id="s1")
    session.act(OpenPosition(SYMBOL, "long", 1.0), strategy_id="s2")
    session.bars(flat(100))
    session.act(ClosePercent(session.position("s1").id, 50.0), strategy_id="s1")
    session.bars(flat(101))
    session.act(ClosePercent(session.position("s1").id, 100.0), strategy_id="s1")
    session.bars((101.0, 101.0, 90.0, 92.0))  # s2's stop at 95

    s1_ids = [p.client_id for p in session.events(OrderSubmitted, "s1")]
    s2_ids = [p.client_id for p in session.events(OrderSubmitted, "s2")]
    assert s1_ids == ["s1-1", "s1-2", "s1-3"]
    assert s2_ids == ["s2-1", "s2-2"]
    assert [p.fill.client_id for p in session.events(OrderFilled, "s1")] == s1_ids
    assert [p.fill.client_id for p in session.events(OrderFilled, "s2")] == s2_ids
    assert set(s1_ids).isdisjoint(s2_ids)
