"""hybrid on recorded BTC candles: the ADX regime picks the dominant score on the right bars, entries exactly at threshold crossings."""
from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest
import talipp.indicators as ta  # type: ignore[import-untyped]
from talipp.ohlcv import OHLCV  # type: ignore[import-untyped]

from bot.errors import ConfigError
from bot.events import PositionOpened, Signal
from bot.ohlcv import Candle
from bot.strategy.config_load import load_config
from tests.support import REPO, Rig, module_strategy, repo_catalog

MINUTE = 60_000
WARM = 600  # candles in the hub before activation: all kept (history 1,000), so warm-up starts at the data's start
N = 9_000
# The strategy's defaults, restated: the test must not read them from the code under test.
ROC, ROC_FULL, RSI, OVERSOLD, OVERBOUGHT, BB, K, ADX = 10, 0.5, 14, 30.0, 70.0, 20, 2.0, 14
RANGE_ADX, TREND_ADX, DOMINANT, ENTRY, EXIT = 20.0, 25.0, 0.8, 0.5, 0.3
# Scores and ADX this close to a boundary could fall either way between two correct float computations.
EPS = 1e-9


def clip(x: float) -> float:
    return max(-1.0, min(1.0, x))


def talipp_adx(candles: list[Candle]) -> list[float | None]:
    """talipp's ADX per candle, None while it warms up."""
    out = ta.ADX(ADX, ADX, input_values=[OHLCV(c.open, c.high, c.low, c.close, c.volume) for c in candles])
    return [None if v is None or v.adx is None else float(v.adx) for v in out]


def reference(candles: list[Candle]) -> tuple[list[float | None], list[str | None]]:
    """Per candle, the weighted score and the regime, from plain Python and talipp's ADX."""
    closes = [c.close for c in candles]
    adx = talipp_adx(candles)
    gain = loss = 0.0
    scores: list[float | None] = []
    regimes: list[str | None] = []
    for i, close in enumerate(closes):
        rsi = None
        if i >= 1:
            change = close - closes[i - 1]
            up, down = max(change, 0.0), max(-change, 0.0)
            if i < RSI:
                gain, loss = gain + up, loss + down
            elif i == RSI:
                gain, loss = (gain + up) / RSI, (loss + down) / RSI
            else:
                gain, loss = (gain * (RSI - 1) + up) / RSI, (loss * (RSI - 1) + down) / RSI
            if i >= RSI:
                rsi = 100.0 if loss == 0 else 100.0 - 100.0 / (1.0 + gain / loss)
        if rsi is None or i < BB - 1 or i < ROC or adx[i] is None:
            scores.append(None)
            regimes.append(None)
            continue
        window = closes[i - BB + 1 : i + 1]
        # The bands are symmetric: the half-width is k population standard deviations either side.
        middle, half = statistics.fmean(window), K * statistics.pstdev(window)
        bollinger = clip((middle - close) / half) if half > 0 else 0.0
        rsi_score = clip((50.0 - rsi) / ((50.0 - OVERSOLD) if rsi < 50 else (OVERBOUGHT - 50.0)))
        momentum = clip(100.0 * (close - closes[i - ROC]) / closes[i - ROC] / ROC_FULL)
        reversion = (rsi_score + bollinger) / 2
        a = adx[i]
        assert a is not None
        regime = "trend" if a >= TREND_ADX else "range" if a <= RANGE_ADX else "mixed"
        w = {"trend": DOMINANT, "range": 1 - DOMINANT, "mixed": 0.5}[regime]
        scores.append(w * momentum + (1 - w) * reversion)
        regimes.append(regime)
    return scores, regimes


@pytest.fixture(scope="module")
def candles(btc_candles: list[Candle]) -> list[Candle]:
    return btc_candles[:N]


@pytest.fixture(scope="module")
def ref(candles: list[Candle]) -> tuple[list[float | None], list[str | None]]:
    return reference(candles)


def run(candles: list[Candle], per_bar: bool = False, **overrides: Any) -> tuple[Rig, list[dict[str, Any]]]:
    """Warm up on the first WARM candles as the manager does, then trade the rest (optionally reading the status every candle)."""
    rig = Rig(catalog=repo_catalog())
    rig.feed("BTC/USD", candles[:WARM])
    rig.start(module_strategy("hybrid", **overrides))
    snapshots: list[dict[str, Any]] = []
    if per_bar:
        strategy = rig.manager.get("hybrid").strategy
        for candle in candles[WARM:]:
            rig.feed("BTC/USD", [candle])
            snapshots.append(strategy.snapshot())
    else:
        rig.feed("BTC/USD", candles[WARM:])
    return rig, snapshots


def signals(rig: Rig, candles: list[Candle], decision: str) -> list[int]:
    return [(e.ts - MINUTE - candles[0].ts) // MINUTE for e in rig.of_type(Signal, "hybrid") if e.decision == decision]


def expected_trades(candles: list[Candle], scores: list[float | None], allowed: Any = lambda i: True) -> tuple[list[int], list[int], list[int]]:
    """Entry bars, exit bars and crossing bars the filter blocked, by the strategy's rules replayed on the reference scores."""
    entries: list[int] = []
    exits: list[int] = []
    blocked: list[int] = []
    holding = False
    for i in range(WARM, len(candles)):
        prev, score = scores[i - 1], scores[i]
        if score is None:
            continue
        if not holding:
            if prev is not None and prev < ENTRY <= score:
                if allowed(i):
                    entries.append(i)
                    holding = True
                else:
                    blocked.append(i)
        elif score <= -EXIT:
            # The close fills at the next open: on that candle the strategy is flat again.
            exits.append(i)
            holding = False
    return entries, exits, blocked


def test_the_adx_regime_picks_the_dominant_score_on_the_right_bars(candles: list[Candle], ref: tuple[list[float | None], list[str | None]]) -> None:
    scores, regimes = ref
    _, snapshots = run(candles, per_bar=True)
    adx = talipp_adx(candles)
    switches = 0
    for offset, snap in enumerate(snapshots):
        i = WARM + offset
        a = adx[i]
        assert a is not None
        if min(abs(a - TREND_ADX), abs(a - RANGE_ADX)) < EPS:
            continue
        assert snap["regime"] == regimes[i], i
        dominant = "momentum_weight" if regimes[i] == "trend" else "mean_reversion_weight"
        assert snap[dominant] == (0.5 if regimes[i] == "mixed" else DOMINANT)
        assert snap["score"] == pytest.approx(scores[i], abs=1e-9)
        switches += regimes[i] != regimes[i - 1]
    counts = {r: regimes[WARM:].count(r) for r in ("trend", "range", "mixed")}
    assert switches > 200 and min(counts.values()) > 1_000


def test_entries_and_exits_fall_exactly_where_the_weighted_score_crosses(candles: list[Candle], ref: tuple[list[float | None], list[str | None]]) -> None:
    scores, regimes = ref
    entries, exits, _ = expected_trades(candles, scores)
    assert not any(s is not None and (abs(s - ENTRY) < EPS or abs(s + EXIT) < EPS) for s in scores)
    rig, _ = run(candles)
    assert len(entries) > 80
    # The regime matters: the same crossings with fixed equal weights would be other bars.
    assert {regimes[i] for i in entries} == {"trend", "range", "mixed"}
    assert signals(rig, candles, "entry") == entries
    assert signals(rig, candles, "exit") == exits
    opened = [e.position.entry_ts for e in rig.of_type(PositionOpened, "hybrid")]
    assert opened == [candles[i + 1].ts for i in entries]


def test_the_market_filter_blocks_crossings_and_a_blocked_crossing_is_not_taken_later(
    candles: list[Candle], ref: tuple[list[float | None], list[str | None]]
) -> None:
    """Entries need the candle's volume at least its 20-candle average; a crossing it blocks waits for the next crossing."""
    scores, _ = ref
    volumes = [c.volume for c in candles]

    def allowed(i: int) -> bool:
        return volumes[i] >= statistics.fmean(volumes[i - 19 : i + 1])

    entries, exits, blocked = expected_trades(candles, scores, allowed)
    # Crossings blocked while the score stays above the threshold on an allowed candle right after:
    # entering there would be acting on a stale crossing.
    stale = [i for i in blocked if scores[i + 1] is not None and scores[i + 1] >= ENTRY and allowed(i + 1)]  # type: ignore[operator]
    rig, _ = run(candles, params={"market": {"min_volume_ratio": 1.0, "volume_period": 20}})
    assert len(blocked) > 30 and len(stale) > 5 and len(entries) > 40
    got = signals(rig, candles, "entry")
    assert got == entries
    assert not set(blocked) & set(got) and not {i + 1 for i in stale} & set(got)
    assert signals(rig, candles, "exit") == exits


def test_warm_up_carries_the_previous_score_into_the_first_live_candle(
    candles: list[Candle], ref: tuple[list[float | None], list[str | None]]
) -> None:
    """Activated just before a crossing, the strategy sees it on its very first live candle."""
    scores, _ = ref
    crossing = next(i for i in range(300, len(scores)) if scores[i - 1] is not None and scores[i - 1] < ENTRY <= scores[i])  # type: ignore[operator]
    assert crossing < 1_000  # the hub keeps the whole history, so warm-up starts where the reference does
    rig = Rig(catalog=repo_catalog())
    rig.feed("BTC/USD", candles[:crossing])
    rig.start(module_strategy("hybrid"))
    rig.feed("BTC/USD", candles[crossing : crossing + 1])
    assert signals(rig, candles, "entry") == [crossing]


def write_config(tmp_path: Path, params: dict[str, Any]) -> Path:
    strategy_file = tmp_path / "hybrid.json"
    strategy_file.write_text(
        json.dumps({"id": "hybrid", "module": "hybrid", "symbol": "BTC/USD", "timeframe": "15m", "quantity": 0.1, "params": params})
    )
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"strategy_paths": [str(REPO / "strategies")], "strategies": [{"file": "hybrid.json"}]}))
    return config


@pytest.mark.parametrize(
    ("params", "field", "reason"),
    [
        ({"range_adx": 30}, "params.trend_adx", "trend_adx (25.0) must be above range_adx (30.0)"),
        ({"dominant_weight": 0.4}, "params.dominant_weight", "greater than 0.5"),
        ({"rsi": {"oversold": 60}}, "params.rsi.oversold", "less than 50"),
        ({"entry_threshold": 0}, "params.entry_threshold", "greater than 0"),
    ],
)
def test_bad_params_name_the_file_field_and_reason(tmp_path: Path, params: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, params))
    [problem] = caught.value.problems
    assert problem.file == str(tmp_path / "hybrid.json")
    assert problem.field == field
    assert reason in problem.reason and "hybrid" in problem.reason


def test_the_catalog_file_loads(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({"strategy_paths": [str(REPO / "strategies")], "strategies": [{"file": str(REPO / "strategies" / "catalog" / "hybrid.json")}]})
    )
    [spec] = load_config(config).strategies
    assert (spec.id, spec.module, spec.timeframe, spec.quantity) == ("hybrid", "hybrid", "15m", 0.1)
    assert spec.params["trend_adx"] > spec.params["range_adx"]
    assert spec.exits.stop_loss_pct == 1.5
