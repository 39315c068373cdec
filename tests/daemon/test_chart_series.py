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
    return hub, ChartSeries(hub), registry, list(islice(read_candles(BTC_1M), 2000))


def _fresh(candles: list[Candle], registry: IndicatorRegistry) -> list[list[float | None]]:
    """Each output of each indicator over `candles`, computed by new indicators from the first candle on."""
    copy = registry.fresh()
    rows = []
    for candle in candles:
        copy.update(candle)
        rows.append([value for _, _, indicator in copy.items() for value in _outputs(indicator)])
    return [list(column) for column in zip(*rows, strict=True)]


def _outputs(indicator: object) -> list[float | None]:
    return [getattr(indicator, name) for name in ("value", "upper", "lower") if hasattr(indicator, name)]


def _columns(chart: dict[str, Any]) -> list[list[float | None]]:
    return [values for item in chart["indicators"] for values in item["series"].values()]


def test_a_chart_fed_on_equals_indicators_fed_every_candle_and_holds_the_outputs_of_each() -> None:
    hub, charts, registry, candles = _setup()
    for candle in candles[:250]:
        hub.ingest("BTC/USD", candle)
    first = charts.read("s", registry, "BTC/USD", "1m", 1000)
    assert [c[0] for c in first["candles"]] == [c.ts for c in candles[:250]]
    assert [(i["name"], list(i["series"])) for i in first["indicators"]] == [("sma", ["value"]), ("bollinger", ["value", "upper", "lower"])]
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
    assert [i["name"] for i in chart["indicators"]] == ["sma", "bollinger", "ema"]
    assert _columns(chart) == _fresh(candles[:100], registry)
