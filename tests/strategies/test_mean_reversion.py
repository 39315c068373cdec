"""mean_reversion on recorded BTC candles: oversold entries below the band, exits at the mean, a hard stop."""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import talipp.indicators as ta  # type: ignore[import-untyped]
from talipp.ohlcv import OHLCV  # type: ignore[import-untyped]

from bot.errors import ConfigError
from bot.events import ActionFailed, Signal
from bot.strategy.config_load import load_config
from tests.strategies.reference import (
    Bar,
    bollinger,
    btc_1m,
    clear_of,
    expected_trades,
    resample,
    rsi,
    run_strategy,
    signals_of,
    simulate,
    trades_of,
)
from tests.support import REPO, Rig, candles_from, module_strategy, repo_catalog

PERIOD, K, RSI_PERIOD, OVERSOLD = 20, 2.0, 14, 30.0
STOP_PCT = 2.0
WARM_MINUTES = 1_000  # 200 bars of 5m


class Dips:
    """The mean_reversion conditions on 5m bars, from plain Python over the candles."""

    def __init__(self, bars: list[Bar]) -> None:
        self.bars = bars
        self.closes = [b.close for b in bars]
        self.middle, self.lower = bollinger(self.closes, PERIOD, K)
        self.rsi = rsi(self.closes, RSI_PERIOD)
        # close - middle band in exact rational arithmetic (None before the band exists).
        self.from_mean: list[float | None] = [None] * len(bars)
        window = [Fraction(c) for c in self.closes]
        total = sum(window[:PERIOD], Fraction(0))
        for i in range(PERIOD - 1, len(bars)):
            if i >= PERIOD:
                total += window[i] - window[i - PERIOD]
            self.from_mean[i] = float(window[i] - total / PERIOD)

    def entry(self, i: int) -> bool:
        lower, value = self.lower[i], self.rsi[i]
        return lower is not None and value is not None and self.closes[i] <= lower and value <= OVERSOLD

    def exit(self, i: int) -> bool:
        difference = self.from_mean[i]
        return difference is not None and difference >= 0


@pytest.fixture(scope="module")
def ref() -> Dips:
    ref = Dips(resample(btc_1m(), 5))
    clear_of(ref.rsi, OVERSOLD, "rsi")
    clear_of([None if lo is None else c - lo for c, lo in zip(ref.closes, ref.lower)], 0.0, "close - lower band", rel=1e-6)
    # A close can equal the mean of the window exactly (it did here): that tie is decided in
    # exact arithmetic; only a difference that is tiny but not zero would be ambiguous.
    clear_of([d for d in ref.from_mean if d], 0.0, "close - middle band", rel=1e-6)
    return ref


def first_traded(bars: list[Bar], warm_minutes: int) -> int:
    """Index of the first bar closing after the warm-up history."""
    start = btc_1m()[warm_minutes].ts
    return next(i for i, b in enumerate(bars) if b.ts >= start)


def test_entries_and_exits_are_exactly_the_oversold_and_mean_bars(ref: Dips) -> None:
    first = first_traded(ref.bars, WARM_MINUTES)
    assert sum(1 for i in range(first, len(ref.bars)) if ref.entry(i)) >= 100
    signals, trades, _ = simulate(ref.bars, first, ref.entry, ref.exit, STOP_PCT, exit_reason="mean")
    rig = run_strategy("mean_reversion", "5m", exits={"stop_loss_pct": STOP_PCT}, warm_minutes=WARM_MINUTES)
    assert signals_of(rig) == signals
    assert trades_of(rig) == expected_trades(trades)
    assert sum(1 for d, _ in signals if d == "entry") >= 50
    assert [t.exit_reason for t in trades].count("mean") >= 40
    assert not rig.of_type(ActionFailed)


def test_the_hard_stop_closes_dips_that_never_revert(ref: Dips) -> None:
    first = first_traded(ref.bars, WARM_MINUTES)
    rig = run_strategy("mean_reversion", "5m", exits={"stop_loss_pct": STOP_PCT}, warm_minutes=WARM_MINUTES)
    stopped = [t for t in trades_of(rig) if t[4] == "stop_loss"]
    assert len(stopped) >= 5
    for entry_ts, entry_price, _, exit_price, _ in stopped:
        # At the stop, or below it where the market gapped through.
        assert exit_price <= round(entry_price * (1 - STOP_PCT / 100), 6)
        assert 100 * (entry_price - exit_price) / entry_price < STOP_PCT + 0.5
    # Without the stop those dips ride until the mean: the stop is what closed them.
    no_stop = run_strategy("mean_reversion", "5m", warm_minutes=WARM_MINUTES)
    assert not [t for t in trades_of(no_stop) if t[4] == "stop_loss"]
    assert signals_of(no_stop) == simulate(ref.bars, first, ref.entry, ref.exit)[0]


def test_entry_details_explain_the_dip(ref: Dips) -> None:
    rig = run_strategy("mean_reversion", "5m", warm_minutes=WARM_MINUTES)
    by_close = {b.close_ts: i for i, b in enumerate(ref.bars)}
    entries = [e for e in rig.of_type(Signal) if e.decision == "entry"]
    assert len(entries) >= 50
    for event in entries:
        i = by_close[event.ts]
        details = event.analyzers
        assert details["lower_band"] == pytest.approx(ref.lower[i], rel=1e-9)
        assert details["middle_band"] == pytest.approx(ref.middle[i], rel=1e-9)
        assert details["rsi"] == pytest.approx(ref.rsi[i], rel=1e-9)


def test_max_adx_keeps_it_out_of_trending_markets(ref: Dips) -> None:
    max_adx = 30.0
    first = first_traded(ref.bars, WARM_MINUTES)
    adx = [None if v is None else v.adx for v in ta.ADX(14, 14, input_values=[OHLCV(b.open, b.high, b.low, b.close, b.volume) for b in ref.bars])]
    clear_of(adx, max_adx, "adx")
    blocked: list[int] = []

    def enter(i: int) -> bool:
        if not ref.entry(i):
            return False
        value = adx[i]
        if value is None or value > max_adx:
            blocked.append(ref.bars[i].close_ts)
            return False
        return True

    signals, _, _ = simulate(ref.bars, first, enter, ref.exit)
    rig = run_strategy("mean_reversion", "5m", params={"market": {"max_adx": max_adx}}, warm_minutes=WARM_MINUTES)
    got = signals_of(rig)
    assert got == signals
    assert len(blocked) >= 20 and sum(1 for d, _ in got if d == "entry") >= 20
    assert not {("entry", ts) for ts in blocked} & set(got)


def test_a_close_exactly_at_the_mean_exits() -> None:
    # "At or above the middle band": the tie is decided on hand-made candles because the one
    # recorded tie comes while flat. With a 2-close band the mean equals a close repeated.
    closes = [100.0, 100.0, 100.0, 99.0, 98.0, 98.0, 99.0]
    candles = candles_from([(c, c, c, c) for c in closes])
    rig = Rig(catalog=repo_catalog())
    rig.start(module_strategy("mean_reversion", params={"bb_period": 2, "bb_k": 0.5, "rsi_period": 2, "oversold": 30}))
    rig.feed("BTC/USD", candles)
    # 99 is below the lower band (99.25) with RSI 0: entry; 98 twice: mean 98, exit at the tie.
    assert signals_of(rig) == [("entry", candles[3].ts + 60_000), ("exit", candles[5].ts + 60_000)]


@pytest.mark.parametrize(
    ("params", "field", "phrase"),
    [
        ({"oversold": 60}, "params.oversold", "less than 50"),
        ({"bb_k": 0}, "params.bb_k", "greater than 0"),
        ({"bb_period": 1}, "params.bb_period", "greater than or equal to 2"),
        ({"market": {"hours_utc": [5, 5]}}, "params.market", "hours_utc must be two different hours"),
        ({"overbought": 70}, "params.overbought", "Extra inputs are not permitted"),
    ],
)
def test_bad_params_name_the_file_the_field_and_the_reason(tmp_path: Path, params: dict[str, Any], field: str, phrase: str) -> None:
    (tmp_path / "strategies").mkdir()
    strategy_file = tmp_path / "strategies" / "mr.json"
    body = json.loads((REPO / "strategies" / "catalog" / "mean_reversion.json").read_text())
    strategy_file.write_text(json.dumps({**body, "params": params}))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"strategy_paths": [str(REPO / "strategies")], "strategies": [{"file": "strategies/mr.json"}]}))
    with pytest.raises(ConfigError) as info:
        load_config(config)
    [problem] = info.value.problems
    assert (problem.file, problem.field) == (str(strategy_file), field)
    assert phrase in problem.reason and "mean_reversion" in problem.reason


def test_the_catalog_file_loads_with_a_hard_stop(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {"strategy_paths": [str(REPO / "strategies")], "strategies": [{"file": str(REPO / "strategies" / "catalog" / "mean_reversion.json")}]}
        )
    )
    [spec] = load_config(config).strategies
    assert (spec.id, spec.module, spec.symbol, spec.timeframe, spec.quantity) == ("mean_reversion", "mean_reversion", "BTC/USD", "5m", 0.1)
    assert spec.exits.stop_loss_pct == STOP_PCT
