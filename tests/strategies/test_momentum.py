"""momentum on recorded BTC candles: breakout entries and channel exits exactly where the data say."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.errors import ConfigError
from bot.events import ActionFailed, Signal
from bot.strategy.config_load import load_config
from tests.strategies.reference import (
    Bar,
    atr,
    btc_1m,
    clear_of,
    expected_trades,
    resample,
    run_strategy,
    signals_of,
    simulate,
    sma,
    trades_of,
)
from tests.support import REPO, Rig, candles_from, module_strategy, repo_catalog

ENTRY, EXIT, ROC, VOLUME, MIN_ROC, RATIO = 20, 10, 10, 20, 0.5, 1.5
STOP_PCT = 2.0
WARM_MINUTES = 3_000  # 200 bars of 15m: every indicator is warm before trading starts


class Breakouts:
    """The momentum conditions on 15m bars, from plain Python over the candles."""

    def __init__(self, bars: list[Bar]) -> None:
        self.bars = bars
        closes = [b.close for b in bars]
        self.closes = closes
        self.roc = [None if i < ROC else 100 * (closes[i] - closes[i - ROC]) / closes[i - ROC] for i in range(len(bars))]
        self.volume_avg = sma([b.volume for b in bars], VOLUME)
        self.prior_high = [None if i < ENTRY else max(b.high for b in bars[i - ENTRY : i]) for i in range(len(bars))]
        self.prior_low = [None if i < EXIT else min(b.low for b in bars[i - EXIT : i]) for i in range(len(bars))]

    def breakout(self, i: int) -> bool:
        high = self.prior_high[i]
        return high is not None and self.closes[i] > high

    def roc_ok(self, i: int) -> bool:
        roc = self.roc[i]
        return roc is not None and roc >= MIN_ROC

    def volume_ok(self, i: int) -> bool:
        average = self.volume_avg[i]
        return average is not None and self.bars[i].volume / average >= RATIO

    def entry(self, i: int) -> bool:
        return self.breakout(i) and self.roc_ok(i) and self.volume_ok(i)

    def exit(self, i: int) -> bool:
        low = self.prior_low[i]
        return low is not None and self.closes[i] < low


@pytest.fixture(scope="module")
def ref() -> Breakouts:
    bars = resample(btc_1m(), 15)
    ref = Breakouts(bars)
    clear_of(ref.roc, MIN_ROC, "roc")
    clear_of([None if a is None else b.volume / a for b, a in zip(bars, ref.volume_avg)], RATIO, "volume ratio")
    return ref


def first_traded(bars: list[Bar], warm_minutes: int) -> int:
    """Index of the first bar closing after the warm-up history."""
    start = btc_1m()[warm_minutes].ts
    return next(i for i, b in enumerate(bars) if b.ts >= start)


def test_entries_and_exits_are_exactly_the_breakout_and_channel_bars(ref: Breakouts) -> None:
    first = first_traded(ref.bars, WARM_MINUTES)
    entries = [i for i in range(first, len(ref.bars)) if ref.entry(i)]
    exits = [i for i in range(first, len(ref.bars)) if ref.exit(i)]
    assert len(entries) >= 50 and len(exits) >= 200
    signals, trades, _ = simulate(ref.bars, first, ref.entry, ref.exit, STOP_PCT, exit_reason="channel_exit")
    rig = run_strategy("momentum", "15m", exits={"stop_loss_pct": STOP_PCT}, warm_minutes=WARM_MINUTES)
    assert signals_of(rig) == signals
    assert trades_of(rig) == expected_trades(trades)
    reasons = [t.exit_reason for t in trades]
    # Enough of each way out that neither can be silently broken.
    assert len(signals) >= 50 and reasons.count("channel_exit") >= 20 and reasons.count("stop_loss") >= 3
    assert not rig.of_type(ActionFailed)


def test_entry_details_explain_the_breakout(ref: Breakouts) -> None:
    rig = run_strategy("momentum", "15m", warm_minutes=WARM_MINUTES)
    by_close = {b.close_ts: i for i, b in enumerate(ref.bars)}
    entries = [e for e in rig.of_type(Signal) if e.decision == "entry"]
    assert len(entries) >= 20
    for event in entries:
        i = by_close[event.ts]
        details = event.analyzers
        assert details["entry_channel_high"] == ref.prior_high[i]
        assert details["roc_pct"] == pytest.approx(ref.roc[i], rel=1e-9)
        assert details["volume_ratio"] == pytest.approx(ref.bars[i].volume / ref.volume_avg[i], rel=1e-9)  # type: ignore[operator]


def test_warm_up_carries_the_previous_channel_into_the_first_traded_bar(ref: Breakouts) -> None:
    # Activated so that the very first bar it trades is a breakout: only a channel remembered
    # from warm-up history can recognise it.
    b = next(i for i in range(100, len(ref.bars)) if ref.entry(i))
    warm = (ref.bars[b].ts - btc_1m()[0].ts) // 60_000
    rig = run_strategy("momentum", "15m", warm_minutes=warm)
    assert signals_of(rig)[0] == ("entry", ref.bars[b].close_ts)


def test_no_entry_without_volume_confirmation(ref: Breakouts) -> None:
    first = first_traded(ref.bars, WARM_MINUTES)
    unconfirmed: list[int] = []

    def enter(i: int) -> bool:
        if ref.breakout(i) and ref.roc_ok(i) and not ref.volume_ok(i):
            unconfirmed.append(ref.bars[i].close_ts)
        return ref.entry(i)

    signals, _, _ = simulate(ref.bars, first, enter, ref.exit)
    rig = run_strategy("momentum", "15m", warm_minutes=WARM_MINUTES)
    got = signals_of(rig)
    assert got == signals
    assert len(unconfirmed) >= 10
    assert not {("entry", ts) for ts in unconfirmed} & set(got)


def test_market_filter_blocks_breakouts_in_a_quiet_market(ref: Breakouts) -> None:
    min_atr_pct = 0.4
    first = first_traded(ref.bars, WARM_MINUTES)
    atr_pct = [None if a is None else 100 * a / b.close for a, b in zip(atr(ref.bars, 14), ref.bars)]
    clear_of(atr_pct, min_atr_pct, "atr %")
    blocked: list[int] = []

    def enter(i: int) -> bool:
        if not ref.entry(i):
            return False
        value = atr_pct[i]
        if value is None or value < min_atr_pct:
            blocked.append(ref.bars[i].close_ts)
            return False
        return True

    signals, _, _ = simulate(ref.bars, first, enter, ref.exit)
    rig = run_strategy("momentum", "15m", params={"market": {"min_atr_pct": min_atr_pct}}, warm_minutes=WARM_MINUTES)
    got = signals_of(rig)
    assert got == signals
    assert len(blocked) >= 10 and sum(1 for d, _ in got if d == "entry") >= 10
    assert not {("entry", ts) for ts in blocked} & set(got)


def test_a_close_level_with_a_channel_is_neither_a_breakout_nor_an_exit() -> None:
    # "Above the high" and "below the low" are strict: ties are decided on hand-made candles
    # because the recorded ones never put a tie where it matters.
    rows = [
        (100.0, 101.0, 99.0, 100.0),
        (100.0, 101.0, 99.0, 100.0),
        (100.0, 102.0, 100.0, 101.0),  # closes at the previous 2-candle high: no breakout
        (101.0, 103.0, 101.0, 102.5),  # above it (102): entry
        (102.5, 104.0, 101.0, 103.0),
        (103.0, 103.0, 101.0, 101.0),  # closes at the previous candle's low: no exit
        (101.0, 101.0, 100.0, 100.5),  # below it (101): exit
    ]
    candles = candles_from(rows)
    rig = Rig(catalog=repo_catalog())
    params = {"entry_period": 2, "exit_period": 1, "roc_period": 1, "min_roc_pct": 0.0, "volume_ratio": None}
    rig.start(module_strategy("momentum", params=params))
    rig.feed("BTC/USD", candles)
    assert signals_of(rig) == [("entry", candles[3].ts + 60_000), ("exit", candles[6].ts + 60_000)]


@pytest.mark.parametrize(
    ("params", "field", "phrase"),
    [
        ({"entry_period": 10, "exit_period": 10}, "params", "exit_period (10) must be smaller than entry_period (10)"),
        ({"volume_ratio": 0}, "params.volume_ratio", "greater than 0"),
        ({"entry_period": "wide"}, "params.entry_period", "a string is not a number"),
        ({"entry_period": 20.5}, "params.entry_period", "valid integer"),
        ({"market": {"min_adx": 40, "max_adx": 20}}, "params.market", "min_adx (40.0) is above max_adx (20.0)"),
        ({"lookback": 5}, "params.lookback", "Extra inputs are not permitted"),
    ],
)
def test_bad_params_name_the_file_the_field_and_the_reason(tmp_path: Path, params: dict[str, Any], field: str, phrase: str) -> None:
    (tmp_path / "strategies").mkdir()
    strategy_file = tmp_path / "strategies" / "momentum.json"
    body = json.loads((REPO / "strategies" / "catalog" / "momentum.json").read_text())
    strategy_file.write_text(json.dumps({**body, "params": params}))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"strategy_paths": [str(REPO / "strategies")], "strategies": [{"file": "strategies/momentum.json"}]}))
    with pytest.raises(ConfigError) as info:
        load_config(config)
    [problem] = info.value.problems
    assert (problem.file, problem.field) == (str(strategy_file), field)
    assert phrase in problem.reason and "momentum" in problem.reason


def test_the_catalog_file_loads_with_its_defaults(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({"strategy_paths": [str(REPO / "strategies")], "strategies": [{"file": str(REPO / "strategies" / "catalog" / "momentum.json")}]})
    )
    [spec] = load_config(config).strategies
    assert (spec.id, spec.module, spec.symbol, spec.timeframe, spec.quantity) == ("momentum", "momentum", "BTC/USD", "15m", 0.1)
    assert spec.exits.stop_loss_pct is not None
