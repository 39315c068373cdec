"""scripts/bench.py, the command the README's performance table quotes, still runs (on a small input)."""
from __future__ import annotations

import subprocess
import sys

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
