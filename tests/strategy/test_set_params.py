"""A running strategy's params changed in place (`bot ctl set ID params.X V`): the strategy object is rebuilt
inside the same orchestrator, its indicators warmed from the hub's history; its book stays; a refusal changes nothing."""
from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from bot.candles.reader import read_candles
from bot.config.models import BotConfig, StrategyConfig
from bot.daemon.delivery import InboxDelivery
from bot.errors import StrategyError, StrategyStateError
from bot.event_codec import payload_of
from bot.events import PositionClosed, PositionOpened, Signal, StopUpdated, StrategyFault
from bot.kernel import Seams, build_services
from bot.log import BotLogger
from bot.ohlcv import Candle
from bot.strategy.catalog import StrategyCatalog
from bot.strategy.config_load import changed_strategy
from bot.strategy.factory import OrchestratorFactory
from bot.strategy.manager import StrategyManager
from tests.support import ETH_1M, SHARED_DATA, Rig, module_strategy, repo_catalog, strategy

TREND: dict[str, Any] = {"fast": 9, "slow": 21, "trend_timeframe": "1h", "trend_ema": 20, "atr_period": 14, "atr_mult": 3.0}
# The new params: other EMA periods on the trading stream, and another trend timeframe (a stream it did not read).
NEW_TREND: dict[str, Any] = {**TREND, "fast": 5, "trend_timeframe": "30m"}
FAST: dict[str, Any] = {**TREND, "fast": 5}
# Market events and ids aside, what a strategy decided and what came of it.
DECISIONS = ("signal", "order_submitted", "order_filled", "stop_updated", "position_closed", "order_rejected", "action_failed", "strategy_error")
_IDS = ("client_id", "position_id", "portfolio", "fill", "strategy_id")


def trend_spec(params: dict[str, Any], sid: str = "trend_mtf") -> StrategyConfig:
    return module_strategy("trend_mtf", id=sid, timeframe="5m", params=params, exits={"stop_loss_pct": 1.0})


def with_params(rig: Rig, sid: str, params: dict[str, Any]) -> StrategyConfig:
    """The running config of `sid` with new params, validated as `bot ctl set` validates it."""
    spec = rig.manager.get(sid).spec
    return changed_strategy(spec, {"params": params}, rig.factory.catalog, sid)


def decisions(rig: Rig, sid: str, after: int = 0) -> list[tuple[str, int, dict[str, Any]]]:
    """What `sid` decided and what came of it, published after `after`, without ids (numbering continues in a rebuilt one)."""
    return [
        (e.type, e.ts, {k: v for k, v in payload_of(e).items() if k not in _IDS})
        for e in rig.events
        if e.type in DECISIONS and e.strategy_id == sid and e.ts > after
    ]


def flat(rig: Rig, sid: str) -> bool:
    positions = rig.manager.get(sid).positions
    return not positions.positions and not positions.pending_orders()


def feed_until(rig: Rig, candles: Iterator[Candle], done: Callable[[], bool]) -> int:
    """Feed BTC/USD candles one by one until `done()`; the number fed."""
    for n, candle in enumerate(candles, 1):
        rig.feed("BTC/USD", [candle])
        if done():
            return n
    raise AssertionError("the recording ended first")


def test_new_params_decide_the_next_candle_as_a_fresh_strategy_warmed_on_the_same_history(btc_candles: list[Candle]) -> None:
    rig = Rig(catalog=repo_catalog())
    rig.start(trend_spec(TREND), strategy(id="other", timeframe="5m"))
    orchestrator = rig.manager.get("trend_mtf")
    old_object = orchestrator.strategy
    # Set at a moment it is flat, after at least three of its trades: from there it and a fresh one are in the same place.
    fed = feed_until(rig, iter(btc_candles), lambda: len(rig.of_type(PositionClosed, "trend_mtf")) >= 3 and flat(rig, "trend_mtf"))
    now = btc_candles[fed - 1].ts + 60_000
    trades_before = len(rig.of_type(PositionClosed, "trend_mtf"))
    cash_before = orchestrator.portfolio.cash

    assert rig.manager.reconfigure("trend_mtf", with_params(rig, "trend_mtf", NEW_TREND)) == ["params"]

    # The same orchestrator (its book and counters), a new strategy object reading the new streams, warm at once.
    assert rig.manager.get("trend_mtf") is orchestrator and rig.factory.get("trend_mtf") is orchestrator
    assert orchestrator.strategy is not old_object and (orchestrator.strategy.params.fast, orchestrator.strategy.params.trend_timeframe) == (5, "30m")
    assert orchestrator.spec.params == NEW_TREND and orchestrator.state == "active"
    assert orchestrator.subscriptions() == [("BTC/USD", "5m"), ("BTC/USD", "30m")]
    assert rig.routed_to("BTC/USD", "30m") == ["trend_mtf"] and rig.routed_to("BTC/USD", "1h") == []
    assert rig.routed_to("BTC/USD", "5m") == ["trend_mtf", "other"]  # its place among the others' on the streams it kept
    assert orchestrator.is_warm()
    assert orchestrator.portfolio.cash == cash_before and orchestrator.positions.closed_trades == trades_before

    # A fresh strategy with the new params, loaded and started now on the same history (its new 30m stream is
    # derived from the hub's 1m history now, as for the rebuilt one).
    fresh = Rig(catalog=repo_catalog())
    fresh.start(strategy(id="other", timeframe="5m"))
    fresh.feed("BTC/USD", btc_candles[:fed])
    fresh.start(trend_spec(NEW_TREND))
    new_registry = orchestrator.indicators[("BTC/USD", "5m")]
    fresh_registry = fresh.manager.get("trend_mtf").indicators[("BTC/USD", "5m")]
    assert new_registry.keys() == fresh_registry.keys() and "ema(period=5,source=close)" in new_registry.keys()  # noqa: SIM118  a registry has keys(), not `in`
    assert new_registry.require("ema", period=5).value == fresh_registry.require("ema", period=5).value is not None

    rig.feed("BTC/USD", btc_candles[fed:])
    fresh.feed("BTC/USD", btc_candles[fed:])
    after = decisions(rig, "trend_mtf", now)
    assert len([d for d in after if d[0] == "signal"]) >= 3, after
    assert after == decisions(fresh, "trend_mtf", now)
    # The old params would have decided otherwise: the change took effect.
    old = Rig(catalog=repo_catalog())
    old.start(trend_spec(TREND))
    old.feed("BTC/USD", btc_candles)
    assert decisions(old, "trend_mtf", now) != after
    # Isolation: the other strategy on the same symbol never noticed.
    assert decisions(rig, "other") == decisions(fresh, "other") and len(decisions(rig, "other")) > 10


def test_a_position_and_a_pending_entry_are_kept_and_managed_by_the_new_params(btc_candles: list[Candle]) -> None:
    rig = Rig(catalog=repo_catalog())
    rig.start(trend_spec(TREND))
    orchestrator = rig.manager.get("trend_mtf")
    candles = iter(btc_candles)
    # An entry decided on this candle, to be filled at the next one's open.
    feed_until(rig, candles, lambda: bool(orchestrator.positions.pending_orders()))
    pending = [o.client_id for o in orchestrator.positions.pending_orders()]
    rig.manager.reconfigure("trend_mtf", with_params(rig, "trend_mtf", {**TREND, "atr_period": 7, "atr_mult": 1.5}))
    assert [o.client_id for o in orchestrator.positions.pending_orders()] == pending

    # It fills into a position of the same strategy; the new object ratchets its stop with ATR(7) x 1.5 until the stop is hit.
    atr = orchestrator.indicators[("BTC/USD", "5m")].require("atr", period=7)
    ratchets: list[tuple[float | None, float]] = []
    closed_before = len(rig.of_type(PositionClosed, "trend_mtf"))
    while len(rig.of_type(PositionClosed, "trend_mtf")) == closed_before:
        candle = next(candles)
        seen = len(rig.of_type(StopUpdated, "trend_mtf"))
        rig.feed("BTC/USD", [candle])
        for event in rig.of_type(StopUpdated, "trend_mtf")[seen:]:
            ratchets.append((event.stop_loss, candle.close - 1.5 * atr.value))  # type: ignore[operator]
    opened = rig.of_type(PositionOpened, "trend_mtf")[-1]
    assert opened.client_id == pending[0]
    assert ratchets and all(got == pytest.approx(want) for got, want in ratchets), ratchets
    # The old params would have put the stop elsewhere.
    twin = Rig(catalog=repo_catalog())
    twin.start(trend_spec(TREND))
    twin.feed("BTC/USD", btc_candles)
    assert next(e.stop_loss for e in twin.of_type(StopUpdated, "trend_mtf") if e.position_id == opened.position.position_id) != ratchets[0][0]
    closed = rig.of_type(PositionClosed, "trend_mtf")
    assert closed[-1].trade.position_id == opened.position.position_id and closed[-1].trade.exit_reason == "stop_loss"


def test_params_that_do_not_build_leave_the_running_strategy_untouched(btc_candles: list[Candle]) -> None:
    rig = Rig(catalog=repo_catalog())
    rig.start(trend_spec(TREND))
    twin = Rig(catalog=repo_catalog())
    twin.start(trend_spec(TREND))
    rig.feed("BTC/USD", btc_candles[:4000])
    twin.feed("BTC/USD", btc_candles[:4000])
    orchestrator = rig.manager.get("trend_mtf")
    running, spec, indicators = orchestrator.strategy, orchestrator.spec, orchestrator.indicators
    # Valid Params, but the strategy's own constructor refuses a trend timeframe that is not longer than its own.
    with pytest.raises(StrategyError, match=r"trend_timeframe \(5m\) must be longer than the trading timeframe \(5m\)"):
        rig.manager.reconfigure("trend_mtf", with_params(rig, "trend_mtf", {**TREND, "trend_timeframe": "5m"}))
    assert (orchestrator.strategy, orchestrator.spec, orchestrator.indicators) == (running, spec, indicators)
    assert orchestrator.state == "active" and rig.routed_to("BTC/USD", "1h") == ["trend_mtf"]
    rig.feed("BTC/USD", btc_candles[4000:])
    twin.feed("BTC/USD", btc_candles[4000:])
    assert decisions(rig, "trend_mtf") == decisions(twin, "trend_mtf")
    assert not rig.of_type(StrategyFault)


BOOM = '''
from pydantic import Field

from bot.strategy.base import Strategy, StrategyParams


class BoomParams(StrategyParams):
    """Parameters of boom."""

    period: int = Field(default=5, ge=1)
    explode_in_warm_up: bool = False


class Boom(Strategy):
    """Buys when the close is above its EMA; with explode_in_warm_up, its warm-up raises."""

    name = "boom"
    version = "1.0.0"
    Params = BoomParams

    def __init__(self, params, context):
        super().__init__(params, context)
        self.ema = context.indicators().require("ema", period=params.period)

    def on_history(self, symbol, timeframe, candle):
        if self.params.explode_in_warm_up:
            raise RuntimeError("boom while warming up")

    def on_candle(self, symbol, timeframe, candle):
        if self.ema.value is not None and candle.close > self.ema.value and self.ctx.is_flat():
            self.ctx.open("long")
        elif self.ema.value is not None and candle.close < self.ema.value and self.ctx.position() is not None:
            self.ctx.close(self.ctx.position())
'''


def test_a_warm_up_that_raises_refuses_the_change_and_the_strategy_trades_on(tmp_path: Path, btc_candles: list[Candle]) -> None:
    (tmp_path / "boom.py").write_text(BOOM)
    catalog = StrategyCatalog.discover([tmp_path])
    rig, twin = Rig(catalog=catalog), Rig(catalog=catalog)
    for each in (rig, twin):
        each.start(module_strategy("boom", params={"period": 5}))
        each.feed("BTC/USD", btc_candles[:500])
    orchestrator = rig.manager.get("boom")
    running = orchestrator.strategy
    with pytest.raises(StrategyError, match="boom while warming up"):
        rig.manager.reconfigure("boom", with_params(rig, "boom", {"period": 8, "explode_in_warm_up": True}))
    assert orchestrator.strategy is running and orchestrator.spec.params == {"period": 5} and orchestrator.state == "active"
    assert ("BTC/USD", "1m") in orchestrator.indicators and orchestrator.indicators[("BTC/USD", "1m")].keys() == ["ema(period=5,source=close)"]
    for each in (rig, twin):
        each.feed("BTC/USD", btc_candles[500:2000])
    assert decisions(rig, "boom") == decisions(twin, "boom") and len(decisions(rig, "boom")) > 10


def test_a_dormant_strategy_is_rebuilt_its_stops_kept_and_warmed_from_the_whole_history_when_activated(btc_candles: list[Candle]) -> None:
    rig = Rig(catalog=repo_catalog())
    rig.start(trend_spec(TREND))
    orchestrator = rig.manager.get("trend_mtf")
    candles = iter(btc_candles)
    fed = feed_until(rig, candles, lambda: bool(orchestrator.positions.positions))
    rig.manager.deactivate("trend_mtf", "manage")
    signals = len(rig.of_type(Signal, "trend_mtf"))
    (position,) = orchestrator.positions.positions.values()
    # Only an EMA period: the same streams, so a resume from the pause would look possible (it is not: the EMA is new).
    rig.manager.reconfigure("trend_mtf", with_params(rig, "trend_mtf", FAST))
    assert (orchestrator.state, orchestrator.policy) == ("dormant", "manage")
    assert orchestrator.indicators[("BTC/USD", "5m")].keys()[0] == "ema(period=5,source=close)"
    # Not trading, but its position is still protected: the stop closes it.
    fed += feed_until(rig, candles, lambda: position.id not in orchestrator.positions.positions)
    assert rig.of_type(PositionClosed, "trend_mtf")[-1].trade.exit_reason == "stop_loss"
    assert len(rig.of_type(Signal, "trend_mtf")) == signals  # nothing decided while dormant

    # Activated later, its new indicators are warmed from the whole history (not resumed from the pause).
    rig.manager.activate("trend_mtf")
    fresh = Rig(catalog=repo_catalog())
    fresh.manager.load(trend_spec(FAST))
    fresh.feed("BTC/USD", btc_candles[:fed])
    fresh.manager.activate("trend_mtf")
    for key in (("BTC/USD", "5m"), ("BTC/USD", "1h")):
        assert orchestrator.indicators[key].keys() == fresh.manager.get("trend_mtf").indicators[key].keys()
    assert orchestrator.indicators[("BTC/USD", "5m")].require("ema", period=5).value == fresh.manager.get("trend_mtf").indicators[("BTC/USD", "5m")].require("ema", period=5).value
    now = btc_candles[fed - 1].ts + 60_000
    rest = list(candles)
    rig.feed("BTC/USD", rest)
    fresh.feed("BTC/USD", rest)
    assert decisions(rig, "trend_mtf", now) == decisions(fresh, "trend_mtf", now) and decisions(rig, "trend_mtf", now)


# -- a second symbol: pairs ---------------------------------------------------------------------------
PAIRS: dict[str, Any] = {"second_symbol": "XMR/BTC", "window": 100, "entry_z": 2.0, "exit_z": 0.5, "stop_z": 4.0, "max_hold_bars": 288}


def pairs_rig() -> Rig:
    # LTC/BTC has a feed that never had a candle; DOGE/BTC has none at all.
    rig = Rig(feeds={"ETH/BTC": "1m", "XMR/BTC": "1m", "LTC/BTC": "1m", "BTC/USD": "1m"}, catalog=repo_catalog())
    rig.start(
        module_strategy("pairs_arbitrage", symbol="ETH/BTC", timeframe="5m", quantity=1.0, starting_balance=10.0, risk={"max_open_positions": 2}, params=PAIRS)
    )
    return rig


def eth_and_xmr() -> Iterator[tuple[str, Candle]]:
    """Both recordings interleaved by open time, ETH/BTC first on a tie (as replay merges them)."""
    eth = (("ETH/BTC", c) for c in read_candles(ETH_1M))
    xmr = (("XMR/BTC", c) for c in read_candles(SHARED_DATA / "XMR-BTC_1m.csv"))
    return heapq.merge(eth, xmr, key=lambda item: (item[1].ts, item[0] != "ETH/BTC"))


def test_a_second_symbol_needs_a_feed_one_quote_currency_and_no_book_on_the_symbol_it_leaves() -> None:
    rig = pairs_rig()
    orchestrator = rig.manager.get("pairs_arbitrage")
    candles = eth_and_xmr()
    for symbol, candle in itertools.islice(candles, 1000):
        rig.services.hub.ingest(symbol, candle)
    assert not orchestrator.positions.positions and not orchestrator.positions.pending_orders()
    running = orchestrator.strategy
    with pytest.raises(StrategyStateError, match="would read 'DOGE/BTC', which has no candle feed"):
        rig.manager.reconfigure("pairs_arbitrage", with_params(rig, "pairs_arbitrage", {**PAIRS, "second_symbol": "DOGE/BTC"}))
    with pytest.raises(ValueError, match="'BTC/USD' is quoted in USD, but the strategy trades 'ETH/BTC', quoted in BTC"):
        rig.manager.reconfigure("pairs_arbitrage", with_params(rig, "pairs_arbitrage", {**PAIRS, "second_symbol": "BTC/USD"}))
    assert orchestrator.strategy is running and rig.routed_to("XMR/BTC", "5m") == ["pairs_arbitrage"]

    # Flat: it may move to another symbol with a feed; routing follows.
    rig.manager.reconfigure("pairs_arbitrage", with_params(rig, "pairs_arbitrage", {**PAIRS, "second_symbol": "LTC/BTC"}))
    assert rig.routed_to("XMR/BTC", "5m") == [] and rig.routed_to("LTC/BTC", "5m") == ["pairs_arbitrage"]
    rig.manager.reconfigure("pairs_arbitrage", with_params(rig, "pairs_arbitrage", PAIRS))
    assert rig.routed_to("XMR/BTC", "5m") == ["pairs_arbitrage"] and rig.routed_to("LTC/BTC", "5m") == []

    # Holding a pair, it may not stop reading a leg's symbol: its stops would no longer see prices.
    for symbol, candle in candles:
        rig.services.hub.ingest(symbol, candle)
        if {p.symbol for p in orchestrator.positions.positions.values()} == {"ETH/BTC", "XMR/BTC"}:
            break
    with pytest.raises(StrategyStateError, match="holds positions or orders on XMR/BTC, which it would no longer read: close them first"):
        rig.manager.reconfigure("pairs_arbitrage", with_params(rig, "pairs_arbitrage", {**PAIRS, "second_symbol": "LTC/BTC"}))
    # Other params of the same pair apply, the legs kept.
    legs = set(orchestrator.positions.positions)
    assert rig.manager.reconfigure("pairs_arbitrage", with_params(rig, "pairs_arbitrage", {**PAIRS, "exit_z": 0.25})) == ["params"]
    assert set(orchestrator.positions.positions) == legs and orchestrator.is_warm()


def test_a_symbol_or_timeframe_change_is_still_refused() -> None:
    rig = Rig(catalog=repo_catalog())
    rig.start(trend_spec(TREND))
    spec = rig.manager.get("trend_mtf").spec
    for field, value in (("timeframe", "15m"), ("symbol", "ETH/BTC")):
        with pytest.raises(ValueError, match=f"cannot change {field} of a loaded strategy in place"):
            rig.manager.reconfigure("trend_mtf", changed_strategy(spec, {field: value}, rig.factory.catalog, "trend_mtf"))
    assert rig.manager.get("trend_mtf").spec is spec



# -- candles still queued for it (the daemon's per-strategy inboxes) ----------------------------------------
def test_candles_queued_at_the_change_reach_its_positions_and_not_the_new_indicators_twice(btc_candles: list[Candle]) -> None:
    """The new object was warmed from the hub's history, which holds the queued candles: they are shown to its
    positions (as on any change of its routing) and the next candle is the new object's first."""
    settled, queued = 600, 50  # flat until well after this (its first entry comes some 1,300 candles in)
    services = build_services(BotConfig(), BotLogger.to_stderr(level=60, name="bot.tests.set_inbox"), Seams(isolate_subscribers=False))
    services.hub.add_feed("BTC/USD", "1m")
    events: list[Any] = []
    services.bus.subscribe(events.append)

    async def main() -> tuple[int, float | None, float | None, float | None]:
        async with anyio.create_task_group() as tg:
            manager: StrategyManager | None = None

            def on_error(owner: object, handler: object, exc: Exception) -> None:
                raise AssertionError(f"unexpected strategy error: {exc}")

            delivery = InboxDelivery(tg, 10_000, on_error)
            manager = StrategyManager(services, OrchestratorFactory(services, repo_catalog()), delivery)
            orchestrator = manager.load(trend_spec(TREND))
            manager.activate("trend_mtf")
            for candle in btc_candles[:settled]:
                services.hub.ingest("BTC/USD", candle)
            await delivery.drain()
            seen_price = orchestrator.positions.last_price("BTC/USD")
            for candle in btc_candles[settled : settled + queued]:  # published, not yet taken from its inbox
                services.hub.ingest("BTC/USD", candle)
            depth = delivery.stats(orchestrator)["inbox_depth"]
            spec = changed_strategy(orchestrator.spec, {"params": FAST}, repo_catalog(), "trend_mtf")
            assert manager.reconfigure("trend_mtf", spec) == ["params"]
            after_set = orchestrator.positions.last_price("BTC/USD")
            assert delivery.stats(orchestrator)["inbox_depth"] == 0 and seen_price != after_set
            for candle in btc_candles[settled + queued :]:
                services.hub.ingest("BTC/USD", candle)
                await delivery.drain()
            ema = orchestrator.indicators[("BTC/USD", "5m")].require("ema", period=5).value
            delivery.close_all()
        return depth, after_set, seen_price, ema

    depth, after_set, _seen_price, ema = anyio.run(main)
    assert depth > 0
    # Its positions saw the queued candles: the last price is the last queued 5m candle's close.
    assert after_set == btc_candles[settled + queued - 1].close
    # The same indicators and decisions as a fresh strategy started on the same history at that moment.
    fresh = Rig(catalog=repo_catalog())
    fresh.manager.load(trend_spec(FAST))
    fresh.feed("BTC/USD", btc_candles[: settled + queued])
    fresh.manager.activate("trend_mtf")
    fresh.feed("BTC/USD", btc_candles[settled + queued :])
    assert ema == fresh.manager.get("trend_mtf").indicators[("BTC/USD", "5m")].require("ema", period=5).value
    now = btc_candles[settled + queued - 1].ts + 60_000
    mine = [(e.type, e.ts, {k: v for k, v in payload_of(e).items() if k not in _IDS}) for e in events if e.type in DECISIONS and e.ts > now]
    assert mine == decisions(fresh, "trend_mtf", now) and len(mine) > 20


def test_a_declarative_strategys_analyzers_and_filters_rebuild_it_the_same_way(btc_candles: list[Candle]) -> None:
    rig = Rig()
    rig.start(strategy(id="d"))
    rig.feed("BTC/USD", btc_candles[:3000])
    fed = 3000 + feed_until(rig, iter(btc_candles[3000:]), lambda: flat(rig, "d"))
    orchestrator = rig.manager.get("d")
    spec = changed_strategy(
        orchestrator.spec,
        {"analyzers": [{"type": "ema_cross", "params": {"fast": 4, "slow": 8}}], "filters": [{"type": "mtf_trend", "params": {"timeframe": "15m", "period": 10}}]},
        rig.factory.catalog,
        "d",
    )
    assert rig.manager.reconfigure("d", spec) == ["analyzers", "filters"]
    assert orchestrator.subscriptions() == [("BTC/USD", "1m"), ("BTC/USD", "15m")] and rig.routed_to("BTC/USD", "15m") == ["d"]
    assert orchestrator.indicators[("BTC/USD", "1m")].keys() == ["ema(period=4,source=close)", "ema(period=8,source=close)"]
    assert orchestrator.is_warm()
    fresh = Rig()
    fresh.feed("BTC/USD", btc_candles[:fed])
    fresh.start(spec)
    rig.feed("BTC/USD", btc_candles[fed:])
    fresh.feed("BTC/USD", btc_candles[fed:])
    now = btc_candles[fed - 1].ts + 60_000
    assert decisions(rig, "d", now) == decisions(fresh, "d", now) and len(decisions(rig, "d", now)) > 20


# -- what a set leaves behind: the hub's streams, and how warm the new indicators are ----------------------
BOOM_MTF = '''
from pydantic import Field

from bot.strategy.base import Strategy, StrategyParams


class BoomMtfParams(StrategyParams):
    """Parameters of boom_mtf."""

    trend_timeframe: str = "1h"
    explode_in_warm_up: bool = False


class BoomMtf(Strategy):
    """Reads a higher timeframe's EMA(3); with explode_in_warm_up, its warm-up raises."""

    name = "boom_mtf"
    version = "1.0.0"
    Params = BoomMtfParams

    def __init__(self, params, context):
        super().__init__(params, context)
        self.trend = context.indicators(context.symbol, params.trend_timeframe).require("ema", period=3)

    def subscriptions(self):
        return ((self.ctx.symbol, self.ctx.timeframe), (self.ctx.symbol, self.params.trend_timeframe))

    def on_history(self, symbol, timeframe, candle):
        if self.params.explode_in_warm_up:
            raise RuntimeError("boom while warming up")
'''


def test_a_refused_set_derives_no_new_timeframe_in_the_hub(tmp_path: Path, btc_candles: list[Candle]) -> None:
    (tmp_path / "boom_mtf.py").write_text(BOOM_MTF)
    rig = Rig(catalog=StrategyCatalog.discover([tmp_path]))
    rig.start(module_strategy("boom_mtf", params={"trend_timeframe": "1h"}))
    rig.feed("BTC/USD", btc_candles[:2000])
    hub = rig.services.hub
    assert hub.timeframes("BTC/USD") == ["1m", "1h"]
    # Refused by the new object's warm-up, the last check of all: each probe of another timeframe would have
    # left it aggregated on every candle for the rest of the session.
    for timeframe in ("2h", "4h", "1d"):
        with pytest.raises(StrategyError, match="boom while warming up"):
            rig.manager.reconfigure("boom_mtf", with_params(rig, "boom_mtf", {"trend_timeframe": timeframe, "explode_in_warm_up": True}))
    assert hub.history("BTC/USD", "4h") == []
    assert hub.timeframes("BTC/USD") == ["1m", "1h"]
    # One that is accepted derives its stream, warmed up from the same history it would have had.
    rig.manager.reconfigure("boom_mtf", with_params(rig, "boom_mtf", {"trend_timeframe": "4h"}))
    assert hub.timeframes("BTC/USD") == ["1m", "1h", "4h"] and rig.routed_to("BTC/USD", "4h") == ["boom_mtf"]
    assert [c.ts % 14_400_000 for c in hub.history("BTC/USD", "4h")] == [0, 0, 0, 0]


def test_a_set_refused_for_a_symbol_it_holds_derives_nothing_for_the_new_one() -> None:
    rig = pairs_rig()
    orchestrator = rig.manager.get("pairs_arbitrage")
    for symbol, candle in eth_and_xmr():
        rig.services.hub.ingest(symbol, candle)
        if {p.symbol for p in orchestrator.positions.positions.values()} == {"ETH/BTC", "XMR/BTC"}:
            break
    with pytest.raises(StrategyStateError, match="holds positions or orders on XMR/BTC"):
        rig.manager.reconfigure("pairs_arbitrage", with_params(rig, "pairs_arbitrage", {**PAIRS, "second_symbol": "LTC/BTC"}))
    assert rig.services.hub.timeframes("LTC/BTC") == ["1m"]
    assert rig.services.hub.timeframes("ETH/BTC") == rig.services.hub.timeframes("XMR/BTC") == ["1m", "5m"]


def test_a_new_timeframe_with_too_little_history_says_how_much_it_has(btc_candles: list[Candle]) -> None:
    rig = Rig(catalog=repo_catalog())
    rig.start(trend_spec({**TREND, "trend_ema": 50}))
    rig.feed("BTC/USD", btc_candles[:4000])
    orchestrator = rig.manager.get("trend_mtf")
    assert orchestrator.is_warm()  # its 1h stream has its own history: some 66 hourly candles
    # A 4h stream is new: built from the 1,000 1m candles the hub holds (2022-01-03T01:00 to 17:39), which make
    # 3 whole 4h candles (04:00, 08:00, 12:00). EMA(50) of 4h needs 50 of them.
    held = rig.services.hub.history("BTC/USD", "1m")
    assert (len(held), held[0].ts) == (1000, btc_candles[3000].ts)
    whole = [c.ts - 14_400_000 + 60_000 for c in held if c.ts % 14_400_000 == 14_400_000 - 60_000 and c.ts - 14_400_000 + 60_000 >= held[0].ts]
    assert whole == [1_641_182_400_000, 1_641_196_800_000, 1_641_211_200_000]
    rig.manager.reconfigure("trend_mtf", with_params(rig, "trend_mtf", {**TREND, "trend_ema": 50, "trend_timeframe": "4h"}))
    assert not orchestrator.is_warm()
    assert [c.as_dict() for c in rig.manager.cold("trend_mtf")] == [
        {"symbol": "BTC/USD", "timeframe": "4h", "history": 3, "indicators": ["ema(period=50,source=close)"]}
    ]
    assert [c.ts for c in rig.services.hub.history("BTC/USD", "4h")] == whole
    # Back to 1h: that stream kept its history, so it is warm at once and nothing is cold.
    rig.manager.reconfigure("trend_mtf", with_params(rig, "trend_mtf", {**TREND, "trend_ema": 50}))
    assert orchestrator.is_warm() and rig.manager.cold("trend_mtf") == []
