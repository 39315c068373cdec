"""scalping on recorded BTC candles: entries exactly on independently found pullback bars, the ATR band, the time limit, the ladder."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from bot.config.loader import deep_merge
from bot.errors import ConfigError, StrategyError
from bot.events import PositionClosed, PositionOpened, PositionReduced, Signal
from bot.kernel.replay import build_replay
from bot.ohlcv import Candle
from bot.replay.sources import resolve_sources
from bot.strategy.config_load import load_config
from tests.support import REPO, Rig, module_strategy, repo_catalog

MINUTE = 60_000
FIVE = 300_000
WARM = 600  # candles in the hub before activation: all kept (history 1,000), so warm-up starts at the data's start
N = 9_000
EMA_PERIOD, TREND_EMA, HOLD = 9, 20, 15
BAND = (0.05, 0.25)


def ema(xs: list[float], n: int) -> list[float | None]:
    """The guide's EMA: seeded with the mean of the first n values, then alpha = 2 / (n + 1)."""
    out: list[float | None] = []
    value: float | None = None
    for i, x in enumerate(xs):
        if i + 1 == n:
            value = sum(xs[:n]) / n
        elif value is not None:
            value = 2 / (n + 1) * x + (1 - 2 / (n + 1)) * value
        out.append(value)
    return out


def atr_pct(candles: list[Candle], n: int = 14) -> list[float | None]:
    """Wilder's ATR (first true range high - low, seeded with a mean) as a percent of the close."""
    out: list[float | None] = []
    trs: list[float] = []
    value: float | None = None
    for i, c in enumerate(candles):
        tr = c.high - c.low if i == 0 else max(c.high - c.low, abs(c.high - candles[i - 1].close), abs(c.low - candles[i - 1].close))
        trs.append(tr)
        if len(trs) == n:
            value = sum(trs) / n
        elif value is not None:
            value = (value * (n - 1) + tr) / n
        out.append(None if value is None else 100 * value / c.close)
    return out


def conditions(candles: list[Candle]) -> tuple[dict[int, int], dict[int, int]]:
    """Bars (index -> +1 long / -1 short) where pullback and 5m trend agree: all of them, and those inside the ATR band."""
    closes = [c.close for c in candles]
    fast = ema(closes, EMA_PERIOD)
    # The data starts on a 5m boundary with no gap: each 5 one-minute candles are one 5m candle.
    fives = [closes[k + 4] for k in range(0, len(candles) - 4, 5)]
    slow = ema(fives, TREND_EMA)
    atr = atr_pct(candles)
    raw: dict[int, int] = {}
    for i in range(1, len(candles)):
        if fast[i - 1] is None:
            continue
        # The last 5m candle closed by the close of 1m candle i.
        k = (candles[i].ts + MINUTE - candles[0].ts) // FIVE - 1
        if k < 0 or slow[k] is None:
            continue
        trend = 1 if fives[k] > slow[k] else -1 if fives[k] < slow[k] else 0  # type: ignore[operator]
        if closes[i - 1] > fast[i - 1] and closes[i] <= fast[i]:  # type: ignore[operator]
            side = 1
        elif closes[i - 1] < fast[i - 1] and closes[i] >= fast[i]:  # type: ignore[operator]
            side = -1
        else:
            continue
        if side == trend:
            raw[i] = side
    banded = {i: s for i, s in raw.items() if atr[i] is not None and BAND[0] <= atr[i] <= BAND[1]}  # type: ignore[operator]
    return raw, banded


def run(candles: list[Candle], **overrides: Any) -> Rig:
    """Warm up on the first WARM candles as the manager does, then trade the rest."""
    rig = Rig(catalog=repo_catalog())
    rig.feed("BTC/USD", candles[:WARM])
    rig.start(module_strategy("scalping", **overrides))
    rig.feed("BTC/USD", candles[WARM:])
    return rig


def bar(candles: list[Candle], close_ts: int) -> int:
    """Index of the 1m candle that closes at an event's time."""
    return (close_ts - MINUTE - candles[0].ts) // MINUTE


def bar_at(candles: list[Candle], open_ts: int) -> int:
    """Index of the 1m candle opening at a fill's time."""
    return (open_ts - candles[0].ts) // MINUTE


def signals(rig: Rig, candles: list[Candle], decision: str) -> dict[int, float]:
    return {bar(candles, e.ts): e.score for e in rig.of_type(Signal, "scalping") if e.decision == decision}


@pytest.fixture(scope="module")
def candles(btc_candles: list[Candle]) -> list[Candle]:
    return btc_candles[:N]


def test_entries_and_time_limit_exits_match_an_independent_replay(candles: list[Candle]) -> None:
    """Without stops or take-profits every position lives exactly max_hold_candles, and entries fall exactly on the condition bars while flat."""
    _, banded = conditions(candles)
    expected_entries: dict[int, int] = {}
    expected_exits: list[int] = []
    expected_trades: list[tuple[int, float, int, float, str]] = []
    free_from = WARM
    for i in range(WARM, len(candles)):
        if i >= free_from and i in banded:
            expected_entries[i] = banded[i]
            # Filled at the open of i + 1; closed on the close of its HOLD-th candle, filled at the next open.
            free_from = i + 1 + HOLD
            if i + HOLD < len(candles):
                expected_exits.append(i + HOLD)
            if i + 1 + HOLD < len(candles):
                entry, exit_ = candles[i + 1], candles[i + 1 + HOLD]
                expected_trades.append((entry.ts, entry.open, exit_.ts, round(exit_.open, 6), "time_limit"))
    rig = run(candles, params={"max_hold_candles": HOLD})
    got_entries = signals(rig, candles, "entry")
    got_trades = [
        (p.trade.entry_ts, p.trade.entry_price, p.trade.exit_ts, round(p.trade.exit_price, 6), p.trade.exit_reason) for p in rig.of_type(PositionClosed)
    ]
    assert len(expected_entries) > 150
    assert sum(1 for s in expected_entries.values() if s < 0) > 50 and sum(1 for s in expected_entries.values() if s > 0) > 50
    assert got_entries == expected_entries
    assert sorted(signals(rig, candles, "exit")) == expected_exits
    assert got_trades == expected_trades
    assert all(t[2] - t[0] == HOLD * MINUTE for t in got_trades)


def test_the_atr_band_blocks_entries_on_condition_bars(candles: list[Candle]) -> None:
    """Condition bars outside the ATR band get no entry, and there are many of them; without the band they do."""
    raw, banded = conditions(candles)
    blocked = sorted(i for i in raw if i not in banded and i >= WARM)
    assert len(blocked) > 30
    banded_run = signals(run(candles, params={"max_hold_candles": 1}), candles, "entry")
    open_run = signals(run(candles, params={"max_hold_candles": 1, "market": {"min_atr_pct": None, "max_atr_pct": None}}), candles, "entry")
    # max_hold_candles 1: a position lives one candle, so bars two apart are independent.
    flat_blocked = [i for i in blocked if not any(j in banded_run for j in (i - 1, i - 2))]
    assert len(flat_blocked) > 20
    assert not set(flat_blocked) & set(banded_run)
    assert set(flat_blocked) <= set(open_run)
    assert set(banded_run) <= {i for i in banded}


def test_ladder_stop_and_time_limit_fill_where_an_independent_walk_says(candles: list[Candle]) -> None:
    """With the catalog's exits each position's fills (reason, bar, price, quantity) follow the ladder, the stop and the time limit."""
    exits = {"stop_loss_pct": 0.3, "take_profit": [{"pct": 0.15, "close_pct": 50}, {"pct": 0.3, "close_pct": 50}]}
    rig = run(candles, params={"max_hold_candles": HOLD}, exits=exits)
    _, banded = conditions(candles)

    fills: dict[str, list[tuple[str, int, float, float]]] = {}
    opened: dict[str, tuple[int, str, float]] = {}
    for event in rig.events:
        if isinstance(event, PositionOpened):
            position = event.position
            opened[position.position_id] = (bar_at(candles, position.entry_ts), position.side, position.entry_price)
        elif isinstance(event, PositionReduced):
            fills.setdefault(event.position.position_id, []).append((event.reason, bar_at(candles, event.fill.fill_ts), event.price, event.closed_quantity))
        elif isinstance(event, PositionClosed):
            f = event.fill
            fills.setdefault(event.trade.position_id, []).append((f.reason, bar_at(candles, f.fill_ts), f.price, f.quantity))

    def walk(start: int, side: str, entry: float) -> list[tuple[str, int, float, float]]:
        d = 1 if side == "long" else -1
        stop = entry * (1 - d * 0.3 / 100)
        ladder = [(entry * (1 + d * 0.15 / 100), 0.05, "take_profit_1"), (entry * (1 + d * 0.3 / 100), 0.05, "take_profit_2")]
        left, out = 0.1, list[tuple[str, int, float, float]]()
        for j in range(start, len(candles)):
            c = candles[j]
            if j - start == HOLD:  # the close queued on the HOLD-th candle fills at this open
                return out + [("time_limit", j, c.open, left)]
            # A candle that opens beyond a level fills it at the open (worse for the stop, better for the ladder).
            if (c.low <= stop) if d > 0 else (c.high >= stop):
                return out + [("stop_loss", j, min(c.open, stop) if d > 0 else max(c.open, stop), left)]
            while ladder and ((c.high >= ladder[0][0]) if d > 0 else (c.low <= ladder[0][0])):
                price, qty, reason = ladder.pop(0)
                qty = left if not ladder else qty
                out.append((reason, j, max(c.open, price) if d > 0 else min(c.open, price), qty))
                left -= qty
            if not ladder:
                return out
        return out

    reasons: set[str] = set()
    for position_id, (start, side, entry) in opened.items():
        expected = walk(start, side, entry)
        got = fills.get(position_id, [])
        if not got and start + HOLD >= len(candles):
            continue
        assert [(r, j) for r, j, _, _ in got] == [(r, j) for r, j, _, _ in expected], position_id
        assert [p for _, _, p, _ in got] == pytest.approx([p for _, _, p, _ in expected], rel=1e-12)
        assert [q for _, _, _, q in got] == pytest.approx([q for _, _, _, q in expected], rel=1e-9)
        reasons.update(r for r, _, _, _ in got)
        # No position outlives the limit: its last fill is at most HOLD candles after its entry fill.
        assert got[-1][1] - start <= HOLD
    assert reasons == {"take_profit_1", "take_profit_2", "stop_loss", "time_limit"}

    # Entries only on condition bars, and on every condition bar where the strategy was flat.
    busy: set[int] = set()
    for position_id, (start, _, _) in opened.items():
        end = fills[position_id][-1][1] if position_id in fills else len(candles)
        busy.update(range(start, end))
    entries = signals(rig, candles, "entry")
    assert len(entries) > 150
    assert entries == {i: float(s) for i, s in banded.items() if i >= WARM and i not in busy}


def test_warm_up_carries_the_trend_and_the_previous_close_into_the_first_live_candle(candles: list[Candle]) -> None:
    """Activated just before a pullback that is not on a 5m close, it enters on its very first live candle."""
    _, banded = conditions(candles)
    first = next(i for i in sorted(banded) if 300 <= i < 1_000 and (i + 1) % 5)
    rig = Rig(catalog=repo_catalog())
    rig.feed("BTC/USD", candles[:first])
    rig.start(module_strategy("scalping"))
    rig.feed("BTC/USD", candles[first : first + 1])
    assert signals(rig, candles, "entry") == {first: float(banded[first])}


def test_a_trend_timeframe_the_trading_one_cannot_build_is_refused() -> None:
    rig = Rig(catalog=repo_catalog())
    with pytest.raises(StrategyError, match="params.trend_timeframe 5m must be a multiple of the trading timeframe 15m"):
        rig.start(module_strategy("scalping", timeframe="15m"))


def write_config(tmp_path: Path, params: dict[str, Any]) -> Path:
    strategy_file = tmp_path / "scalping.json"
    strategy_file.write_text(
        json.dumps({"id": "scalping", "module": "scalping", "symbol": "BTC/USD", "timeframe": "1m", "quantity": 0.1, "params": params})
    )
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"strategy_paths": [str(REPO / "strategies")], "strategies": [{"file": "scalping.json"}]}))
    return config


@pytest.mark.parametrize(
    ("params", "field", "reason"),
    [
        ({"max_hold_candles": 0}, "params.max_hold_candles", "greater than or equal to 1"),
        ({"trend_timeframe": "7m"}, "params.trend_timeframe", "unknown timeframe '7m'"),
        ({"market": {"min_atr_pct": 0.3, "max_atr_pct": 0.1}}, "params.market", "min_atr_pct (0.3) is above max_atr_pct (0.1)"),
        ({"pullback": 9}, "params.pullback", "Extra inputs are not permitted"),
    ],
)
def test_bad_params_name_the_file_field_and_reason(tmp_path: Path, params: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, params))
    [problem] = caught.value.problems
    assert problem.file == str(tmp_path / "scalping.json")
    assert problem.field == field
    assert reason in problem.reason and "scalping" in problem.reason


def test_the_catalog_file_loads_with_its_exits(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({"strategy_paths": [str(REPO / "strategies")], "strategies": [{"file": str(REPO / "strategies" / "catalog" / "scalping.json")}]})
    )
    [spec] = load_config(config).strategies
    assert (spec.id, spec.module, spec.timeframe, spec.quantity) == ("scalping", "scalping", "5m", 0.1)
    assert spec.params["trend_timeframe"] == "1h" and spec.params["max_hold_candles"] == 24
    assert spec.exits.stop_loss_pct == 1.0 and [s.pct for s in spec.exits.take_profit] == [0.75, 1.5]


# What the catalog file looked like when fees ate the account: 1m pullbacks, 5m trend, a ladder of 0.15% / 0.3%.
ONE_MINUTE = {
    "timeframe": "1m",
    "params": {"trend_timeframe": "5m", "max_hold_candles": 15, "market": {"min_atr_pct": 0.05, "max_atr_pct": 0.25}},
    "exits": {"stop_loss_pct": 0.3, "take_profit": [{"pct": 0.15, "close_pct": 50}, {"pct": 0.3, "close_pct": 50}]},
}


def replay_catalog_file(root: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """The catalog's scalping file (with `overrides`) replayed alone over the bundled month of BTC/USD, as config.replay.json sets it up."""
    bundled = json.loads((REPO / "config.replay.json").read_text())
    root.mkdir()
    (root / "scalping.json").write_text(json.dumps(deep_merge(json.loads((REPO / "strategies" / "catalog" / "scalping.json").read_text()), overrides)))
    config = {
        "replay": {"candles": {"BTC/USD": {"path": str(REPO / "data" / "BTC-USD-PERP_1m.csv")}}},
        "strategy_defaults": bundled["strategy_defaults"],
        "strategy_paths": [str(REPO / "strategies")],
        "strategies": [{"file": "scalping.json"}],
    }
    (root / "config.json").write_text(json.dumps(config))
    loaded = load_config(root / "config.json")
    sources, problems = resolve_sources(loaded)
    assert not problems
    scalping: dict[str, Any] = anyio.run(build_replay(loaded, sources, root / "out").run).report["strategies"]["scalping"]
    return scalping


def test_the_bundled_default_does_not_lose_its_account_to_fees_and_its_description_gives_the_real_figures(tmp_path: Path) -> None:
    """On the bundled month the catalog file pays about a tenth of its account in fees (the 1m version paid three
    quarters of it) and wins before fees; its description quotes both runs' figures as the replay computes them."""
    description = json.loads((REPO / "strategies" / "catalog" / "scalping.json").read_text())["description"]
    tuned = replay_catalog_file(tmp_path / "tuned", {})
    assert tuned["state"] == "active" and 100 < tuned["trades"] < 400
    assert tuned["fees"] < 0.12 * tuned["starting_balance"]
    assert tuned["realised_pnl"] > 0 and tuned["return_pct"] > -6
    assert f"makes {tuned['realised_pnl']:+,.0f} before fees and pays {tuned['fees']:,.0f} in fees ({tuned['return_pct']:+.1f}%)" in description

    fast = replay_catalog_file(tmp_path / "fast", ONE_MINUTE)
    assert fast["fees"] > 0.7 * fast["starting_balance"] and fast["trades"] > 5 * tuned["trades"]
    assert f"made {fast['trades']:,} trades and paid {fast['fees']:,.0f} in fees on {fast['starting_balance']:,.0f} ({fast['return_pct']:+.1f}%)" in description
