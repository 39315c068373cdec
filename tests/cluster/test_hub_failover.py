"""Hub failover: kill -9 of the hub while a strategy's decision is awaited (its candle barred and journalled, the worker paused); the restarted hub has it decided once and trades on as without the kill."""
from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import orjson

from tests.cluster.conftest import StartServer
from tests.cluster.test_hub_workers import DEADLINE_S, _minds, workers
from tests.cluster.test_worker_failover import MINUTE_MS, STRATEGIES, _config, _ticks
from tests.control.client import wait_for
from tests.daemon.process import DaemonProcess, journal_rows, short_tmp

__all__ = ["short_tmp"]

# Long enough that the paused worker keeps its leases through the hub's restart: its mind is kept, not rebuilt.
TTL_S = 20


def _pending(folder: Path, sid: str) -> int | None:
    """The number of the strategy's turn the journal says is awaiting its decision, if any."""
    rows = journal_rows(folder, "SELECT value FROM meta WHERE key = ?", f"cluster.lane:{sid}")
    if not rows:
        return None
    pending = orjson.loads(rows[0][0])["pending"]
    return None if pending is None else int(pending[0])


def _traded(folder: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Orders (without their time: the feed's clock, which a restart moves), fills, closed trades and events of each strategy."""
    return {
        "orders": journal_rows(folder, "SELECT strategy_id, client_id, side, quantity, intent, status, filled_quantity FROM orders ORDER BY strategy_id, client_id"),
        "fills": journal_rows(folder, "SELECT strategy_id, client_id, price, quantity, fee, fill_ts FROM fills ORDER BY strategy_id, id"),
        "trades": journal_rows(folder, "SELECT strategy_id, position_id, exit_ts, record FROM trades ORDER BY strategy_id, id"),
        "events": journal_rows(folder, "SELECT strategy_id, n, type, ts, payload FROM strategy_events WHERE type != 'strategy_state' ORDER BY strategy_id, n"),
    }


def test_a_hub_killed_with_a_decision_awaited_has_it_decided_once_after_its_restart(start_nats: StartServer, short_tmp: Path) -> None:
    server = start_nats()
    before, after = 20, 39

    alone_config = _config(short_tmp / "alone", None)
    alone = DaemonProcess(alone_config, stepped=True)
    try:
        alone.wait_ready()
        alone.step(before, timeout=DEADLINE_S)
        alone.step(1, timeout=DEADLINE_S)
    finally:
        alone.kill()
    alone = DaemonProcess(alone_config, stepped=True)
    try:
        alone.wait_ready()
        alone.step(after, timeout=DEADLINE_S)
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
            holder = _minds(hub)["minds"]["tick_a"]["worker"]
            decided = orjson.loads(journal_rows(folder, "SELECT value FROM meta WHERE key = 'cluster.lane:tick_a'")[0][0])["decided"]
            # tick_a's worker paused: the next candle is barred and journalled, its decision cannot come.
            running[holder].proc.send_signal(signal.SIGSTOP)
            assert hub.proc.stdin is not None
            hub.proc.stdin.write(b"step 1\n")
            hub.proc.stdin.flush()
            wait_for(lambda: _pending(folder, "tick_a") == decided + 1, "tick_a's next turn journalled as pending", DEADLINE_S)
            # And the feed's position past it (journalled once every inbox took the candle), so the restart plays on from the next
            # candle, as the daemon in process does after its kill (a kill before that write plays the candle again: dropped as barred).
            close = orjson.loads(journal_rows(folder, "SELECT value FROM meta WHERE key = 'cluster.lane:tick_a'")[0][0])["pending"][3]
            wait_for(lambda: journal_rows(folder, "SELECT value FROM meta WHERE key = 'feed.last_ts'") == [(str(close),)], "the feed's position journalled", DEADLINE_S)
            hub.kill()
        finally:
            hub.stop()
            running[holder].proc.send_signal(signal.SIGCONT)
        for worker in running.values():
            assert worker.proc.poll() is None, worker.log.read_text()

        hub = DaemonProcess(config, stepped=True)
        try:
            hub.wait_ready()
            # Not waiting for the workers' next Hello: the hub goes to each lease's holder at once.
            hub.step(after, timeout=DEADLINE_S)
            minds = _minds(hub)
            # The workers kept their minds through the hub's restart: none was built or warmed again.
            assert minds["counts"]["kept"] == 2 and minds["counts"]["synced"] == 0, minds
        finally:
            assert hub.stop() == 0, hub.log.read_text()[-3000:]
    assert _pending(folder, "tick_a") is None
    for sid in STRATEGIES:
        ticks = _ticks(folder, sid)
        assert ticks == list(range(ticks[0], ticks[0] + (before + 1 + after) * MINUTE_MS, MINUTE_MS)), (sid, ticks)
    orders = journal_rows(folder, "SELECT client_id FROM orders")
    assert len(orders) == len(set(orders))
    assert _traded(folder) == expected
