"""Mode live: a graceful stop waits for the orders on their way (a bounded wait, which a second signal ends).

A real `bot run` trades buy_then_dip on the fake Binance through the real ccxt client, with a
stop-loss resting on the exchange and a real SQLite journal. On spot a close first cancels the
position's stop and is sent only when the cancel is answered: the fake holds every cancel
(`faults.hold_cancels`) until the test releases it, so the daemon stops exactly while the close
is held. The bound running out is seen on a daemon run in process, built with a short bound.
"""
from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from bot.control.client import ControlClient
from bot.journal import Journal
from bot.kernel.daemon import Daemon
from bot.log import BotLogger
from bot.strategy.config_load import load_config
from tests.daemon.process import DaemonProcess
from tests.daemon.test_live_stops import _with_stop_loss
from tests.daemon.test_live_trading import ETH, START, call, until, write_config
from tests.fake_exchange import FakeBinance
from tests.support import ETH_1M


def _log_or_exit(process: DaemonProcess, text: str, timeout: float = 30.0) -> bool:
    """Block until the daemon logs `text` (True) or exits (False); run it in a thread: the fake answers from the test's loop."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in process.log.read_text():
            return True
        if process.proc.poll() is not None:
            return text in process.log.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not logged after {timeout}s:\n{process.log.read_text()}")


def _exit_code(process: DaemonProcess, timeout: float = 30.0) -> int | None:
    """The exit code once the daemon ends within `timeout` seconds, else None (it is killed then, never leaked)."""
    try:
        return process.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        process.stop(signal.SIGKILL)
        return None


@asynccontextmanager
async def _started(config: Path, fake: FakeBinance) -> AsyncIterator[DaemonProcess]:
    """`bot run` on `config`, ready once its feed plays; killed at the end if the test left it running."""
    process = DaemonProcess(config, env=fake.credential_env())
    try:
        with anyio.fail_after(30):
            await anyio.to_thread.run_sync(process.wait_ready)
        yield process
    finally:
        await anyio.to_thread.run_sync(process.stop, signal.SIGKILL)


async def _ask(socket: Path, cmd: str, args: dict[str, Any] | None = None) -> Any:
    """A control command's result, from a daemon run as a process or in this one."""
    async with ControlClient(socket) as client:
        reply = await client.call(cmd, args)
    assert reply["ok"], reply
    return reply["result"]


async def _position_with_its_stop_resting(socket: Path, fake: FakeBinance) -> None:
    """Stream the first live candle: dip-1 buys at market (booked), dip-2 rests far below, dip-3 is the position's stop, resting."""
    await fake.wait_subscribed()
    await fake.stream(1)
    await until(
        lambda: sorted((o.client_id, o.type, o.status) for o in fake.orders)
        == [("dip-1", "MARKET", "FILLED"), ("dip-2", "LIMIT", "NEW"), ("dip-3", "STOP_LOSS", "NEW")],
        "the entry filled, the dip and the stop resting",
    )
    await until(lambda: _booked(socket), "the market buy booked")
    await until(lambda: _stop_resting(socket), "the stop confirmed resting")


async def _booked(socket: Path) -> bool:
    return bool((await _ask(socket, "positions"))["dip"]["positions"])


async def _stop_resting(socket: Path) -> bool:
    rows = (await _ask(socket, "status"))["execution"]["stops"]["positions"].get("dip", [])
    return bool(rows) and rows[0]["state"] == "resting"


async def _stop(process: DaemonProcess, how: str) -> None:
    if how == "sigterm":
        process.proc.send_signal(signal.SIGTERM)
    else:
        async with ControlClient(process.socket) as client:
            assert (await client.call("shutdown"))["ok"]


def _sells(fake: FakeBinance) -> list[tuple[str, str]]:
    return [(o.client_id, o.status) for o in fake.orders if o.side == "SELL" and o.type == "MARKET"]


def _dip_with_a_stop_loss(folder: Path, fake: FakeBinance) -> Path:
    """The dip strategy's config on the fake with BTC to buy with and a stop-loss to rest on the exchange."""
    fake.set_balance("BTC", "1")
    config = write_config(folder, fake, 0.01)
    _with_stop_loss(config)
    return config


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["sigterm", "shutdown"])
async def test_a_graceful_stop_right_after_unload_close_waits_for_the_close_held_behind_its_stops_cancel(short_tmp: Path, how: str) -> None:
    async with FakeBinance({ETH: ETH_1M}, start=START) as fake:
        config = _dip_with_a_stop_loss(short_tmp, fake)
        async with _started(config, fake) as process:
            await _position_with_its_stop_resting(process.socket, fake)
            released = fake.faults.hold_cancels()
            unloaded = await call(process, "unload", {"id": "dip", "close_positions": True})
            # The close (dip-4) waits for the stop's cancel, which the exchange has not taken yet.
            assert unloaded["settling"] == ["dip-2", "dip-3"]
            await _stop(process, how)
            waited = await anyio.to_thread.run_sync(_log_or_exit, process, "stopping: waiting up to")
            released.set()  # the exchange takes the cancels: the close can go out, if the daemon still runs
            code = await anyio.to_thread.run_sync(_exit_code, process)
            log = process.log.read_text()
        assert code == 0, log
        assert _sells(fake) == [("dip-4", "FILLED")], log
        assert waited and "[dip] dip-4 (close sell 0.5 ETH/BTC of dip-p1): held until its stop is cancelled" in log
        assert "stopping: every order on its way has its outcome" in log
        assert fake.balances()["ETH"] == (Decimal(0), Decimal(0))
    with Journal(short_tmp / "journal.sqlite") as journal:
        assert journal.open_positions("dip") == [] and journal.pending_orders("dip") == []
        assert journal.strategy_states()["dip"].state == "unloaded"


@pytest.mark.asyncio
async def test_a_second_signal_ends_the_wait_and_says_what_was_still_on_its_way(short_tmp: Path) -> None:
    async with FakeBinance({ETH: ETH_1M}, start=START) as fake:
        config = _dip_with_a_stop_loss(short_tmp, fake)
        async with _started(config, fake) as process:
            await _position_with_its_stop_resting(process.socket, fake)
            fake.faults.hold_cancels()  # never released: the close never goes out
            await call(process, "unload", {"id": "dip", "close_positions": True})
            process.proc.send_signal(signal.SIGTERM)
            assert await anyio.to_thread.run_sync(_log_or_exit, process, "stopping: waiting up to")
            process.proc.send_signal(signal.SIGTERM)
            code = await anyio.to_thread.run_sync(_exit_code, process)
            log = process.log.read_text()
        assert code == 0, log
        assert "received SIGTERM (already stopping)" in log
        line = next(line for line in log.splitlines() if "a second signal ends the wait" in line)
        assert "dip-4" in line and "held until its stop is cancelled" in line and "[dip] unloaded, settling" in line
        assert _sells(fake) == []


@pytest.mark.asyncio
async def test_a_stop_during_reconciliation_does_not_wait_for_the_orders_it_was_looking_up(short_tmp: Path) -> None:
    async with FakeBinance({ETH: ETH_1M}, start=START) as fake:
        config = _dip_with_a_stop_loss(short_tmp, fake)
        async with _started(config, fake) as first:
            await _position_with_its_stop_resting(first.socket, fake)
            first.stop(signal.SIGKILL)  # the dip and the stop pending in the journal: the next start looks them up
        fake.faults.hold_lookups()  # never released: reconciliation never finishes
        before = len(fake.requests)
        second = DaemonProcess(config, env=fake.credential_env())
        try:
            await until(lambda: any(path == "/api/v3/order" for path, _ in fake.requests[before:]), "a reconciliation lookup held", timeout=30)
            second.proc.send_signal(signal.SIGTERM)
            code = await anyio.to_thread.run_sync(_exit_code, second)
        finally:
            await anyio.to_thread.run_sync(second.stop, signal.SIGKILL)
        log = second.log.read_text()
        assert code == 0, log
        # Trading never started: nothing can be held behind a cancel, so nothing is waited for.
        assert "stopped before trading started" in log and "stopping: waiting up to" not in log, log
        assert len(fake.orders) == 3, log  # nothing sent


@pytest.mark.asyncio
async def test_shutdown_then_one_sigterm_as_systemd_sends_them_still_waits_for_the_held_close(short_tmp: Path) -> None:
    async with FakeBinance({ETH: ETH_1M}, start=START) as fake:
        config = _dip_with_a_stop_loss(short_tmp, fake)
        async with _started(config, fake) as process:
            await _position_with_its_stop_resting(process.socket, fake)
            released = fake.faults.hold_cancels()
            await call(process, "unload", {"id": "dip", "close_positions": True})
            await _stop(process, "shutdown")  # systemd's ExecStop=, then its SIGTERM: one signal, not a second
            assert await anyio.to_thread.run_sync(_log_or_exit, process, "stopping: waiting up to")
            process.proc.send_signal(signal.SIGTERM)
            assert await anyio.to_thread.run_sync(_log_or_exit, process, "received SIGTERM (already stopping)")
            released.set()
            code = await anyio.to_thread.run_sync(_exit_code, process)
            log = process.log.read_text()
        assert code == 0, log
        assert _sells(fake) == [("dip-4", "FILLED")], log
        assert "stopping: every order on its way has its outcome" in log and "a second signal ends the wait" not in log


@pytest.mark.asyncio
async def test_the_bound_ends_the_wait_and_says_what_was_still_on_its_way(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with FakeBinance({ETH: ETH_1M}, start=START) as fake:
        config = _dip_with_a_stop_loss(short_tmp, fake)
        for name, value in fake.credential_env().items():
            monkeypatch.setenv(name, value)  # the daemon reads the keys the config names from its environment
        log_file = short_tmp / "daemon.log"
        logger = BotLogger.to_stderr(name="bot.tests.live_shutdown.bound", log_file=log_file)
        # In process, with a bound far below ORDERS_STOP_WAIT_S: what it is matters not, the held close never goes out.
        daemon = Daemon(load_config(config), [], logger, orders_stop_wait_s=0.5)
        codes: list[int] = []

        async def run() -> None:
            codes.append(await daemon.run())

        try:
            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(run)
                    await until(daemon.socket_path.exists, "the control socket")
                    await _position_with_its_stop_resting(daemon.socket_path, fake)
                    fake.faults.hold_cancels()  # never released
                    await _ask(daemon.socket_path, "unload", {"id": "dip", "close_positions": True})
                    await _ask(daemon.socket_path, "shutdown")
        finally:
            logger.close()
        log = log_file.read_text()
        assert codes == [0], log
        assert "stopping: waiting up to 0.5 s for what is on its way to the exchange: " in log
        line = next(line for line in log.splitlines() if "stopping: still on their way after 0.5 s: " in line)
        assert "WARNING" in line and "[dip] dip-4 (close sell 0.5 ETH/BTC of dip-p1): held until its stop is cancelled" in line, line
        assert _sells(fake) == [] and not daemon.socket_path.exists()
