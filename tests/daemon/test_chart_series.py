"""A chart's indicator values over the hub's recorded candles: extended candle by candle, started over when the history moved past it."""
from __future__ import annotations

from itertools import islice
from typing import Any

from bot.bus import EventBus
from bot.candles.hub import CandleHub
from bot.candles.reader import read_candles
from bot.clock import ReplayClock
from bot.daemon.chart_series import ChartSeries
from bot.indicators.registry import IndicatorRegistry
from bot.ohlcv import Candle
from tests.support import BTC_1M

HISTORY = 300


def _setup() -> tuple[CandleHub, ChartSeries, IndicatorRegistry, list[Candle]]:
    clock = ReplayClock()
    hub = CandleHub(EventBus(clock), HISTORY, clock.advance_to, False)
    hub.add_feed("BTC/USD", "1m")
    registry = IndicatorRegistry()
    registry.require("sma", period=20)
    registry.require("bollinger", period=20)
    registry.require("adx", period=14)
    registry.require("donchian", period=10)
    return hub, ChartSeries(hub), registry, list(islice(read_candles(BTC_1M), 2000))


def _fresh(candles: list[Candle], registry: IndicatorRegistry) -> list[list[float | None]]:
    """Each output of each indicator over `candles`, computed by new indicators from the first candle on."""
    copy = registry.fresh()
    rows = []
    for candle in candles:
        copy.update(candle)
        rows.append([getattr(indicator, name) for _, _, indicator, outputs in copy.items() for name in outputs])
    return [list(column) for column in zip(*rows, strict=True)]


def _columns(chart: dict[str, Any]) -> list[list[float | None]]:
    return [values for item in chart["indicators"] for values in item["series"].values()]


def test_a_chart_fed_on_equals_indicators_fed_every_candle_and_holds_the_outputs_of_each() -> None:
    hub, charts, registry, candles = _setup()
    for candle in candles[:250]:
        hub.ingest("BTC/USD", candle)
    first = charts.read("s", registry, "BTC/USD", "1m", 1000)
    assert [c[0] for c in first["candles"]] == [c.ts for c in candles[:250]]
    assert [(i["name"], i["overlay"], list(i["series"])) for i in first["indicators"]] == [
        ("sma", True, ["value"]),
        ("bollinger", True, ["value", "upper", "lower"]),
        ("adx", False, ["value", "plus_di", "minus_di"]),
        ("donchian", True, ["value", "upper", "lower"]),
    ]
    # Each output its own line: ADX's directional indices are not its value.
    adx = first["indicators"][2]["series"]
    assert adx["plus_di"][-1] is not None and adx["plus_di"][-1] != adx["value"][-1] != adx["minus_di"][-1]
    for candle in candles[250:400]:
        hub.ingest("BTC/USD", candle)
    later = charts.read("s", registry, "BTC/USD", "1m", 1000)
    held = candles[400 - HISTORY : 400]
    assert [c[0] for c in later["candles"]] == [c.ts for c in held]
    # Fed on from the first request: the same as indicators fed every candle since the first.
    everything = _fresh(candles[:400], registry)
    assert _columns(later) == [column[-HISTORY:] for column in everything]


def test_a_history_that_moved_past_the_chart_starts_it_over() -> None:
    hub, charts, registry, candles = _setup()
    for candle in candles[:100]:
        hub.ingest("BTC/USD", candle)
    charts.read("s", registry, "BTC/USD", "1m", 1000)
    for candle in candles[100:1000]:
        hub.ingest("BTC/USD", candle)
    chart = charts.read("s", registry, "BTC/USD", "1m", 1000)
    held = candles[1000 - HISTORY : 1000]
    assert [c[0] for c in chart["candles"]] == [c.ts for c in held]
    assert _columns(chart) == _fresh(held, registry)


def test_changed_indicators_start_the_chart_over() -> None:
    hub, charts, registry, candles = _setup()
    for candle in candles[:100]:
        hub.ingest("BTC/USD", candle)
    charts.read("s", registry, "BTC/USD", "1m", 1000)
    registry.require("ema", period=5)
    chart = charts.read("s", registry, "BTC/USD", "1m", 1000)
    assert [i["name"] for i in chart["indicators"]] == ["sma", "bollinger", "adx", "donchian", "ema"]
    assert _columns(chart) == _fresh(candles[:100], registry)


def test_other_candles_at_the_same_times_start_the_chart_over() -> None:
    # A symbol removed and added again from another file: the times repeat, the candles do not.
    hub, charts, registry, candles = _setup()
    for candle in candles[:100]:
        hub.ingest("BTC/USD", candle)
    charts.read("s", registry, "BTC/USD", "1m", 1000)
    hub.remove_feed("BTC/USD")
    hub.add_feed("BTC/USD", "1m")
    doubled = [c._replace(open=2 * c.open, high=2 * c.high, low=2 * c.low, close=2 * c.close) for c in candles[:100]]
    for candle in doubled:
        hub.ingest("BTC/USD", candle)
    chart = charts.read("s", registry, "BTC/USD", "1m", 1000)
    assert [c[4] for c in chart["candles"]] == [c.close for c in doubled]
    assert _columns(chart) == _fresh(doubled, registry)


def test_every_indicator_has_its_outputs_and_a_place_on_the_chart() -> None:
    from bot.daemon.chart_series import OVERLAYS
    from bot.indicators.registry import INDICATOR_NAMES

    registry = IndicatorRegistry()
    for name in INDICATOR_NAMES:
        registry.require(name, period=5) if name in ("sma", "ema") else registry.require(name)
    for candle in islice(read_candles(BTC_1M), 100):
        registry.update(candle)
    for _, name, indicator, outputs in registry.items():
        assert outputs[0] == "value" and all(isinstance(getattr(indicator, output), float) for output in outputs), name
    assert OVERLAYS <= set(INDICATOR_NAMES)
