"""`bot run` in mode live: orders go through ccxt to the fake Binance, and a restart reconciles the journal with it.

A real daemon process trades with a test strategy (strategies/buy_then_dip.py: a market buy,
then a resting limit buy) on an account of the fake exchange, keys passed only through the
environment. Killed with -9 while its limit order rests; the order fills while it is down;
restarted, it books that fill before trading and reports the difference.
"""
from __future__ import annotations

import shutil
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from bot.control.client import ControlClient
from bot.journal import Journal
from tests.daemon.process import DaemonProcess, journal_rows
from tests.fake_exchange import FakeBinance
from tests.support import ETH_1M

ETH = "ETH/BTC"
START = 1200
HERE = Path(__file__).parent


def write_config(folder: Path, fake: FakeBinance, limit_price: float) -> Path:
    """A mode-live config trading buy_then_dip on the fake's ETH/BTC with fast order polling."""
    (folder / "strategies").mkdir(exist_ok=True)
    shutil.copy(HERE / "live_strategies" / "buy_then_dip.py", folder / "strategies" / "buy_then_dip.py")
    strategy = {
        "id": "dip",
        "module": "buy_then_dip",
        "symbol": ETH,
        "timeframe": "1m",
        "quantity": 0.5,
        "starting_balance": 1.0,
        "risk": {"max_open_positions": 2},
        "params": {"limit_price": limit_price, "limit_quantity": 0.2},
    }
    (folder / "strategies" / "dip.json").write_bytes(orjson.dumps(strategy))
    exchange = fake.signed_exchange_config(
        feed={"symbols": [ETH], "timeframe": "1m", "backfill": 60, "reconnect_min_s": 0.05, "reconnect_max_s": 0.2},
        execution={"poll_interval_s": 0.05, "lookup_delay_s": 0.05, "retry_min_s": 0.01, "retry_max_s": 0.05},
    )
    config = {
        "mode": "live",
        "feed": {"source": "ccxt"},
        "exchange": exchange,
        "control": {"socket": "bot.sock"},
        "journal": {"path": "journal.sqlite"},
        "strategies": [{"file": "strategies/dip.json"}],
    }
    path = folder / "config.json"
    path.write_bytes(orjson.dumps(config, option=orjson.OPT_INDENT_2))
    return path


async def call(process: DaemonProcess, cmd: str, args: dict[str, Any] | None = None) -> Any:
    async with ControlClient(process.socket) as client:
        reply = await client.call(cmd, args)
    assert reply["ok"], reply
    return reply["result"]


async def until(probe: Any, what: str, timeout: float = 10.0) -> Any:
    with anyio.fail_after(timeout):
        while True:
            value = probe()
            if hasattr(value, "__await__"):
                value = await value
            if value:
                return value
            await anyio.sleep(0.03)
    raise AssertionError(what)


@asynccontextmanager
async def daemon(config: Path, fake: FakeBinance) -> AsyncIterator[DaemonProcess]:
    """`bot run` with the fake's keys in its environment only; ready once its feed plays."""
    process = DaemonProcess(config, env=fake.credential_env())
    try:
        with anyio.fail_after(30):
            await anyio.to_thread.run_sync(process.wait_ready)  # blocking: the fake answers from this loop
        yield process
    finally:
        await anyio.to_thread.run_sync(process.stop)


def limit_reached_within(fake: FakeBinance, first: int, count: int) -> float:
    """A limit buy price the market reaches between candles `first` and `first + count` but not on candle `first`."""
    values = fake.market(ETH).series.values
    low = min(Decimal(v[2]) for v in values[first + 1 : first + count])
    assert low < Decimal(values[first][2]), "the test needs a price reached after the first candle"
    return float(low)


@pytest.mark.asyncio
async def test_a_restart_reconciles_a_limit_order_filled_while_the_daemon_was_down(short_tmp: Path) -> None:
    async with FakeBinance({ETH: ETH_1M}, start=START) as fake:
        fake.set_balance("BTC", "1")
        limit = limit_reached_within(fake, START, 30)
        config = write_config(short_tmp, fake, limit)
        async with daemon(config, fake) as first:
            await fake.wait_subscribed()
            await fake.stream(1)
            await until(lambda: [(o.client_id, o.status) for o in fake.orders] == [("dip-1", "FILLED"), ("dip-2", "NEW")], "a filled and a resting order")
            held = await until(lambda: _positions(first), "the market buy booked")
            assert [p["quantity"] for p in held["positions"]] == [0.5] and held["pending_orders"] == ["dip-2"]
            assert first.stop(signal.SIGKILL) == -signal.SIGKILL  # a crash, not a graceful stop
        log = first.log.read_text()
        assert fake.secret not in log and fake.api_key not in log

        await fake.stream(30)  # while the daemon is down, the market reaches the limit
        assert [o.status for o in fake.orders] == ["FILLED", "FILLED"]

        async with daemon(config, fake) as second:
            held = await _positions(second)
            assert held is not None
            assert sorted(p["quantity"] for p in held["positions"]) == [0.2, 0.5] and held["pending_orders"] == []
            entry = next(p for p in held["positions"] if p["quantity"] == 0.2)
            assert entry["entry_price"] == pytest.approx(limit)
            # Pushed before the restarted daemon subscribed, the candles would reach nobody (a loaded
            # machine failed here once): its subscription is the second one the fake has seen.
            await fake.wait_subscribed(2)
            await fake.stream(2)
            # It acted once: once it has decided on both candles, nothing new was sent after the restart
            # (an order it decides on is tracked by the gateway at once, before it is sent).
            await until(lambda: _processed(second, 2), "the two streamed candles processed")
            execution = (await call(second, "status"))["execution"]
            assert (execution["sent"], execution["orders_in_flight"]) == (0, [])
            assert [o.client_id for o in fake.orders] == ["dip-1", "dip-2"]
        assert second.proc.returncode == 0
    log = second.log.read_text()
    assert "filled while the bot was down" in log and "reconciliation with binance found 1 difference" in log
    with Journal(short_tmp / "journal.sqlite") as journal:
        assert journal.pending_orders("dip") == []
        assert sorted(p["quantity"] for p in journal.open_positions("dip")) == [0.2, 0.5]


async def _processed(process: DaemonProcess, candles: int) -> bool:
    metrics = await call(process, "metrics")
    return bool(metrics["strategies"]["dip"]["candles"] >= candles)


async def _positions(process: DaemonProcess) -> dict[str, Any] | None:
    held: dict[str, Any] = (await call(process, "positions"))["dip"]
    return held if held["positions"] else None


@pytest.mark.asyncio
async def test_an_order_refused_for_insufficient_funds_is_journalled_as_a_tagged_rejection(short_tmp: Path) -> None:
    async with FakeBinance({ETH: ETH_1M}, start=START) as fake:
        fake.set_balance("BTC", "0.001")
        config = write_config(short_tmp, fake, 0.01)
        async with daemon(config, fake) as process:
            await fake.wait_subscribed()
            await fake.stream(1)
            status = await until(lambda: _rejections(short_tmp), "the rejection journalled")
            assert status[0]["kind"] == "insufficient_funds" and "insufficient balance" in status[0]["exchange_reason"]
            state = await call(process, "status")
            assert state["strategies"]["dip"]["state"] == "active"
            execution = state["execution"]
            assert (execution["gateway"], execution["exchange"], execution["running"]) == ("live", "binance", True)
            assert execution["sent"] >= 1 and execution["unconfirmed"] == [] and state["health"] == "ok"
        assert process.proc.returncode == 0
    assert fake.orders == []


def _rejections(folder: Path) -> list[dict[str, Any]]:
    rows = journal_rows(folder, "SELECT payload FROM strategy_events WHERE strategy_id = 'dip' AND type = 'order_rejected' ORDER BY n")
    return [orjson.loads(payload) for (payload,) in rows]
