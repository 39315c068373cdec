"""Factory cache and cleanup, and the manager's load / activate / deactivate / switch / unload."""
from __future__ import annotations

import gc
import weakref

import pytest

from bot.errors import StrategyError, StrategyStateError, UnknownStrategyError
from bot.events import PositionClosed, PositionOpened, StrategyFault, StrategyStateChanged
from bot.ohlcv import Candle
from bot.trading.actions import OpenPosition
from tests.support import Rig, strategy


def test_factory_returns_the_same_orchestrator_until_evicted() -> None:
    rig = Rig()
    spec = strategy(id="x")
    first = rig.factory.get_or_create(spec)
    assert rig.factory.get_or_create(spec) is first
    assert rig.factory.get_or_create(strategy(id="x", quantity=5)) is first
    assert rig.factory.get_or_create(strategy(id="y")) is not first
    rig.factory.evict("x")
    assert "x" not in rig.factory
    assert rig.factory.get_or_create(spec) is not first


def test_unload_leaves_nothing_alive(btc_candles: list[Candle]) -> None:
    rig = Rig()
    bus_subs_before = rig.services.bus.subscriber_count()
    rig.start(strategy(id="gone", exits={"stop_loss_pct": 1.0}), strategy(id="stays"))
    rig.feed("BTC/USD", btc_candles[:2_000])
    orchestrator = rig.manager.get("gone")
    assert orchestrator.positions.closed_trades > 0
    ref = weakref.ref(orchestrator)
    registry = orchestrator.indicators[("BTC/USD", "1m")]
    del orchestrator
    snapshot = rig.manager.unload("gone")
    assert snapshot["strategy_id"] == "gone" and snapshot["state"] == "unloaded"
    assert "gone" not in rig.factory and "gone" not in rig.manager.ids()
    assert "gone" not in rig.services.risk.tracked()
    assert "gone" not in rig.services.metrics.snapshot()
    assert rig.routed_to("BTC/USD", "1m") == ["stays"]
    assert rig.services.bus.subscriber_count() == bus_subs_before
    # The rig's own event list holds payload dicts, never the orchestrator.
    gc.collect()
    assert ref() is None, gc.get_referrers(ref())
    assert len(registry) == 0  # indicator state cleared during unload
    states = [e.state for e in rig.of_type(StrategyStateChanged, "gone")]
    assert states[-1] == "unloaded"
    rig.feed("BTC/USD", btc_candles[2_000:2_500])  # the survivor keeps running
    assert rig.manager.get("stays").metrics.candles == 2_500


def test_unload_with_close_positions_closes_at_the_last_price(btc_candles: list[Candle]) -> None:
    rig = Rig()
    rig.start(strategy(id="u", exit_threshold=None, analyzers=[{"type": "ema_trend", "params": {"period": 5}}], entry_threshold=1.0))
    rig.feed("BTC/USD", btc_candles[:50])
    orchestrator = rig.manager.get("u")
    assert orchestrator.positions.positions, "ema_trend should be long within 50 candles"
    snapshot = rig.manager.unload("u", close_positions=True)
    assert snapshot["positions"] == []
    closed = rig.of_type(PositionClosed, "u")[-1].trade
    assert closed.exit_reason == "unload" and closed.exit_price == btc_candles[49].close


def test_lifecycle_errors_are_clear() -> None:
    rig = Rig()
    rig.manager.load(strategy(id="s"))
    with pytest.raises(StrategyStateError, match="already loaded"):
        rig.manager.load(strategy(id="s"))
    with pytest.raises(StrategyStateError, match="no candle feed"):
        rig.manager.load(strategy(id="t", symbol="ETH/BTC"))
    with pytest.raises(UnknownStrategyError, match="'nope' is not loaded"):
        rig.manager.activate("nope")
    with pytest.raises(StrategyStateError, match="not active"):
        rig.manager.deactivate("s")
    rig.manager.activate("s")
    with pytest.raises(StrategyStateError, match="already active"):
        rig.manager.activate("s")
    with pytest.raises(ValueError, match="unknown position policy"):
        rig.manager.deactivate("s", "sell-everything")  # type: ignore[arg-type]


def test_activate_warms_up_from_history_so_the_next_candle_can_be_acted_on(btc_candles: list[Candle]) -> None:
    rig = Rig()
    rig.manager.load(strategy(id="late", analyzers=[{"type": "ema_cross", "params": {"fast": 5, "slow": 20}}]))
    rig.feed("BTC/USD", btc_candles[:100])  # loaded but dormant: nothing routed
    orchestrator = rig.manager.get("late")
    assert orchestrator.metrics.candles == 0
    rig.manager.activate("late")
    slow = orchestrator.indicators[("BTC/USD", "1m")].require("ema", period=20)
    assert slow.ready
    # A strategy that saw every candle from the start has the same EMA value.
    reference = Rig()
    reference.start(strategy(id="ref", analyzers=[{"type": "ema_cross", "params": {"fast": 5, "slow": 20}}]))
    reference.feed("BTC/USD", btc_candles[:100])
    assert slow.value == reference.manager.get("ref").indicators[("BTC/USD", "1m")].require("ema", period=20).value


def _open_now(rig: Rig, sid: str) -> None:
    orchestrator = rig.manager.get(sid)
    orchestrator.actions.put(OpenPosition("BTC/USD", "long", 0.1))
    orchestrator.actions.drain()


def test_deactivate_policies(btc_candles: list[Candle]) -> None:
    rig = Rig()
    no_signals = {"exit_threshold": None, "entry_threshold": 1.0, "analyzers": [{"type": "ema_cross", "params": {"fast": 500, "slow": 501}}]}
    for sid in ("manage", "close", "freeze"):
        rig.start(strategy(id=sid, exits={"stop_loss_pct": 0.3}, **no_signals))
    rig.feed("BTC/USD", btc_candles[:1])
    for sid in ("manage", "close", "freeze"):
        _open_now(rig, sid)
    rig.feed("BTC/USD", btc_candles[1:2])  # entries fill at this candle's open
    for sid in ("manage", "close", "freeze"):
        assert len(rig.manager.get(sid).positions.positions) == 1, sid
        rig.manager.deactivate(sid, sid)  # type: ignore[arg-type]
    rig.feed("BTC/USD", btc_candles[2:3_000])
    assert rig.routed_to("BTC/USD", "1m") == []
    # close: closed at the next open after deactivation.
    closed = rig.of_type(PositionClosed, "close")
    assert len(closed) == 1 and closed[0].trade.exit_reason == "deactivate"
    assert closed[0].trade.exit_price == btc_candles[2].open
    # manage: no new entries, but its stop kept being enforced (0.3% is hit within 3,000 minutes).
    managed = rig.of_type(PositionClosed, "manage")
    assert len(managed) == 1 and managed[0].trade.exit_reason == "stop_loss"
    # freeze: untouched, still open, never marked again.
    frozen = rig.manager.get("freeze")
    assert len(frozen.positions.positions) == 1 and not rig.of_type(PositionClosed, "freeze")
    for sid in ("manage", "close", "freeze"):
        assert rig.manager.get(sid).state == "dormant"
        assert len(rig.of_type(PositionOpened, sid)) == 1


def test_switch_routes_later_candles_to_the_second_strategy_only(btc_candles: list[Candle]) -> None:
    rig = Rig()
    rig.start(strategy(id="A"))
    rig.manager.load(strategy(id="B"))
    rig.feed("BTC/USD", btc_candles[:1_000])
    rig.manager.switch("A", "B", "close")
    assert rig.routed_to("BTC/USD", "1m") == ["B"]
    a_before = rig.manager.get("A").metrics.candles
    rig.feed("BTC/USD", btc_candles[1_000:2_000])
    assert rig.manager.get("A").metrics.candles == a_before == 1_000
    assert rig.manager.get("B").metrics.candles == 1_000
    assert rig.manager.get("A").state == "dormant" and rig.manager.get("B").state == "active"
    assert not rig.manager.get("A").positions.positions
    with pytest.raises(StrategyStateError):
        rig.manager.switch("A", "B")


def test_switch_to_a_strategy_whose_warm_up_raises_leaves_the_source_trading(btc_candles: list[Candle]) -> None:
    rig = Rig()
    rig.start(strategy(id="A"))
    rig.manager.load(strategy(id="B"))
    rig.feed("BTC/USD", btc_candles[:100])
    target = rig.manager.get("B")

    def broken_warm_up(history: object, resume_after: object = None) -> int:
        raise RuntimeError("indicator exploded")

    target.warm_up = broken_warm_up  # type: ignore[method-assign]
    with pytest.raises(StrategyError, match="indicator exploded"):
        rig.manager.switch("A", "B")
    assert rig.manager.get("A").state == "active"
    assert target.state == "failed" and "indicator exploded" in (target.last_error or "")
    assert rig.routed_to("BTC/USD", "1m") == ["A"]
    assert rig.of_type(StrategyFault, "B")
    rig.feed("BTC/USD", btc_candles[100:200])
    assert rig.manager.get("A").metrics.candles == 200
