"""scripts/bench_http.py (`bench.py --suite http`) runs the real daemon under its HTTP load, and times each round from when it could start."""
from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tests.support import REPO

# A few strategies and rounds, no settling: what the suite's runs do, small. ROUND_S is set per test.
_RUN = """
import json, sys
sys.path.insert(0, sys.argv[1])
import bench_http
bench_http.SETTLE_S = 0.0
bench_http.ROUND_S = float(sys.argv[3])
result = bench_http.http_latency(load=sys.argv[2] == "load", strategies=30, symbols=3, rounds=8)
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


def test_under_load_every_request_is_answered_and_every_decision_timed() -> None:
    result = _run(load=True, round_s=0.05)
    assert result["decisions"] == 30 * 8
    report = result["load_report"]
    assert report["failed"] == {}, report
    assert report["answered"]["/metrics 200"] >= 1 and report["answered"]["/api/v1/events 200"] == 1, report
    assert result["daemon_cpu_seconds"] > 0 and result["load_process_cpu_seconds"] > 0
    # No round can start before it is due: timed from when it could start is never longer than from when it was due.
    assert 0 < result["p50_ms"] <= result["p50_from_due_ms"] and result["p99_ms"] <= result["p99_from_due_ms"]


def test_a_round_due_before_the_one_before_was_processed_is_timed_from_when_that_one_was() -> None:
    # Every round due at once: each after the first waits for the rounds before it. Timed from its due time the backlog
    # adds up round after round; timed from when the round before was processed it does not.
    result = _run(load=False, round_s=0.0)
    assert result["late_rounds"] == 8
    assert result["p50_ms"] < result["p50_from_due_ms"] and result["p99_ms"] < result["p99_from_due_ms"]
    assert result["load_report"] == {}
