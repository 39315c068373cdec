"""`bot record` against the fake exchange: the served file comes back byte for byte, across a kill -9, a signal during the start, `--until` inside the backfill; an exchange that cannot be reached ends it with one line."""
from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.fmt import format_time
from bot.live.candle_csv import CandleCsv, format_number
from bot.ohlcv import Candle
from tests.fake_exchange import FakeBinance
from tests.live.support import ETH, until
from tests.support import ETH_1M, REPO

DOWN = 10**6  # REST requests the fake refuses with 503: down until the test clears the fault


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()


async def start_recorder(tmp: Path, fake: FakeBinance, *extra: str, exchange: dict[str, Any] | None = None) -> asyncio.subprocess.Process:
    """`bot record` of ETH/BTC 1m from the fake into tmp/out; `exchange` replaces the config's exchange section."""
    config = tmp / "config.json"
    config.write_text(json.dumps({"exchange": exchange or fake.exchange_config(feed={"reconnect_min_s": 0.05})}))
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "record", "--config", str(config), "--symbols", ETH, "--timeframe", "1m",
        "--out", str(tmp / "out"), *extra,
        cwd=REPO, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )


async def finished(process: asyncio.subprocess.Process, timeout: float = 30) -> int:
    _, stderr = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode == 0, stderr.decode()
    return process.returncode


def rows(path: Path) -> int:
    return path.read_bytes().count(b"\n") - 1 if path.exists() else 0


async def stderr_until(process: asyncio.subprocess.Process, text: str, timeout: float = 30) -> str:
    """The recorder's stderr up to and including the first line containing `text`."""
    assert process.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while not seen or text not in seen[-1]:
        try:
            line = await asyncio.wait_for(process.stderr.readline(), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise AssertionError(f"no {text!r} after {timeout} s:\n{''.join(seen)}") from None
        if not line:
            raise AssertionError(f"the recorder ended before logging {text!r}:\n{''.join(seen)}")
        seen.append(line.decode())
    return "".join(seen)


@pytest.mark.asyncio
async def test_recording_the_fake_reproduces_the_served_file_byte_for_byte(tmp_path: Path) -> None:
    source = ETH_1M.read_bytes()
    async with FakeBinance({ETH: ETH_1M}, start=10**9) as fake:  # every candle closed already
        stamps = fake.market(ETH).series.stamps
        process = await start_recorder(tmp_path, fake, "--since", iso(stamps[0]), "--until", iso(stamps[-1] + 60_000))
        await finished(process)
    assert (tmp_path / "out" / "ETH-BTC_1m.csv").read_bytes() == source


@pytest.mark.asyncio
async def test_a_killed_recorder_restarts_without_losing_or_duplicating_rows(tmp_path: Path) -> None:
    lines = ETH_1M.read_bytes().splitlines(keepends=True)
    out = tmp_path / "out" / "ETH-BTC_1m.csv"
    async with FakeBinance({ETH: ETH_1M}, start=3000) as fake:
        stamps = fake.market(ETH).series.stamps
        first = await start_recorder(tmp_path, fake, "--since", iso(stamps[0]))
        try:
            await until(lambda: rows(out) >= 3000, timeout=20, what="the backfill on disk")
            await fake.wait_subscribed(timeout=20)
            await fake.stream(10, pause=0.002)
            await until(lambda: rows(out) >= 3008, timeout=10, what="streamed rows on disk")
        finally:
            first.send_signal(signal.SIGKILL)
            await first.wait()
        # A write torn by the kill, and candles that close while no recorder runs.
        with out.open("ab") as torn:
            torn.write(lines[3010][:17])
        await fake.stream(10)
        second = await start_recorder(tmp_path, fake, "--until", iso(stamps[3040]))
        await fake.wait_subscribed(2, timeout=20)
        await fake.stream(21, pause=0.002)  # through the close of candle 3040
        await finished(second)
    assert out.read_bytes() == b"".join(lines[: 3040 + 1])


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["closed port", "HTTP 503"])
async def test_an_exchange_that_cannot_be_reached_ends_the_record_after_the_bound_with_one_error_line(tmp_path: Path, how: str) -> None:
    async def record() -> tuple[int | None, str]:
        process = await start_recorder(tmp_path, fake, exchange=exchange)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
        return process.returncode, stderr.decode()

    async with FakeBinance({ETH: ETH_1M}, start=3000) as fake:
        exchange = fake.exchange_config(start_timeout_s=1, feed={"reconnect_min_s": 0.05, "reconnect_max_s": 0.2})
        if how == "HTTP 503":
            fake.faults.rest_errors(503, DOWN)
            code, text = await record()
    if how == "closed port":  # the fake has stopped listening: nothing answers on its port
        code, text = await record()
    assert code == 2, text
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert errors == [text.splitlines()[-1]], text  # one error line, the last
    assert errors[0].startswith("error: exchange unreachable: binance: markets not loaded within 1 s (exchange.start_timeout_s; "), text
    assert "last error: " in errors[0] and "Traceback" not in text


@pytest.mark.asyncio
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_while_the_exchange_cannot_be_reached_at_start_ends_the_record_with_exit_0_and_nothing_lost(
    tmp_path: Path, sig: signal.Signals
) -> None:
    lines = ETH_1M.read_bytes().splitlines(keepends=True)
    out = tmp_path / "out" / "ETH-BTC_1m.csv"
    async with FakeBinance({ETH: ETH_1M}, start=3000) as fake:
        stamps = fake.market(ETH).series.stamps
        await finished(await start_recorder(tmp_path, fake, "--since", iso(stamps[0]), "--until", iso(stamps[100])))
        recorded = out.read_bytes()
        assert recorded == b"".join(lines[:101])
        fake.faults.rest_errors(503, DOWN)
        stopped = await start_recorder(tmp_path, fake)
        before = await stderr_until(stopped, "loading markets failed")
        # The resumed file's last row, in UTC, not epoch milliseconds.
        assert f"resuming {out} after {format_time(stamps[99])}" in before
        stopped.send_signal(sig)
        _, rest = await asyncio.wait_for(stopped.communicate(), 30)
        text = before + rest.decode()
        assert stopped.returncode == 0, text
        assert "Traceback" not in text and "error:" not in text
        assert out.read_bytes() == recorded
        fake.faults.rest.clear()  # the exchange is back: a resumed recorder continues after what was written
        await finished(await start_recorder(tmp_path, fake, "--until", iso(stamps[300])))
    assert out.read_bytes() == b"".join(lines[:301])


@pytest.mark.asyncio
async def test_until_inside_the_backfill_ends_the_record_with_every_candle_before_it(tmp_path: Path) -> None:
    lines = ETH_1M.read_bytes().splitlines(keepends=True)
    out = tmp_path / "out" / "ETH-BTC_1m.csv"
    async with FakeBinance({ETH: ETH_1M}, start=3000) as fake:
        stamps = fake.market(ETH).series.stamps
        # Pages of 1000: `until` is reached in the second, with more of the backfill to come.
        process = await start_recorder(tmp_path, fake, "--since", iso(stamps[0]), "--until", iso(stamps[1500]))
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    text = stderr.decode()
    assert process.returncode == 0, text
    assert "Traceback" not in text
    assert out.read_bytes() == b"".join(lines[:1501])
    # State details as key=value fields, not a dict's repr.
    assert "feed ETH/BTC 1m: backfilling reason=start\n" in text and "{'" not in text


def test_a_torn_last_line_is_cut_and_the_file_resumes_after_the_last_whole_row(tmp_path: Path) -> None:
    path = tmp_path / "X-Y_1m.csv"
    path.write_text("ts_ms,open,high,low,close,volume\n60000,1,2,1,1.5,3\n120000,1.5,2")
    recording = CandleCsv(path)
    assert recording.open() == 60_000
    recording.append(Candle(120_000, 1.5, 2.0, 1.25, 1.75, 0.00001))
    recording.close()
    assert path.read_text() == "ts_ms,open,high,low,close,volume\n60000,1,2,1,1.5,3\n120000,1.5,2,1.25,1.75,0.00001\n"


def test_a_torn_header_is_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "X-Y_1m.csv"
    path.write_text("ts_ms,op")
    recording = CandleCsv(path)
    assert recording.open() is None
    recording.close()
    assert path.read_text() == "ts_ms,open,high,low,close,volume\n"


def test_a_file_that_is_not_a_recording_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "X-Y_1m.csv"
    path.write_text("date,price\n2020-01-01,3\n")
    with pytest.raises(ValueError, match="not a candle recording"):
        CandleCsv(path).open()


@pytest.mark.parametrize("text", ["0.08939998", "46319", "0.00001", "123.5", "36301200", "0.0000001"])
def test_numbers_are_written_as_the_source_wrote_plain_decimals(text: str) -> None:
    assert format_number(float(text)) == text
