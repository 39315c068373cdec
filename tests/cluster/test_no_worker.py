"""No worker left: past cluster.decision_timeout_s a strategy's candles go to its positions only (its stop closes its position as in process); a worker joining later decides again."""
from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import orjson

from tests.cluster.conftest import StartServer
from tests.cluster.test_hub_workers import DEADLINE_S, Worker, _minds, workers
from tests.cluster.test_worker_failover import _ticks
from tests.control.client import result, wait_for
from tests.daemon.process import DaemonProcess, journal_rows, short_tmp, write_daemon_config
from tests.support import REPO

__all__ = ["short_tmp"]

TTL_S = 3
DECISION_TIMEOUT_S = 9


def _config(folder: Path, cluster: dict[str, Any] | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    # Enters every 5 minutes when flat, never closes by itself: only its stop or its trailing stop close a position.
    spec = {"id": "tick_a", "module": "ticking", "symbol": "BTC/USD", "timeframe": "1m", "quantity": 0.01, "params": {"every": 5, "hold": 100_000},
            "exits": {"stop_loss_pct": 0.3, "trailing": {"activation_pct": 0.1, "distance_pct": 0.1}}}  # fmt: skip
    (folder / "tick_a.json").write_bytes(orjson.dumps(spec))
    overrides: dict[str, Any] = {"strategies": [{"file": "tick_a.json"}], "strategy_paths": [str(REPO / "tests" / "cluster" / "strategies")]}
    if cluster is not None:
        overrides["cluster"] = cluster
    return write_daemon_config(folder, **overrides)


def _open_positions(folder: Path) -> list[str]:
    return [row[0] for row in journal_rows(folder, "SELECT position_id FROM positions WHERE status != 'closed'")]


def _trade(folder: Path, position_id: str) -> tuple[Any, ...] | None:
    rows = journal_rows(folder, "SELECT exit_ts, record FROM trades WHERE position_id = ?", position_id)
    return rows[0] if rows else None


def test_without_a_worker_its_stops_still_close_its_position_and_a_new_worker_decides_again(start_nats: StartServer, short_tmp: Path) -> None:
    server = start_nats()
    alone = DaemonProcess(_config(short_tmp / "alone", None), stepped=True)
    try:
        alone.wait_ready()
        held = alone.step_until(lambda: _open_positions(short_tmp / "alone"), "an open position")
        entered = alone.last_close
        position = held[0]
        expected = alone.step_until(lambda: _trade(short_tmp / "alone", position), f"{position} closed", limit=2000)
    finally:
        assert alone.stop() == 0, alone.log.read_text()[-3000:]
    assert orjson.loads(expected[1])["exit_reason"] in ("stop_loss", "trailing_stop"), expected

    folder = short_tmp / "hub"
    config = _config(folder, {"url": server.url, "placement": "workers", "lease_ttl_s": TTL_S, "decision_timeout_s": DECISION_TIMEOUT_S})
    with workers(config, server.url, "w1") as running:
        hub = DaemonProcess(config, stepped=True)
        try:
            hub.wait_ready()
            wait_for(lambda: _minds(hub)["workers"], "w1 taken in", DEADLINE_S)
            hub.step_until(lambda: _open_positions(folder), "an open position")
            assert hub.last_close == entered and _open_positions(folder) == [position]
            decided = len(_ticks(folder, "tick_a"))
            running["w1"].stop(signal.SIGKILL)
            # The first candle waits for a decision that cannot come; then each goes to its positions only, its stops enforced.
            assert hub.step_until(lambda: _trade(folder, position), f"{position} closed", limit=2000) == expected
            metrics = result(hub.socket, "metrics")["strategies"]["tick_a"]
            assert metrics["protecting"] == 1, metrics
            assert len(_ticks(folder, "tick_a")) == decided, "a candle decided while no worker was there"
            status = result(hub.socket, "status")
            assert status["strategies"]["tick_a"]["state"] == "active" and status["strategies"]["tick_a"]["positions"] == 0, status
            assert status["health"] == "degraded" and "strategy tick_a: no mind decides (its positions only)" in status["problems"], status
            # A worker joins: its mind is synced (warmed anew) and decides from the next candle on.
            joined = Worker(config, "w2", server.url)
            try:
                wait_for(lambda: "w2" in _minds(hub)["workers"], "w2 taken in", DEADLINE_S)
                hub.step(3, timeout=DEADLINE_S)
                assert len(_ticks(folder, "tick_a")) == decided + 3
                assert result(hub.socket, "metrics")["strategies"]["tick_a"]["protecting"] == 0
                assert _minds(hub)["minds"]["tick_a"]["worker"] == "w2"
            finally:
                joined.stop()
        finally:
            assert hub.stop() == 0, hub.log.read_text()[-3000:]
    assert "no decision on turn" in hub.log.read_text()
