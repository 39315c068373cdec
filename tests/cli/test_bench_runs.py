"""scripts/bench.py, the command the README's performance table quotes, still runs (on a small input)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support import REPO


def test_the_replay_bench_runs_and_counts_trades() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench.py"), "--suite", "replay", "--candles", "3000"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split() for line in done.stdout.splitlines() if line.strip()[:2].strip().isdigit()]
    assert len(rows) == 4, done.stdout
    for row in rows:
        assert int(row[-3].replace(",", "")) > 0 and int(row[-2].replace(",", "")) > 0  # events, trades


def _bench(*args: str) -> str:
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "bench.py"), *args], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_ratio_suite_prints_both_cases_with_the_same_trades_as_the_reference() -> None:
    out = _bench("--suite", "ratio", "--candles", "3000", "--repeat", "1")
    figures = json.loads(out.strip().splitlines()[-1])["cases"]
    assert list(figures) == ["replay, 1 strategy (10/30)", "replay, 10 strategies, 1 symbol"], out
    for (run,) in figures.values():
        assert run["bot_trades"] == run["loop_trades"] > 0
        assert {"bot_candles_per_s", "bot_deliveries_per_s", "loop_candles_per_s", "ratio"} <= set(run)  # values: too few candles to mean much
        assert run["bot_peak_rss_mb"] > 0
    assert "WARNING" not in out


def test_the_order_suite_fills_an_order_on_every_candle_but_the_first() -> None:
    out = _bench("--suite", "order", "--candles", "2000", "--repeat", "1")
    (run,) = json.loads(out.strip().splitlines()[-1])["runs"]
    assert run["orders"] == 1999
    assert "us per order" in out


def test_the_profile_prints_every_stage_of_the_issue_table() -> None:
    out = _bench("--profile", "--candles", "30000", "--repeat", "1")
    rows = {line.split("|")[1].strip(): float(line.split("|")[2]) for line in out.splitlines() if line.startswith("| ") and "stage" not in line}
    for stage in ("CSV read and parse", "events.jsonl encoding and writing", "candle hub (ingest checks, history, emit)", "paper exchange and positions"):
        assert stage in rows, out
    assert sum(value for stage, value in rows.items() if stage != "total") == pytest.approx(rows["total"], abs=0.1)


def test_the_daemon_suites_live_case_times_every_strategys_decision_on_every_round(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    import bench_daemon

    figures = bench_daemon.live_latency(strategies=12, symbols=3, rounds=4)
    assert figures["decisions"] == 12 * 4
    assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"]


@pytest.mark.parametrize("journal", [False, True], ids=["inbox", "inbox+journal"])
def test_the_live_suites_inbox_cases_run_every_candle_through_every_strategy(monkeypatch: pytest.MonkeyPatch, journal: bool) -> None:
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    import bench_live

    figures = bench_live.inbox_latency(60, 3, journal=journal)
    assert figures["done_count"] == 60 and figures["processed"] == 3 * 60
    assert figures["action_count"] > 0 and figures["overruns"] == 0
    assert ("turn_commits" in figures) is journal
    if journal:
        assert 0 <= figures["grouped_turns"] <= figures["turn_commits"] and figures["group_commits"] <= figures["grouped_turns"] // 2
