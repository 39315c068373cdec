"""The hub's history observer: told of every candle any history takes (published, derived, preloaded, derived mid-stream), once."""
from __future__ import annotations

from bot.bus import EventBus
from bot.candles.hub import CandleHub
from bot.clock import ReplayClock
from bot.ohlcv import Candle

MINUTE = 60_000


def _candle(n: int) -> Candle:
    return Candle(n * MINUTE, 100.0 + n, 101.0 + n, 99.0 + n, 100.5 + n, 1.0)


def _observed_hub() -> tuple[CandleHub, list[tuple[str, str, Candle]]]:
    clock = ReplayClock()
    seen: list[tuple[str, str, Candle]] = []
    hub = CandleHub(EventBus(clock), 1_000, clock.advance_to, True, on_history=lambda s, tf, c: seen.append((s, tf, c)))
    return hub, seen


def _by_stream(seen: list[tuple[str, str, Candle]], symbol: str, timeframe: str) -> list[Candle]:
    return [c for s, tf, c in seen if (s, tf) == (symbol, timeframe)]


def test_every_candle_a_history_takes_is_observed_once_derived_and_preloaded_included() -> None:
    hub, seen = _observed_hub()
    hub.add_feed("BTC/USD", "1m")
    hub.require("BTC/USD", "5m")
    hub.preload("BTC/USD", [_candle(n) for n in range(12)])
    for n in range(12, 33):
        hub.ingest("BTC/USD", _candle(n))
    hub.require("BTC/USD", "15m")  # asked for mid-stream: its history is built from the base history at once
    for n in range(33, 47):
        hub.ingest("BTC/USD", _candle(n))
    for timeframe in ("1m", "5m", "15m"):
        assert _by_stream(seen, "BTC/USD", timeframe) == hub.history("BTC/USD", timeframe), timeframe
    assert len(seen) == 47 + 9 + 3


def test_a_hub_without_an_observer_keeps_history_as_before() -> None:
    clock = ReplayClock()
    hub = CandleHub(EventBus(clock), 1_000, clock.advance_to, True)
    hub.add_feed("ETH/USD", "1m")
    for n in range(5):
        hub.ingest("ETH/USD", _candle(n))
    assert len(hub.history("ETH/USD", "1m")) == 5
