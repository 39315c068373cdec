"""`bash scripts/cluster-demo.sh --once`: server, hub and two workers on this machine; `bot ctl status` shows the strategies spread over both."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.cluster.nats_server import NATS_SERVER, unavailable
from tests.support import REPO


def test_the_demo_spreads_the_strategies_over_both_workers_and_stops_everything(tmp_path: Path) -> None:
    if not NATS_SERVER.is_file():
        unavailable(f"no nats-server at {NATS_SERVER} (bash scripts/setup.sh --cluster)")
    demo = tmp_path / "demo"
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "cluster-demo.sh"), "--once"], capture_output=True, text=True, timeout=300,
        env={**os.environ, "CLUSTER_DEMO_DIR": str(demo)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line for line in done.stdout.splitlines() if re.search(r"\sactive\s", line)]
    assert len(rows) == 7, done.stdout
    assert {re.search(r"(w[12]) \(epoch \d+\)", row).group(1) for row in rows} == {"w1", "w2"}, done.stdout  # type: ignore[union-attr]
    # Everything it started is gone: each log ends with its process's last line.
    for name in ("w1", "w2"):
        assert "requests answered" in (demo / f"{name}.log").read_text()
    assert (demo / "hub.log").read_text().rstrip().endswith("stopped")
    leftovers = subprocess.run(["pgrep", "-f", str(demo)], capture_output=True, text=True).stdout.split()
    assert leftovers == [], leftovers
