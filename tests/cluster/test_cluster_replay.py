"""`bot replay --cluster URL --workers N`: real `bot` processes (the hub and the workers it starts) through a real nats-server."""
from __future__ import annotations

import filecmp
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from tests.cluster.nats_server import NatsServer
from tests.support import REPO

OUTPUTS = ("events.jsonl", "trades.csv", "equity.csv", "report.json")
ONE_DAY = ["--from", "2022-01-05", "--to", "2022-01-06"]
# Far beyond what a one-day replay takes (a few seconds): a bound on a hang, never a measure of speed.
DEADLINE_S = 300


def bot(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`bot ARGS` in a process of its own, from the repository."""
    return subprocess.run(
        [sys.executable, "-m", "bot", *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=DEADLINE_S, env=env, check=False
    )


def _config_copy(tmp: Path, change: dict[str, Any] | None = None, strategies: Path | None = None) -> Path:
    """config.replay.json with absolute candle paths, its strategies folder copied beside it (or `strategies`), `change` applied."""
    config = orjson.loads((REPO / "config.replay.json").read_bytes())
    for source in config["replay"]["candles"].values():
        source["path"] = str(REPO / source["path"])
    config.update(change or {})
    tmp.mkdir(parents=True, exist_ok=True)
    shutil.copytree(strategies or REPO / "strategies", tmp / "strategies")
    path = tmp / "config.json"
    path.write_bytes(orjson.dumps(config))
    return path


def test_a_cluster_replay_over_two_worker_processes_writes_what_the_in_process_replay_writes(nats_server: NatsServer, tmp_path: Path) -> None:
    # Global risk limits, a multi-timeframe strategy, the pairs strategy on two symbols, and the --from warm-up.
    config = REPO / "config.replay.json"
    alone = bot("replay", "--config", config, *ONE_DAY, "--out", tmp_path / "alone", "-q")
    assert alone.returncode == 0, alone.stderr
    cluster = bot("replay", "--config", config, *ONE_DAY, "--out", tmp_path / "cluster", "--cluster", nats_server.url, "--workers", "2", "--log-level", "INFO")
    assert cluster.returncode == 0, cluster.stderr
    for name in OUTPUTS:
        assert filecmp.cmp(tmp_path / "alone" / name, tmp_path / "cluster" / name, shallow=False), name
    assert (tmp_path / "cluster" / "trades.csv").read_text().count("\n") > 5
    # Both workers said Hello and decided for some of the strategies.
    decided = dict(re.findall(r"cluster: worker (w\d) decided for (.+)", cluster.stderr))
    assert sorted(decided) == ["w1", "w2"], cluster.stderr
    assert all(sids != "no strategy" for sids in decided.values())
    assert len(re.findall(r"worker w\d of run r-\S+: taken in", cluster.stderr)) == 2


def test_a_cluster_replay_trips_the_kill_switch_where_the_in_process_replay_does(nats_server: NatsServer, tmp_path: Path) -> None:
    config = _config_copy(tmp_path / "config", {"risk": {"max_total_exposure": {"USD": 50000, "BTC": 1}, "max_daily_loss": {"USD": 20, "BTC": 0.001}}})
    alone = bot("replay", "--config", config, *ONE_DAY, "--out", tmp_path / "alone", "-q")
    cluster = bot("replay", "--config", config, *ONE_DAY, "--out", tmp_path / "cluster", "-q", "--cluster", nats_server.url, "--workers", "3")
    assert alone.returncode == cluster.returncode == 0, cluster.stderr
    for name in OUTPUTS:
        assert filecmp.cmp(tmp_path / "alone" / name, tmp_path / "cluster" / name, shallow=False), name
    assert b'"kill_switch"' in (tmp_path / "cluster" / "events.jsonl").read_bytes()


BLOCKING_STRATEGY = '''
"""A test strategy: on its fifth trading candle it writes its process id to a file and waits for ever (the test kills it)."""
import os
import time
from pathlib import Path

from bot.strategy.base import Strategy, StrategyParams


class BlockingParams(StrategyParams):
    """Where to write the pid."""

    marker: str = ""


class Blocking(Strategy[BlockingParams]):
    """Blocks its worker on the fifth candle."""

    name = "blocking"
    version = "1.0.0"
    seen = 0

    def on_candle(self, symbol, timeframe, candle):
        self.seen += 1
        if self.seen == 5:
            Path(self.params.marker).write_text(str(os.getpid()))
            while True:
                time.sleep(1)
'''


def test_a_worker_killed_mid_run_stops_the_replay_naming_it(nats_server: NatsServer, tmp_path: Path) -> None:
    strategies = tmp_path / "only"
    strategies.mkdir()
    (strategies / "blocking.py").write_text(BLOCKING_STRATEGY)
    marker = tmp_path / "blocked.pid"
    (strategies / "blocking.json").write_text(
        orjson.dumps({"id": "blocker", "module": "blocking", "symbol": "BTC/USD", "timeframe": "1m", "quantity": 0.01, "params": {"marker": str(marker)}}).decode()
    )
    config = _config_copy(tmp_path / "config", {"strategies": [{"file": "strategies/blocking.json"}], "risk": {}}, strategies=strategies)
    hub = subprocess.Popen(
        [sys.executable, "-m", "bot", "replay", "--config", str(config), *ONE_DAY, "--out", str(tmp_path / "out"), "-q", "--cluster", nats_server.url, "--workers", "1"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        # The worker writes its pid once it blocks; the hub is then waiting on it.
        while not marker.exists() or not marker.read_text():
            assert hub.poll() is None, hub.communicate()[1]
            try:
                hub.wait(0.1)
            except subprocess.TimeoutExpired:
                pass
        os.kill(int(marker.read_text()), signal.SIGKILL)
        _, stderr = hub.communicate(timeout=DEADLINE_S)
    finally:
        if hub.poll() is None:
            hub.kill()
            hub.wait()
    assert hub.returncode == 2, stderr
    assert "worker w1 exited (code -9) before it answered" in stderr
    report = orjson.loads((tmp_path / "out" / "report.json").read_bytes())
    assert report["replay"]["status"] == "aborted"
    assert "worker w1 exited" in report["replay"]["error"]


def test_replay_cluster_options_that_do_not_go_together_are_refused(tmp_path: Path) -> None:
    workers_alone = bot("replay", "--config", REPO / "config.replay.json", "--workers", "2", "--out", tmp_path / "a", "-q")
    assert workers_alone.returncode == 2
    assert "--workers needs --cluster URL" in workers_alone.stderr
    with_jobs = bot("replay", "--config", REPO / "config.replay.json", "--cluster", "nats://127.0.0.1:1", "--jobs", "2", "--out", tmp_path / "b", "-q")
    assert with_jobs.returncode == 2
    assert "--jobs and --cluster do not go together" in with_jobs.stderr
    zero = bot("replay", "--config", REPO / "config.replay.json", "--cluster", "nats://127.0.0.1:1", "--workers", "0", "--out", tmp_path / "c", "-q")
    assert zero.returncode == 2
    assert "'0' is not a number of workers" in zero.stderr
    secret = bot("replay", "--config", REPO / "config.replay.json", "--cluster", "nats://bob:hunter2@127.0.0.1:4222", "--out", tmp_path / "d", "-q")
    assert secret.returncode == 2
    assert "--cluster" in secret.stderr and "hunter2" not in secret.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "d").exists()
