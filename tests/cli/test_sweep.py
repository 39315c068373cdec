"""`bot sweep`: variants of one strategy replayed, ranked and written to sweep.csv; bad options refused before anything runs."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_cli import error_lines, flat, run_bot
from tests.kernel.test_jobs import WEEK, copied_config

GRID = ("--grid", "params.fast=8,12", "--grid", "params.slow=26")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """config.replay.json of the repository without its global risk limits (the variants would share them)."""
    return copied_config(tmp_path, "config.replay.json", risk=None)


def sweep(config: Path, out: Path, *args: str) -> Any:
    return run_bot("sweep", "--config", config, "--strategy", "ema_cross", "--out", out, "--quiet", *args, cwd=config.parent)


def single_replay(config: Path, variant: str, params: dict[str, Any], out: Path) -> dict[str, Any]:
    """One variant replayed alone, from a strategy file of its own: its report figures."""
    spec = json.loads((config.parent / "strategies" / "catalog" / "ema_cross.json").read_text())
    spec["id"] = variant
    spec["params"] |= params
    (config.parent / f"{variant}.json").write_text(json.dumps(spec))
    data = json.loads(config.read_text())
    data["strategies"] = [{"file": f"{variant}.json"}]
    alone = config.parent / f"alone-{variant}.json"
    alone.write_text(json.dumps(data))
    result = run_bot("replay", "--config", alone, "--out", out, "--quiet", *WEEK, cwd=config.parent)
    assert result.returncode == 0, result.stderr
    figures: dict[str, Any] = json.loads((out / "report.json").read_bytes())["strategies"][variant]
    return figures


def test_sweep_ranks_the_variants_as_their_own_replays_score(config: Path, tmp_path: Path) -> None:
    result = sweep(config, tmp_path / "sweep", *GRID, "--jobs", "2", "--rank", "net_pnl", *WEEK)
    assert result.returncode == 0, result.stderr
    with (tmp_path / "sweep" / "sweep.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    alone = {
        "ema_cross.fast-8.slow-26": single_replay(config, "ema_cross.fast-8.slow-26", {"fast": 8, "slow": 26}, tmp_path / "a"),
        "ema_cross.fast-12.slow-26": single_replay(config, "ema_cross.fast-12.slow-26", {"fast": 12, "slow": 26}, tmp_path / "b"),
    }
    best_first = sorted(alone, key=lambda vid: -alone[vid]["net_pnl"])
    assert [row["strategy_id"] for row in rows] == best_first
    assert list(rows[0]) == [
        "rank", "strategy_id", "fast", "slow", "net_pnl", "return_pct", "trades", "win_rate", "max_drawdown_pct", "fees", "final_equity", "state",
    ]
    for place, row in enumerate(rows, start=1):
        figures = alone[row["strategy_id"]]
        assert row["rank"] == str(place)
        assert (row["fast"], row["slow"]) == (row["strategy_id"].split(".")[1].removeprefix("fast-"), "26")
        for name in ("net_pnl", "return_pct", "win_rate", "max_drawdown_pct", "fees", "final_equity"):
            assert row[name] == repr(figures[name]), name
        assert row["trades"] == str(figures["trades"]) and row["state"] == figures["state"] == "active"
    assert figures["trades"] > 5
    # The table on stdout, best first.
    assert flat(result.stdout).index(best_first[0]) < flat(result.stdout).index(best_first[1])
    # The replay's outputs of the variants are in OUT too.
    assert set(json.loads((tmp_path / "sweep" / "report.json").read_bytes())["strategies"]) == set(alone)


def test_sweep_by_drawdown_puts_the_smallest_first(config: Path, tmp_path: Path) -> None:
    result = sweep(config, tmp_path / "sweep", *GRID, "--rank", "max_drawdown_pct", *WEEK)
    assert result.returncode == 0, result.stderr
    with (tmp_path / "sweep" / "sweep.csv").open(newline="") as file:
        drawdowns = [float(row["max_drawdown_pct"]) for row in csv.DictReader(file)]
    assert drawdowns == sorted(drawdowns) and len(drawdowns) == 2


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ("--strategy", "nope", *GRID),
            (
                "--strategy nope: no strategy of config.replay.json has that id (it has: ema_cross, momentum, mean_reversion, trend_mtf, "
                "scalping, hybrid, pairs_arbitrage)"
            ),
        ),
        (
            ("--grid", "params.fastest=8,12"),
            "--grid params.fastest=8,12: params.fastest is not a field of strategy 'ema_cross': no field params.fastest (fields there: fast, market, slow)",
        ),
        (
            ("--grid", "params.fast=8,30", "--grid", "params.slow=26"),
            "--grid params.fast=30 --grid params.slow=26: strategy 'ema_cross' refuses this variant: params: fast (30) must be smaller than slow (26)",
        ),
        (("--grid", "params.fast=8,x"), "--grid params.fast=x: strategy 'ema_cross' refuses this variant: params.fast: a string is not a number"),
        ((*GRID, "--rank", "profit"), "--rank profit: not a figure to rank by (one of net_pnl, return_pct, realised_pnl, final_equity, win_rate, trades, wins, max_drawdown, max_drawdown_pct, fees)"),
        (("--grid", "params.fast="), "--grid params.fast=: no values (the grid would be empty)"),
        (("--grid", "params.fast=8,,12"), "--grid params.fast=8,,12: an empty value in '8,,12'"),
        ((), "--grid: give at least one, such as --grid params.fast=8,10,12"),
        (("--grid", "id=a,b"), "--grid id=a,b: a variant's id is set by the sweep, not by a grid"),
        ((*GRID, "--jobs", "0"), "--jobs 0: give a number of processes, at least 1"),
        (("--grid", "params.fast=8,8.0,12"), "--grid params.fast=8.0: the same variant as --grid params.fast=8"),
    ],
    ids=["unknown-strategy", "unknown-path", "refused-combination", "refused-value", "unknown-rank", "empty-grid", "empty-value", "no-grid", "id", "jobs", "same-variant"],
)
def test_bad_input_is_refused_before_anything_runs(config: Path, tmp_path: Path, args: tuple[str, ...], error: str) -> None:
    strategy = () if "--strategy" in args else ("--strategy", "ema_cross")
    result = run_bot("sweep", "--config", config.name, "--out", tmp_path / "sweep", *strategy, *args, cwd=config.parent)
    assert result.returncode == 2, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and flat(lines[0]).startswith(f"error: {error}"), lines
    assert not (tmp_path / "sweep").exists()


def test_sweep_under_global_risk_limits_says_the_variants_share_them(tmp_path: Path) -> None:
    config = copied_config(tmp_path, "config.replay.json")
    result = sweep(config, tmp_path / "sweep", *GRID, "--jobs", "2", "--to", "2022-01-03")
    assert result.returncode == 0, result.stderr
    assert "note: the variants are replayed together in one process (not --jobs 2) and share the global risk limits: " in flat(result.stderr)
    assert (tmp_path / "sweep" / "sweep.csv").read_text().count("ema_cross.fast-") == 2


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ("--strategy", "pairs_arbitrage", "--grid", "params.second_symbol=XMR/BTC,BTC/USD"),
            "--grid params.second_symbol=BTC/USD: strategy 'pairs_arbitrage' refuses this variant: ",
        ),
        (("--strategy", "ema_cross", "--grid", "symbol=BTC/USD,DOGE/USD"), "--grid symbol=DOGE/USD: strategy 'ema_cross' refuses this variant: "),
    ],
    ids=["mixed-currencies", "symbol-without-candles"],
)
def test_a_variant_the_config_would_refuse_is_refused_before_anything_runs(config: Path, tmp_path: Path, args: tuple[str, ...], error: str) -> None:
    # What loading config.json refuses for a strategy file (one money counted across two currencies, a symbol without candles) is refused for a variant too.
    result = run_bot("sweep", "--config", config.name, "--out", tmp_path / "sweep", *args, *WEEK, cwd=config.parent)
    assert result.returncode == 2, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and flat(lines[0]).startswith(f"error: {error}"), lines
    assert not (tmp_path / "sweep").exists()
