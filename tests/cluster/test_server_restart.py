"""Server restart: kill -9 of nats-server while candles wait for decisions, a restart on the same store; hub and workers reconnect and go on, nothing lost or doubled."""
from __future__ import annotations

from pathlib import Path

from tests.cluster.conftest import StartServer
from tests.cluster.test_hub_failover import _traded
from tests.cluster.test_hub_workers import DEADLINE_S, _minds, workers
from tests.cluster.test_worker_failover import MINUTE_MS, STRATEGIES, _config, _ticks
from tests.control.client import result, wait_for
from tests.daemon.process import DaemonProcess, journal_rows, short_tmp

__all__ = ["short_tmp"]

TTL_S = 3


def test_candles_stepped_while_the_server_is_down_are_decided_once_after_its_restart(start_nats: StartServer, short_tmp: Path) -> None:
    server = start_nats()
    before, during, after = 20, 5, 20

    alone = DaemonProcess(_config(short_tmp / "alone", None), stepped=True)
    try:
        alone.wait_ready()
        for count in (before, during, after):
            alone.step(count, timeout=DEADLINE_S)
    finally:
        assert alone.stop() == 0, alone.log.read_text()[-3000:]
    expected = _traded(short_tmp / "alone")

    folder = short_tmp / "hub"
    config = _config(folder, {"url": server.url, "placement": "workers", "lease_ttl_s": TTL_S})
    with workers(config, server.url, "w1", "w2") as running:
        hub = DaemonProcess(config, stepped=True)
        try:
            hub.wait_ready()
            wait_for(lambda: len(_minds(hub)["workers"]) == 2, "both workers taken in", DEADLINE_S)
            hub.step(before, timeout=DEADLINE_S)
            server.kill9()
            wait_for(lambda: result(hub.socket, "status")["health"] == "degraded", "the hub degraded without its server", DEADLINE_S)
            # Candles while the server is down: barred on the hub, their decisions awaited.
            assert hub.proc.stdin is not None
            hub.proc.stdin.write(f"step {during}\n".encode())
            hub.proc.stdin.flush()
            wait_for(lambda: journal_rows(folder, "SELECT count(*) FROM meta WHERE key LIKE 'cluster.lane:%' AND value LIKE '%\"pending\":[%'")[0][0] > 0,
                     "a turn awaiting its decision", DEADLINE_S)
            server.restart()
            ack = hub._next_ack(DEADLINE_S)
            assert (ack["event"], ack["published"]) == ("stepped", during), ack
            hub.step(after, timeout=DEADLINE_S)
            wait_for(lambda: result(hub.socket, "status")["health"] == "ok", "the hub healthy again", DEADLINE_S)
            minds = _minds(hub)
            assert minds["connection"] == "connected" and sorted(minds["minds"]) == list(STRATEGIES), minds
        finally:
            assert hub.stop() == 0, hub.log.read_text()[-3000:]
        for worker in running.values():
            assert worker.proc.poll() is None, worker.log.read_text()
    for sid in STRATEGIES:
        ticks = _ticks(folder, sid)
        assert ticks == list(range(ticks[0], ticks[0] + (before + during + after) * MINUTE_MS, MINUTE_MS)), (sid, ticks)
    orders = journal_rows(folder, "SELECT client_id FROM orders")
    assert len(orders) == len(set(orders))
    assert _traded(folder) == expected
