"""trend_mtf on recorded BTC candles: 15m crosses gated by the 1h trend, and a ratcheting ATR stop."""
from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from bot.errors import ConfigError, StrategyError
from bot.events import ActionFailed, PositionOpened, Signal, StopUpdated
from bot.strategy.config_load import load_config
from tests.strategies.reference import (
    Bar,
    atr,
    btc_1m,
    clear_of,
    ema,
    expected_trades,
    resample,
    run_strategy,
    signals_of,
    simulate,
    trades_of,
)
from tests.support import REPO, Rig, module_strategy, repo_catalog

FAST, SLOW, TREND_EMA, ATR_PERIOD, ATR_MULT = 9, 21, 50, 14, 3.0
STOP_PCT = 3.0
WARM_MINUTES = 6_000  # 100 hours: the 1h EMA(50) is warm before trading starts
HOUR_MS = 3_600_000


class Trend:
    """The trend_mtf conditions on 15m bars and their 1h gate, from plain Python over the candles."""

    def __init__(self, bars: list[Bar], hours: list[Bar]) -> None:
        self.bars = bars
        closes = [b.close for b in bars]
        self.fast, self.slow = ema(closes, FAST), ema(closes, SLOW)
        self.atr = atr(bars, ATR_PERIOD)
        trend = ema([h.close for h in hours], TREND_EMA)
        # The gate at a 15m close: the last 1h candle closed by then (a shared close included).
        by_close = {h.close_ts: (h.close, e) for h, e in zip(hours, trend)}
        # (close, EMA) of the last closed 1h candle at each 15m close, and whether it is an uptrend.
        self.last_hour: list[tuple[float, float | None] | None] = []
        last: tuple[float, float | None] | None = None
        for bar in bars:
            last = by_close.get(bar.close_ts - bar.close_ts % HOUR_MS, last)
            self.last_hour.append(last)
        self.gate = [h is not None and h[1] is not None and h[0] > h[1] for h in self.last_hour]
        self.trend_diffs = [None if e is None else h.close - e for h, e in zip(hours, trend)]

    def cross_up(self, i: int) -> bool:
        if i == 0:
            return False
        f0, s0, f1, s1 = self.fast[i - 1], self.slow[i - 1], self.fast[i], self.slow[i]
        if f0 is None or s0 is None or f1 is None or s1 is None:
            return False
        return f0 - s0 < 0 < f1 - s1

    def entry(self, i: int) -> bool:
        return self.cross_up(i) and self.gate[i]

    def stop(self, i: int) -> float | None:
        value = self.atr[i]
        return None if value is None else self.bars[i].close - ATR_MULT * value


@pytest.fixture(scope="module")
def ref() -> Trend:
    data = btc_1m()
    ref = Trend(resample(data, 15), resample(data, 60))
    clear_of(ref.trend_diffs, 0.0, "1h close - EMA", rel=1e-6)
    clear_of([None if f is None or s is None else f - s for f, s in zip(ref.fast, ref.slow)], 0.0, "fast - slow", rel=1e-6)
    return ref


def first_traded(bars: list[Bar], warm_minutes: int) -> int:
    """Index of the first bar closing after the warm-up history."""
    start = btc_1m()[warm_minutes].ts
    return next(i for i, b in enumerate(bars) if b.ts >= start)


def never(i: int) -> bool:
    return False


def test_entries_are_exactly_the_gated_crosses_and_stops_equal_the_atr_ratchet(ref: Trend) -> None:
    first = first_traded(ref.bars, WARM_MINUTES)
    assert sum(1 for i in range(first, len(ref.bars)) if ref.entry(i)) >= 20
    signals, trades, moves = simulate(ref.bars, first, ref.entry, never, STOP_PCT, ratchet=ref.stop)
    rig = run_strategy("trend_mtf", "15m", exits={"stop_loss_pct": STOP_PCT}, warm_minutes=WARM_MINUTES)
    assert signals_of(rig) == signals
    assert len(signals) >= 15
    got_moves = [(e.ts, e.stop_loss) for e in rig.of_type(StopUpdated)]
    assert [ts for ts, _ in got_moves] == [ts for ts, _ in moves]
    assert [stop for _, stop in got_moves] == pytest.approx([stop for _, stop in moves], rel=1e-12)
    assert len(moves) >= 50
    assert trades_of(rig) == expected_trades(trades)
    assert len(trades) >= 15 and all(t.exit_reason == "stop_loss" for t in trades if t.exit_ts is not None)
    assert not rig.of_type(ActionFailed)


def test_the_stop_only_ever_rises(ref: Trend) -> None:
    rig = run_strategy("trend_mtf", "15m", exits={"stop_loss_pct": STOP_PCT}, warm_minutes=WARM_MINUTES)
    stops: dict[str, list[float]] = {}
    for event in rig.events:
        if isinstance(event, PositionOpened):
            assert event.position.stop_loss is not None
            stops[event.position.position_id] = [event.position.stop_loss]
        elif isinstance(event, StopUpdated):
            assert event.stop_loss is not None
            stops[event.position_id].append(event.stop_loss)
    assert sum(len(s) > 3 for s in stops.values()) >= 5
    for levels in stops.values():
        assert all(later > earlier for earlier, later in pairwise(levels)), levels


def test_no_entry_while_the_1h_trend_is_down(ref: Trend) -> None:
    first = first_traded(ref.bars, WARM_MINUTES)
    gated: list[int] = []

    def enter(i: int) -> bool:
        if ref.cross_up(i) and not ref.gate[i]:
            gated.append(ref.bars[i].close_ts)
        return ref.entry(i)

    signals, _, _ = simulate(ref.bars, first, enter, never, STOP_PCT, ratchet=ref.stop)
    rig = run_strategy("trend_mtf", "15m", exits={"stop_loss_pct": STOP_PCT}, warm_minutes=WARM_MINUTES)
    got = signals_of(rig)
    assert got == signals
    assert len(gated) >= 15
    assert not {("entry", ts) for ts in gated} & set(got)
    # Each entry explains itself with the last closed 1h candle, the one closing with it included.
    by_close = {b.close_ts: i for i, b in enumerate(ref.bars)}
    entries = rig.of_type(Signal)
    assert sum(1 for e in entries if e.ts % HOUR_MS == 0) >= 3
    for event in entries:
        close, level = ref.last_hour[by_close[event.ts]]  # type: ignore[misc]
        details = event.analyzers
        assert details["trend_close"] == close
        assert details["trend_ema"] == pytest.approx(level, rel=1e-12)


def test_warm_up_carries_the_1h_gate_into_the_first_traded_bar(ref: Trend) -> None:
    # The first bar it trades is a gated-in cross that does not close an hour: only a gate
    # remembered from warm-up history lets it enter there.
    b = next(i for i in range(400, len(ref.bars)) if ref.entry(i) and ref.bars[i].close_ts % HOUR_MS)
    warm = (ref.bars[b].ts - btc_1m()[0].ts) // 60_000
    rig = run_strategy("trend_mtf", "15m", exits={"stop_loss_pct": STOP_PCT}, warm_minutes=warm)
    assert signals_of(rig)[0] == ("entry", ref.bars[b].close_ts)


def test_market_filter_hours_block_crosses_outside_the_session(ref: Trend) -> None:
    start, end = 8, 20
    first = first_traded(ref.bars, WARM_MINUTES)
    blocked: list[int] = []

    def enter(i: int) -> bool:
        if not ref.entry(i):
            return False
        if not start <= (ref.bars[i].close_ts // HOUR_MS) % 24 < end:
            blocked.append(ref.bars[i].close_ts)
            return False
        return True

    signals, _, _ = simulate(ref.bars, first, enter, never, STOP_PCT, ratchet=ref.stop)
    rig = run_strategy(
        "trend_mtf", "15m", params={"market": {"hours_utc": [start, end]}}, exits={"stop_loss_pct": STOP_PCT}, warm_minutes=WARM_MINUTES
    )
    got = signals_of(rig)
    assert got == signals
    assert len(blocked) >= 5 and len(got) >= 5
    assert not {("entry", ts) for ts in blocked} & set(got)


def test_trend_timeframe_must_be_longer_than_the_trading_one() -> None:
    rig = Rig(catalog=repo_catalog())
    with pytest.raises(StrategyError, match=r"trend_timeframe \(1h\) must be longer than the trading timeframe \(1h\)"):
        rig.manager.load(module_strategy("trend_mtf", timeframe="1h"))


@pytest.mark.parametrize(
    ("params", "field", "phrase"),
    [
        ({"fast": 30, "slow": 21}, "params", "fast (30) must be smaller than slow (21)"),
        ({"trend_timeframe": "7m"}, "params.trend_timeframe", "unknown timeframe '7m'"),
        ({"atr_mult": 0}, "params.atr_mult", "greater than 0"),
        ({"market": {"min_atr_pct": 2, "max_atr_pct": 1}}, "params.market", "min_atr_pct (2.0) is above max_atr_pct (1.0)"),
    ],
)
def test_bad_params_name_the_file_the_field_and_the_reason(tmp_path: Path, params: dict[str, Any], field: str, phrase: str) -> None:
    (tmp_path / "strategies").mkdir()
    strategy_file = tmp_path / "strategies" / "trend.json"
    body = json.loads((REPO / "strategies" / "catalog" / "trend_mtf.json").read_text())
    strategy_file.write_text(json.dumps({**body, "params": params}))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"strategy_paths": [str(REPO / "strategies")], "strategies": [{"file": "strategies/trend.json"}]}))
    with pytest.raises(ConfigError) as info:
        load_config(config)
    [problem] = info.value.problems
    assert (problem.file, problem.field) == (str(strategy_file), field)
    assert phrase in problem.reason and "trend_mtf" in problem.reason


def test_the_catalog_file_loads(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({"strategy_paths": [str(REPO / "strategies")], "strategies": [{"file": str(REPO / "strategies" / "catalog" / "trend_mtf.json")}]})
    )
    [spec] = load_config(config).strategies
    assert (spec.id, spec.module, spec.symbol, spec.timeframe, spec.quantity) == ("trend_mtf", "trend_mtf", "BTC/USD", "15m", 0.1)
    assert spec.params["trend_timeframe"] == "1h"
