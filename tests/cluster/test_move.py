"""`bot ctl move STRATEGY WORKER`: the mind moves at the strategy's next candle, no candle skipped or decided twice, its book kept; what cannot move is refused."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.cluster.conftest import StartServer
from tests.cluster.test_hub_failover import _traded
from tests.cluster.test_hub_workers import DEADLINE_S, _minds, hub_with_workers
from tests.cluster.test_worker_failover import MINUTE_MS, STRATEGIES, _config, _ticks
from tests.control.client import call, result
from tests.daemon.process import DaemonProcess, short_tmp

__all__ = ["short_tmp"]

TTL_S = 3


def _ctl(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", "ctl", "--config", str(config), *args], capture_output=True, text=True, cwd=config.parent, timeout=DEADLINE_S)


def test_a_moved_strategy_decides_on_its_new_worker_from_its_next_candle_none_skipped(start_nats: StartServer, short_tmp: Path) -> None:
    server = start_nats()
    before, after = 10, 10
    alone_config = _config(short_tmp / "alone", None)
    alone = DaemonProcess(alone_config, stepped=True)
    try:
        alone.wait_ready()
        alone.step(before, timeout=DEADLINE_S)
        refused = call(alone.socket, "move", {"id": "tick_a", "worker": "w2"})
        assert refused["ok"] is False and "nothing to move" in refused["error"]["message"], refused
        alone.step(after, timeout=DEADLINE_S)
    finally:
        assert alone.stop() == 0, alone.log.read_text()[-3000:]
    expected = _traded(short_tmp / "alone")

    folder = short_tmp / "hub"
    config = _config(folder, {"url": server.url, "placement": "workers", "lease_ttl_s": TTL_S})
    with hub_with_workers(config, server.url, "w1", "w2") as hub:
        hub.step(before, timeout=DEADLINE_S)
        placed = _minds(hub)["minds"]
        source, epoch = placed["tick_a"]["worker"], placed["tick_a"]["epoch"]
        target = "w2" if source == "w1" else "w1"
        # Refused: a worker not taken in, the worker it is on.
        unknown = _ctl(config, "move", "tick_a", "w9")
        assert unknown.returncode != 0 and "worker 'w9' is not taken in (live workers: w1, w2)" in unknown.stderr, unknown
        same = _ctl(config, "move", "tick_a", source)
        assert same.returncode != 0 and f"its mind is on {source} already" in same.stderr, same
        moved = _ctl(config, "move", "tick_a", target)
        assert moved.returncode == 0 and f"tick_a: its mind moves from {source} to {target} at its next candle" in moved.stdout, moved
        hub.step(after, timeout=DEADLINE_S)
        now = _minds(hub)["minds"]
        assert now["tick_a"]["worker"] == target and now["tick_a"]["epoch"] > epoch, now
        assert now["tick_b"] == placed["tick_b"], now
    for sid in STRATEGIES:
        ticks = _ticks(folder, sid)
        assert ticks == list(range(ticks[0], ticks[0] + (before + after) * MINUTE_MS, MINUTE_MS)), (sid, ticks)
    assert _traded(folder) == expected


def test_a_strategy_moved_while_dormant_goes_to_its_target_when_active_again(start_nats: StartServer, short_tmp: Path) -> None:
    server = start_nats()
    folder = short_tmp / "hub"
    config = _config(folder, {"url": server.url, "placement": "workers", "lease_ttl_s": TTL_S})
    with hub_with_workers(config, server.url, "w1", "w2") as hub:
        hub.step(5, timeout=DEADLINE_S)
        assert len(_ticks(folder, "tick_a")) == 5, hub.log.read_text()[-5000:]
        source = _minds(hub)["minds"]["tick_a"]["worker"]
        target = "w2" if source == "w1" else "w1"
        assert _ctl(config, "deactivate", "tick_a").returncode == 0
        # Not placed now (dormant): its old worker still holds its mind and lease, which the move takes from it.
        moved = _ctl(config, "move", "tick_a", target)
        assert moved.returncode == 0 and f"tick_a: its mind moves to {target} at its next candle" in moved.stdout, moved
        assert _ctl(config, "activate", "tick_a").returncode == 0
        decided = len(_ticks(folder, "tick_a"))
        hub.step(3, timeout=DEADLINE_S)
        assert len(_ticks(folder, "tick_a")) == decided + 3, hub.log.read_text()[-5000:]
        assert _minds(hub)["minds"]["tick_a"]["worker"] == target
        assert result(hub.socket, "status")["health"] == "ok"
