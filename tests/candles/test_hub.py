"""The candle hub: gaps reported, derived timeframes routed, bounded history; multi-symbol replay order."""
from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from bot.bus import EventBus
from bot.candles.hub import CandleHub
from bot.candles.merge import merged_candles
from bot.candles.reader import read_candles
from bot.candles.sources import CandleSource
from bot.clock import ReplayClock
from bot.config.models import BotConfig
from bot.events import CandleClosed, CandleGap, Event, ReplayFinished
from bot.kernel import build_services
from bot.ohlcv import Candle
from bot.services import BotServices
from tests.support import ETH_1M, ETH_5M, SHARED_DATA


def _hub(history: int = 1_000) -> tuple[CandleHub, list[Event], ReplayClock]:
    clock = ReplayClock()
    bus = EventBus(clock)
    events: list[Event] = []
    bus.subscribe(events.append)
    return CandleHub(bus, history, clock.advance_to, publish_candles=True), events, clock


def test_gaps_are_reported_not_hidden() -> None:
    manifest = {m["file"]: m for m in json.loads((SHARED_DATA / "manifest.json").read_text())}
    hub, events, _ = _hub()
    hub.add_feed("XMR/BTC", "1m")
    for candle in read_candles(SHARED_DATA / "XMR-BTC_1m.csv"):
        hub.ingest("XMR/BTC", candle)
    gaps = [e for e in events if isinstance(e, CandleGap)]
    expected = manifest["XMR-BTC_1m.csv"]
    assert hub.gap_count == len(gaps) == expected["gap_events"]
    assert sum(g.missing for g in gaps) == expected["missing_candles"]
    largest = max(gaps, key=lambda g: g.missing)
    assert largest.missing == expected["largest_gap_candles"]
    assert all(g.strategy_id is None for g in gaps)


def test_derived_timeframes_reach_their_subscribers_in_order_with_bounded_history() -> None:
    hub, _events, clock = _hub(history=50)
    hub.add_feed("ETH/BTC", "1m")
    got: list[tuple[str, int, int]] = []
    hub.subscribe("ETH/BTC", "5m", lambda s, tf, c, ts: got.append((tf, c.ts, ts)))
    hub.subscribe("ETH/BTC", "1h", lambda s, tf, c, ts: got.append((tf, c.ts, ts)))
    candles = list(read_candles(ETH_1M))
    for candle in candles:
        hub.ingest("ETH/BTC", candle)
    fives = [g for g in got if g[0] == "5m"]
    hours = [g for g in got if g[0] == "1h"]
    assert all(ts == start + 300_000 for _, start, ts in fives)
    assert all(start % 3_600_000 == 0 and ts == start + 3_600_000 for _, start, ts in hours)
    # The 1m data starts at 04:53, inside a bucket: that partial bucket is not a candle.
    assert fives[0][1] == 1516424100000 and fives[0][1] >= candles[0].ts
    # At a shared close time the higher timeframe goes first: whoever decides at that instant
    # already knows every candle that closed then.
    shared = [i for i, g in enumerate(got) if g[0] == "1h"]
    assert shared and all(got[i + 1][0] == "5m" and got[i + 1][2] == got[i][2] for i in shared)
    # Reproduces the exchange's own 5m candles (prices exactly).
    recorded = {c.ts: c for c in read_candles(ETH_5M)}
    history = hub.history("ETH/BTC", "5m")
    assert len(history) == 50 and len(hub.history("ETH/BTC", "1m")) == 50
    for candle in history:
        assert candle[:5] == recorded[candle.ts][:5]
    assert clock.now_ms() == candles[-1].ts + 60_000
    assert hub.history("ETH/BTC", "5m", limit=3) == history[-3:]


def test_require_refuses_what_cannot_be_derived() -> None:
    hub, _, _ = _hub()
    hub.add_feed("ETH/BTC", "5m")
    with pytest.raises(ValueError, match="1m cannot be derived"):
        hub.require("ETH/BTC", "1m")
    with pytest.raises(KeyError, match="no candle feed"):
        hub.require("DOGE/USD", "5m")
    with pytest.raises(ValueError, match="already has base timeframe"):
        hub.add_feed("ETH/BTC", "1m")


def test_two_symbols_replay_in_close_time_order_deterministically() -> None:
    sources = [CandleSource("ETH/BTC", ETH_5M, "5m"), CandleSource("XMR/BTC", SHARED_DATA / "XMR-BTC_1m.csv", "1m")]
    merged = list(merged_candles(sources))
    closes = [c.ts + (300_000 if s == "ETH/BTC" else 60_000) for s, c in merged]
    assert closes == sorted(closes)
    assert len(merged) == 5_760 + 12_519
    # A tie in close time goes in source order.
    ties = [i for i in range(1, len(merged)) if closes[i] == closes[i - 1]]
    assert ties and all(merged[i - 1][0] == "ETH/BTC" and merged[i][0] == "XMR/BTC" for i in ties)
    assert merged == list(merged_candles(sources))


def test_services_start_and_stop_in_order_and_close_streams() -> None:
    services = build_services(BotConfig())
    stream = services.bus.stream()

    async def main() -> list[Event]:
        await services.start()
        services.bus.publish(ReplayFinished, None, 1, 0)
        await services.stop()
        return [e async for e in stream]

    received = anyio.run(main)
    assert [(type(e), e.candles) for e in received if isinstance(e, ReplayFinished)] == [(ReplayFinished, 1)] and len(received) == 1
    assert services.bus.subscriber_count() == 0


def test_candle_events_carry_the_candle(tmp_path: Path) -> None:
    hub, events, _ = _hub()
    hub.add_feed("X/Y", "1m")
    hub.ingest("X/Y", Candle(60_000, 1.0, 2.0, 0.5, 1.5, 10.0))
    (event,) = [e for e in events if isinstance(e, CandleClosed)]
    assert event.ts == 120_000 and event.candle == (60_000, 1.0, 2.0, 0.5, 1.5, 10.0)


class _Recorder:
    """A service that records its start/stop calls and can refuse to start."""

    def __init__(self, name: str, log: list[str], fail: bool = False) -> None:
        self.name, self.log, self.fail = name, log, fail

    async def start(self) -> None:
        self.log.append(f"start {self.name}")
        if self.fail:
            raise RuntimeError(f"{self.name} cannot start")

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")


def test_a_service_that_fails_to_start_stops_those_already_started() -> None:
    base = build_services(BotConfig())
    log: list[str] = []
    services = BotServices(
        base.clock, base.bus, base.hub, base.logger, _Recorder("risk", log), _Recorder("exchange", log, fail=True), base.metrics  # type: ignore[arg-type]
    )
    with pytest.raises(RuntimeError, match="exchange cannot start"):
        anyio.run(services.start)
    assert log == ["start risk", "start exchange", "stop risk"]
    ok_log: list[str] = []
    ok = BotServices(base.clock, base.bus, base.hub, base.logger, _Recorder("risk", ok_log), _Recorder("exchange", ok_log), base.metrics)  # type: ignore[arg-type]

    async def cycle() -> None:
        await ok.start()
        await ok.stop()

    anyio.run(cycle)
    assert ok_log == ["start risk", "start exchange", "stop exchange", "stop risk"]


def test_candles_that_contradict_the_declared_timeframe_are_refused() -> None:
    from bot.candles.hub import CandleFeedError

    hub, _, _ = _hub()
    hub.add_feed("BTC/USD", "5m")
    candles = list(read_candles(SHARED_DATA / "BTC-USD-PERP_1m.csv"))[:3]
    hub.ingest("BTC/USD", candles[0])  # 23:00 is on a 5m boundary
    # 1m data declared as 5m: the second minute is off the 5m grid.
    with pytest.raises(CandleFeedError, match=r"BTC/USD: candle at 1640991660000 is not on a 5m boundary"):
        hub.ingest("BTC/USD", candles[1])
    # On the grid but repeated (a live feed can do that): refused too.
    with pytest.raises(CandleFeedError, match=r"comes 0 ms after the previous one, less than one 5m"):
        hub.ingest("BTC/USD", candles[0])
    hub2, _, _ = _hub()
    hub2.add_feed("X/Y", "5m")
    with pytest.raises(CandleFeedError, match="not on a 5m boundary"):
        hub2.ingest("X/Y", Candle(60_000, 1.0, 1.0, 1.0, 1.0, 1.0))


def test_a_timeframe_requested_mid_stream_is_built_from_history_without_a_partial_candle() -> None:
    candles = list(read_candles(ETH_1M))[:600]
    hub, _, _ = _hub()
    hub.add_feed("ETH/BTC", "1m")
    for candle in candles[:100]:
        hub.ingest("ETH/BTC", candle)
    got: list[Candle] = []
    hub.subscribe("ETH/BTC", "15m", lambda s, tf, c, ts: got.append(c))
    backfilled = hub.history("ETH/BTC", "15m")
    for candle in candles[100:]:
        hub.ingest("ETH/BTC", candle)
    reference, _, _ = _hub()
    reference.add_feed("ETH/BTC", "1m")
    reference.require("ETH/BTC", "15m")
    for candle in candles:
        reference.ingest("ETH/BTC", candle)
    assert backfilled and got
    assert backfilled + got == reference.history("ETH/BTC", "15m")


def test_gap_events_never_run_behind_the_event_clock_in_a_multi_symbol_replay() -> None:
    clock = ReplayClock()
    bus = EventBus(clock)
    events: list[Event] = []
    bus.subscribe(events.append)
    hub = CandleHub(bus, 100, clock.advance_to, publish_candles=True)
    sources = [CandleSource("ETH/BTC", ETH_5M, "5m"), CandleSource("XMR/BTC", SHARED_DATA / "XMR-BTC_1m.csv", "1m")]
    for source in sources:
        hub.add_feed(source.symbol, source.timeframe)
    for symbol, candle in merged_candles(sources):
        hub.ingest(symbol, candle)
    stamps = [e.ts for e in events]
    assert stamps == sorted(stamps)
    assert any(isinstance(e, CandleGap) for e in events)
