"""Isolation and tagging: strategies on one symbol never see each other's state or events."""
from __future__ import annotations

from typing import Any

from bot.events import (
    CandleClosed,
    Event,
    MarketEvent,
    OrderFilled,
    OrderSubmitted,
    PositionClosed,
    PositionOpened,
    Signal,
    StrategyEvent,
    StrategyStateChanged,
)
from bot.ohlcv import Candle
from tests.support import Rig, declarative, strategy, without_seq

RSI_EXITS: dict[str, Any] = {
    "timeframe": "5m",
    "analyzers": [{"type": "rsi", "params": {"period": 14}}],
    "exits": {"stop_loss_pct": 1.0, "take_profit": [{"pct": 0.5, "close_pct": 50}, {"pct": 1.0, "close_pct": 50}]},
    "fees": {"taker_bps": 5, "maker_bps": 2},
}


def _strategy_events(rig: Rig, sid: str) -> list[Event]:
    return [without_seq(e) for e in rig.events if e.strategy_id == sid]


def test_two_strategies_on_one_symbol_share_nothing_mutable(btc_candles: list[Candle]) -> None:
    rig = Rig()
    # Same analyzers and timeframe, so each needs the very same indicators: they must still be
    # separate instances.
    a = strategy(id="a", quantity=0.1)
    b = strategy(id="b", quantity=0.3, exits={"stop_loss_pct": 0.5}, fees={"taker_bps": 5})
    rig.start(a, b)
    rig.feed("BTC/USD", btc_candles)
    oa, ob = rig.manager.get("a"), rig.manager.get("b")
    assert oa.portfolio is not ob.portfolio
    assert oa.positions is not ob.positions and oa.positions.positions is not ob.positions.positions
    assert oa.actions is not ob.actions
    assert declarative(oa).analyzers is not declarative(ob).analyzers
    reg_a, reg_b = oa.indicators[("BTC/USD", "1m")], ob.indicators[("BTC/USD", "1m")]
    assert reg_a is not reg_b
    assert reg_a.keys() == reg_b.keys() == ["ema(period=3,source=close)", "ema(period=6,source=close)"]
    assert reg_a.require("ema", period=3) is not reg_b.require("ema", period=3)
    assert reg_a.require("ema", period=3).value == reg_b.require("ema", period=3).value
    assert len(reg_a) == 2  # require() above found, not created
    # Same signals, but b's stop-loss and fees make its trades and balance differ.
    assert oa.portfolio.fees == 0 and ob.portfolio.fees > 0
    assert len(rig.of_type(PositionClosed, "a")) != len(rig.of_type(PositionClosed, "b")) or oa.portfolio.equity != ob.portfolio.equity
    # A strategy's view of positions is its own: position_on (position() with the symbol given) too.
    held_a = oa.strategy.ctx.position_on("BTC/USD")
    assert held_a is oa.strategy.ctx.position("BTC/USD") is oa.positions.position_on("BTC/USD")
    assert held_a is None or held_a.id.startswith("a-p")
    # Both traded, and each one's ids carry its own strategy id only.
    for sid in ("a", "b"):
        fills = rig.of_type(OrderFilled, sid)
        assert fills, f"{sid} never traded on 12,000 real candles"
        assert all(f.fill.client_id.startswith(f"{sid}-") for f in fills)
        opened = rig.of_type(PositionOpened, sid)
        assert all(p.position.position_id.startswith(f"{sid}-p") for p in opened)


def test_a_strategy_behaves_the_same_alone_and_beside_another(btc_candles: list[Candle]) -> None:
    together = Rig()
    together.start(strategy(id="a", quantity=0.1), strategy(id="b", quantity=0.3, **RSI_EXITS))
    together.feed("BTC/USD", btc_candles)
    alone = Rig()
    alone.start(strategy(id="a", quantity=0.1))
    alone.feed("BTC/USD", btc_candles)
    events_together = _strategy_events(together, "a")
    assert len(events_together) > 20
    assert events_together == _strategy_events(alone, "a")
    pa, pb = together.manager.get("a").portfolio, alone.manager.get("a").portfolio
    assert (pa.cash, pa.realised, pa.fees, pa.equity) == (pb.cash, pb.realised, pb.fees, pb.equity)


def test_every_event_is_tagged_by_scope(btc_candles: list[Candle]) -> None:
    rig = Rig()
    rig.start(strategy(id="a"), strategy(id="b", **RSI_EXITS))
    rig.feed("BTC/USD", btc_candles)
    seen_types: set[type[Event]] = set()
    for event in rig.events:
        seen_types.add(type(event))
        if isinstance(event, StrategyEvent):
            assert event.strategy_id in ("a", "b"), event
        else:
            assert isinstance(event, MarketEvent) and event.strategy_id is None, event
    assert {CandleClosed, StrategyStateChanged, Signal, OrderSubmitted, OrderFilled, PositionOpened, PositionClosed} <= seen_types


def test_subscribing_to_one_strategy_gets_only_its_events(btc_candles: list[Candle]) -> None:
    rig = Rig()
    only_b: list[Any] = []
    rig.services.bus.subscribe(only_b.append, strategy_id="b")
    rig.start(strategy(id="a"), strategy(id="b", **RSI_EXITS))
    rig.feed("BTC/USD", btc_candles[:3_000])
    assert only_b and all(e.strategy_id == "b" for e in only_b)
    assert len(only_b) == len([e for e in rig.events if e.strategy_id == "b"])
