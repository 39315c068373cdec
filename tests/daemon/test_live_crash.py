"""kill -9 of a live daemon trading on the fake Binance, at many points: no order on the exchange without its journal entry.

Two EMA-cross strategies with short periods trade often on the recorded ETH/BTC candles the
fake streams. The daemon is killed once its latest order has reached the exchange, or while it
processes a candle just streamed; after each kill, every order the exchange holds has its row
in the journal, and the restarted daemon holds every position the journal had committed (or
the journal shows reconciliation closed it with the fill the exchange made meanwhile).
"""
from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from bot.control.client import ControlClient
from tests.daemon.process import DaemonProcess, journal_rows
from tests.fake_exchange import FakeBinance
from tests.support import ETH_1M

ETH = "ETH/BTC"
START = 1200
# Kill points: (orders the exchange must have seen first (0: none), then candles streamed before the kill).
KILLS = ((1, 0), (0, 1), (2, 0), (0, 2), (3, 0), (0, 1), (4, 0), (0, 3))


def write_config(folder: Path, fake: FakeBinance) -> Path:
    """Mode live on the fake's ETH/BTC: two EMA-cross strategies crossing often, fast order polling."""
    (folder / "strategies").mkdir(exist_ok=True)
    files = []
    for sid, fast, slow in (("x1", 3, 12), ("x2", 4, 14)):
        spec = {
            "id": sid, "symbol": ETH, "timeframe": "1m", "quantity": 0.05, "starting_balance": 1.0,
            "analyzers": [{"type": "ema_cross", "params": {"fast": fast, "slow": slow}}], "entry_threshold": 1.0, "exit_threshold": 1.0,
        }
        (folder / "strategies" / f"{sid}.json").write_bytes(orjson.dumps(spec))
        files.append({"file": f"strategies/{sid}.json"})
    exchange = fake.signed_exchange_config(
        feed={"symbols": [ETH], "timeframe": "1m", "backfill": 60, "reconnect_min_s": 0.05, "reconnect_max_s": 0.2},
        execution={"poll_interval_s": 0.05, "lookup_delay_s": 0.05, "retry_min_s": 0.01, "retry_max_s": 0.05},
    )
    config = {
        "mode": "live", "feed": {"source": "ccxt"}, "exchange": exchange, "control": {"socket": "bot.sock"},
        "journal": {"path": "journal.sqlite"}, "strategies": files,
    }
    path = folder / "config.json"
    path.write_bytes(orjson.dumps(config, option=orjson.OPT_INDENT_2))
    return path


def _journalled_orders(folder: Path) -> set[str]:
    return {cid for (cid,) in journal_rows(folder, "SELECT client_id FROM orders")}


def _open_positions(folder: Path) -> set[str]:
    return {pid for (pid,) in journal_rows(folder, "SELECT position_id FROM positions WHERE status != 'closed'")}


async def _candles(client: ControlClient) -> int:
    """Candles the slower of the two strategies has processed since this daemon started."""
    metrics = (await client.call("metrics", None))["result"]["strategies"]
    return min(int(m["candles"]) for m in metrics.values())


async def _stream_settled(process: DaemonProcess, fake: FakeBinance) -> None:
    """Stream one candle; return once both strategies have processed it and no order of theirs waits for an outcome."""
    async with ControlClient(process.socket) as client:
        before = await _candles(client)
        await fake.stream(1)
        while True:
            execution = (await client.call("status", None))["result"]["execution"]
            if await _candles(client) > before and not execution["orders_in_flight"]:
                return
            await anyio.sleep(0.01)


async def _held(process: DaemonProcess) -> set[str]:
    async with ControlClient(process.socket) as client:
        reply = await client.call("positions", None)
    assert reply["ok"], reply
    result: dict[str, Any] = reply["result"]
    return {p["position_id"] for held in result.values() for p in held["positions"]}


@pytest.mark.asyncio
async def test_kill_9_at_many_points_leaves_no_order_on_the_exchange_without_its_journal_entry(short_tmp: Path) -> None:
    async with FakeBinance({ETH: ETH_1M}, start=START) as fake:
        fake.set_balance("BTC", "10")
        config = write_config(short_tmp, fake)
        committed: set[str] = set()  # positions open in the journal at the last kill
        restored_some = False
        for starts, (orders_first, streamed) in enumerate(KILLS, start=1):
            process = DaemonProcess(config, env=fake.credential_env())
            try:
                with anyio.fail_after(60):
                    await anyio.to_thread.run_sync(process.wait_ready)  # blocking: the fake answers from this loop
                    # Restored (and reconciled with what the exchange did while it was down) before it trades.
                    held = await _held(process)
                    assert committed <= held | (committed - _open_positions(short_tmp)), (committed, held)
                    await fake.wait_subscribed(starts)
                    if orders_first:
                        target = len(fake.orders) + orders_first
                        while len(fake.orders) < target:
                            await _stream_settled(process, fake)
                    else:
                        await fake.stream(streamed)
            finally:
                assert await anyio.to_thread.run_sync(process.stop, signal.SIGKILL) in (-signal.SIGKILL, 0)
            on_exchange = {order.client_id for order in fake.orders}
            missing = on_exchange - _journalled_orders(short_tmp)
            assert not missing, f"kill {starts}: orders on the exchange without a journal entry: {sorted(missing)}"
            committed = _open_positions(short_tmp)
            restored_some = restored_some or bool(committed)
        assert len(fake.orders) >= sum(n for n, _ in KILLS), [o.client_id for o in fake.orders]
        assert restored_some, "no kill left a position open: the restore check proved nothing"
