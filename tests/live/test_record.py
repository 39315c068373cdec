"""`bot record` against the fake exchange: the served file comes back byte for byte, across a kill -9."""
from __future__ import annotations

import asyncio
import json
import signal
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from bot.live.candle_csv import CandleCsv, format_number
from bot.candles.model import Candle
from tests.fake_exchange import FakeBinance
from tests.live.support import ETH, until
from tests.support import ETH_1M, REPO


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat()


async def start_recorder(tmp: Path, fake: FakeBinance, *extra: str) -> asyncio.subprocess.Process:
    config = tmp / "config.json"
    config.write_text(json.dumps({"exchange": fake.exchange_config(feed={"reconnect_min_s": 0.05})}))
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
