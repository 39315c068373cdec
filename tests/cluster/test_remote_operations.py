"""Runtime commands on strategies deciding on workers: set (the mind synced again on the new config), unload (released on its worker), load, switch."""
from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import nats.js.errors

from tests.cluster.conftest import StartServer
from tests.cluster.test_hub_workers import DEADLINE_S, _minds, hub_with_workers
from tests.cluster.test_worker_failover import _config, _ticks
from tests.control.client import result, wait_for
from tests.daemon.process import journal_rows, short_tmp

__all__ = ["short_tmp"]

TTL_S = 3


def _lease_holder(url: str, sid: str) -> str | None:
    """Who holds `sid`'s lease in cluster main, read from the server as a worker would."""

    async def read() -> str | None:
        client = await nats.connect(url)
        try:
            kv = await client.jetstream().key_value("leases_main")
            try:
                entry = await kv.get(f"lease.{sid}")
            except nats.js.errors.KeyNotFoundError:
                return None
            return None if not entry.value else entry.value.decode()
        finally:
            await client.close()

    return asyncio.run(read())


def test_set_unload_load_and_switch_act_on_strategies_deciding_on_workers(start_nats: StartServer, short_tmp: Path) -> None:
    server = start_nats()
    folder = short_tmp / "hub"
    config = _config(folder, {"url": server.url, "placement": "workers", "lease_ttl_s": TTL_S})
    with hub_with_workers(config, server.url, "w1", "w2") as hub:
        hub.step(5, timeout=DEADLINE_S)
        synced = _minds(hub)["counts"]["synced"]

        # set: its mind is built and warmed again on the new config; its next entries carry the new quantity.
        changed = result(hub.socket, "set", {"id": "tick_a", "path": "quantity", "value": 0.02})
        assert changed["changed"] == ["quantity"], changed
        hub.step_until(
            lambda: journal_rows(folder, "SELECT 1 FROM orders WHERE strategy_id = 'tick_a' AND intent = 'open' AND quantity = 0.02"),
            "an entry of the new quantity", limit=50,
        )
        assert _minds(hub)["counts"]["synced"] == synced + 1

        # unload: its worker drops its mind and gives its lease up; nothing of it is asked any more.
        assert "tick_b" in _minds(hub)["minds"]
        result(hub.socket, "unload", {"id": "tick_b"})
        wait_for(lambda: _lease_holder(server.url, "tick_b") is None, "tick_b's lease released", DEADLINE_S)
        assert "tick_b" not in _minds(hub)["minds"]
        ticks_b = len(_ticks(folder, "tick_b"))
        hub.step(3, timeout=DEADLINE_S)
        assert len(_ticks(folder, "tick_b")) == ticks_b

        # load it again, active: a lane of its own (a new id), decided on a worker again.
        result(hub.socket, "load", {"file": str(folder / "tick_b.json"), "activate": True})
        hub.step(3, timeout=DEADLINE_S)
        assert len(_ticks(folder, "tick_b")) == ticks_b + 3
        assert "tick_b" in _minds(hub)["minds"]

        # switch: tick_a stops deciding, tick_b goes on after a sync.
        result(hub.socket, "deactivate", {"id": "tick_b"})
        result(hub.socket, "switch", {"from": "tick_a", "to": "tick_b"})
        ticks_a, ticks_b = len(_ticks(folder, "tick_a")), len(_ticks(folder, "tick_b"))
        hub.step(3, timeout=DEADLINE_S)
        assert (len(_ticks(folder, "tick_a")), len(_ticks(folder, "tick_b"))) == (ticks_a, ticks_b + 3)
        assert result(hub.socket, "status")["health"] == "ok"
