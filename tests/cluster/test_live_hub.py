"""A live hub (mode live on the fake Binance) whose strategies decide on workers, killed -9 at several points: every order the exchange holds is journalled, none is sent twice, and the restarted hub reconciles and trades on."""
from __future__ import annotations

import signal
from pathlib import Path

import anyio
import orjson
import pytest

from tests.cluster.conftest import StartServer
from tests.cluster.test_hub_workers import _minds, workers
from tests.daemon.process import DaemonProcess, short_tmp
from tests.daemon.test_live_crash import ETH, START, _held, _journalled_orders, _open_positions, _stream_settled, write_config
from tests.fake_exchange import FakeBinance
from tests.support import ETH_1M

__all__ = ["short_tmp"]

# (orders the exchange must have seen first (0: none), then candles streamed before the kill).
KILLS = ((1, 0), (0, 1), (2, 0), (0, 2))


@pytest.mark.asyncio
async def test_a_live_hub_killed_at_several_points_sends_no_order_twice_and_journals_each(start_nats: StartServer, short_tmp: Path) -> None:
    server = start_nats()
    async with FakeBinance({ETH: ETH_1M}, start=START) as fake:
        fake.set_balance("BTC", "10")
        config = write_config(short_tmp, fake)
        written = orjson.loads(config.read_bytes())
        written["cluster"] = {"url": server.url, "placement": "workers", "lease_ttl_s": 3}
        config.write_bytes(orjson.dumps(written))
        committed: set[str] = set()
        with workers(config, server.url, "w1", "w2"):
            for starts, (orders_first, streamed) in enumerate(KILLS, start=1):
                process = DaemonProcess(config, env=fake.credential_env())
                try:
                    with anyio.fail_after(90):
                        await anyio.to_thread.run_sync(process.wait_ready)
                        held = await _held(process)
                        assert committed <= held | (committed - _open_positions(short_tmp)), (committed, held)
                        await fake.wait_subscribed(starts)
                        if orders_first:
                            target = len(fake.orders) + orders_first
                            while len(fake.orders) < target:
                                await _stream_settled(process, fake)
                            # Decided on the workers: both strategies' minds are placed there.
                            minds = await anyio.to_thread.run_sync(_minds, process)
                            assert sorted(minds["minds"]) == ["x1", "x2"], minds
                        else:
                            await fake.stream(streamed)
                finally:
                    assert await anyio.to_thread.run_sync(process.stop, signal.SIGKILL) in (-signal.SIGKILL, 0)
                client_ids = [order.client_id for order in fake.orders]
                assert len(client_ids) == len(set(client_ids)), f"kill {starts}: an order sent twice: {client_ids}"
                missing = set(client_ids) - _journalled_orders(short_tmp)
                assert not missing, f"kill {starts}: orders on the exchange without a journal entry: {sorted(missing)}"
                committed = _open_positions(short_tmp)
        assert len(fake.orders) >= sum(n for n, _ in KILLS), [o.client_id for o in fake.orders]
