"""scripts/bench_http.py (`bench.py --suite http`) runs the real daemon under its HTTP load, and times each round from when it could start."""
from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from typing import Any

import pytest

from tests.support import REPO

# A few strategies and rounds, no settling: what the suite's runs do, small. The rounds' spacing is the test's.
_RUN = """
import json, sys
sys.path.insert(0, sys.argv[1])
import bench_http
bench_http.SETTLE_S = 0.0
result = bench_http.http_latency(load=sys.argv[2] == "load", strategies=30, symbols=3, rounds=8, round_s=float(sys.argv[3]))
print(json.dumps(result))
"""


def _run(load: bool, round_s: float) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _RUN, str(REPO / "scripts"), "load" if load else "quiet", str(round_s)],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _check_timeline(result: dict[str, Any]) -> list[list[float]]:
    """Each round starts when due or when the round before had settled, whichever is later; its decisions and settling come after."""
    rounds: list[list[float]] = result["timeline"]
    assert len(rounds) == result["rounds"] == 8
    for n, (due, start, first, last, settled) in enumerate(rounds):
        if n:
            assert start == max(due, rounds[n - 1][4]), (n, rounds)
        assert start <= first <= last <= settled, (n, rounds)
    return rounds


def test_under_load_every_request_is_answered_and_every_round_timed_from_when_it_could_start() -> None:
    result = _run(load=True, round_s=0.05)
    assert result["decisions"] == 30 * 8
    _check_timeline(result)
    report = result["load_report"]
    assert report["failed"] == {}, report
    assert report["answered"]["/metrics 200"] >= 1 and report["answered"]["/api/v1/events 200"] == 1, report
    assert result["daemon_cpu_seconds"] > 0 and report["requests"] > 0


def test_a_round_due_before_the_one_before_had_settled_is_timed_from_when_it_had() -> None:
    # Every round due at once: each after the first waits for the rounds before it. Timed from its due time the backlog
    # adds up round after round; timed from when the round before had settled it does not.
    result = _run(load=False, round_s=0.0)
    rounds = _check_timeline(result)
    assert result["late_rounds"] == 8
    assert all(start == rounds[n - 1][4] > due for n, (due, start, *_) in enumerate(rounds) if n)
    # Each turn commits after its handler: a round settles after its last decision, not at it.
    assert all(last < settled for _, _, _, last, settled in rounds)
    assert result["p50_ms"] < result["p50_from_due_ms"] and result["p99_ms"] < result["p99_from_due_ms"]
    assert result["load_report"] == {}


def test_the_suite_runs_its_cases_through_bench_py_and_prints_the_change_with_load(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = importlib.util.spec_from_file_location("bench_http_under_test", REPO / "scripts" / "bench_http.py")
    assert spec is not None and spec.loader is not None
    bench_http = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, bench_http)  # its dataclass looks its module up there
    spec.loader.exec_module(bench_http)
    cases: list[str] = []

    def run_case(case: str) -> dict[str, Any]:
        # As scripts/bench.py's suite runs each case: a process of its own, the case string parsed there.
        cases.append(case)
        done = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "bench.py"), "--case", f"daemon:{case}"], capture_output=True, text=True, timeout=300, cwd=REPO,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result

    bench_http.suite(run_case, 1, strategies=20, round_s=0.02)
    out = capsys.readouterr().out
    assert cases == ["http:quiet,20,0.02", "http:load,20,0.02"]
    assert re.search(r"p99 change with load, timed from due: [+-]\d+\.\d %; timed from when a round could start: [+-]\d+\.\d % \(medians; [0-2] of 2 runs had a late round\)", out), out
    assert re.search(r"a round's time to settle with load: slowest [+-]\d+\.\d %", out), out
    runs = json.loads(out.strip().splitlines()[-1])
    assert [r["round_s"] for r in runs["without"] + runs["with"]] == [0.02, 0.02]
    assert runs["with"][0]["load_report"]["requests"] > 0 and runs["without"][0]["load_report"] == {}
