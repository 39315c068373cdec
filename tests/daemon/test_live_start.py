"""`bot run` starting while the exchange cannot be reached: status degraded with the reason, then ok; or exit 2 after the bound.

Real daemon processes on the fake Binance through the real ccxt client: with feed.source ccxt in
mode paper (the feed loads the markets) and in mode live (the gateway loads them first). The
exchange is down while the fake answers every REST request with HTTP 503.
"""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from bot.control.client import ControlClient, DaemonNotRunning
from tests.daemon.process import DaemonProcess
from tests.daemon.test_live_feed import write_live_config
from tests.daemon.test_live_trading import START, write_config
from tests.fake_exchange import FakeBinance
from tests.support import ETH_1M

ETH = "ETH/BTC"
DOWN = 10**6  # REST requests the fake refuses with 503: down until the test clears the fault


def config_for(mode: str, folder: Path, fake: FakeBinance, start_timeout_s: float | None = None) -> Path:
    """A paper config on the live feed, or a mode-live one; `start_timeout_s` in its exchange section when given."""
    bound: dict[str, Any] = {} if start_timeout_s is None else {"start_timeout_s": start_timeout_s}
    if mode == "live":
        path = write_config(folder, fake, 0.01)
        config: dict[str, Any] = orjson.loads(path.read_bytes())
        config["exchange"].update(bound)
        path.write_bytes(orjson.dumps(config))
        return path
    return write_live_config(folder, fake.exchange_config(**bound))


async def status_of(process: DaemonProcess) -> dict[str, Any] | None:
    """The daemon's `status`, or None while its control socket is not up yet."""
    if process.proc.poll() is not None:
        raise AssertionError(f"daemon exited with {process.proc.returncode}:\n{process.log.read_text()}")
    try:
        async with ControlClient(process.socket) as client:
            reply = await client.call("status")
    except DaemonNotRunning:
        return None
    assert reply["ok"], reply
    result: dict[str, Any] = reply["result"]
    return result


async def status_when(process: DaemonProcess, condition: Any, what: str, timeout: float = 30.0) -> dict[str, Any]:
    """Ask for `status` until `condition(status)` holds; fail naming `what` with the last status and the log."""
    last: dict[str, Any] | None = None
    try:
        with anyio.fail_after(timeout):
            while True:
                last = await status_of(process)
                if last is not None and condition(last):
                    return last
                await anyio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"no status with {what} after {timeout} s; last: {last}\n{process.log.read_text()[-3000:]}") from None


def _exit_code(process: DaemonProcess, timeout: float) -> int | None:
    try:
        return process.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["paper", "live"])
async def test_status_is_degraded_with_the_reason_while_the_exchange_cannot_be_reached_at_start_then_ok(short_tmp: Path, mode: str) -> None:
    async with FakeBinance({ETH: ETH_1M}, start=START) as fake:
        fake.set_balance("BTC", "1")
        fake.faults.rest_errors(503, DOWN)
        process = DaemonProcess(config_for(mode, short_tmp, fake), env=fake.credential_env())  # the default bound: a minute
        try:
            waiting = await status_when(process, lambda s: s["health"] == "degraded", "health degraded")
            # Binance's 503 says -1001 "internal error; try again": ccxt's OperationFailed.
            assert [p for p in waiting["problems"] if p.startswith("exchange unreachable at start: OperationFailed: binance ") and "(retrying, attempt " in p], waiting
            fake.faults.rest.clear()  # the exchange is back
            healthy = await status_when(process, lambda s: s["health"] == "ok" and s["feed"]["state"] == "playing", "health ok, feed playing")
            assert healthy["problems"] == []
            assert await anyio.to_thread.run_sync(process.stop) == 0
        finally:
            await anyio.to_thread.run_sync(process.stop)
    assert "Traceback" not in process.log.read_text()


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["paper", "live"])
async def test_a_start_the_exchange_never_answers_ends_after_the_bound_with_one_error_line_and_exit_2(short_tmp: Path, mode: str) -> None:
    async with FakeBinance({ETH: ETH_1M}, start=START) as fake:
        fake.faults.rest_errors(503, DOWN)
        process = DaemonProcess(config_for(mode, short_tmp, fake, start_timeout_s=1), env=fake.credential_env())
        try:
            code = await anyio.to_thread.run_sync(_exit_code, process, 30.0)
        finally:
            await anyio.to_thread.run_sync(process.stop)
    log = process.log.read_text()
    assert code == 2, log
    errors = [line for line in log.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, log
    assert errors[0].startswith("error: exchange unreachable: binance: markets not loaded within 1 s (exchange.start_timeout_s; "), log
    assert "last error: OperationFailed: binance " in errors[0]
    assert "Traceback" not in log
    assert not process.socket.exists()
    assert not [path for path, _ in fake.requests if path == "/api/v3/order"]
