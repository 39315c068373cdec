"""What users expect of the `bot` command line: --version, one line per strategy in a pipe, the log options of replay and record."""
from __future__ import annotations

import asyncio
import json
import re
import stat
import sys
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import pytest

from bot.strategy.catalog import StrategyCatalog
from tests.cli.test_cli import run_bot
from tests.fake_exchange import FakeBinance
from tests.live.support import ETH
from tests.support import ETH_1M, REPO

_LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z (INFO|WARNING|ERROR) .+")


@pytest.mark.parametrize("args", [("--version",), ("version",)])
def test_the_version_is_one_line_on_stdout(args: tuple[str, ...], tmp_path: Path) -> None:
    done = run_bot(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"bot {version('bot')}\n" and done.stderr == ""


def test_strategies_in_a_pipe_is_one_line_per_strategy_with_its_first_sentence() -> None:
    done = run_bot("strategies", cwd=REPO)
    assert done.returncode == 0, done.stderr
    listed = json.loads(run_bot("strategies", "--json", cwd=REPO).stdout)
    lines = done.stdout.splitlines()
    # Never a docstring wrapped into a column of fragments: one line each, the summary's first sentence.
    assert len(lines) == len(listed) == len(StrategyCatalog.discover([REPO / "strategies"]).entries())
    for line, entry in zip(lines, listed):
        name, version_, module, sentence = line.split(maxsplit=3)
        assert (name, version_, module) == (entry["name"], entry["version"], f"{entry['module']}:{entry['class']}")
        assert entry["summary"].startswith(sentence) and sentence.endswith(".")
    hybrid = next(line for line in lines if line.startswith("hybrid "))
    assert hybrid.endswith("and in between they weigh the same.")
    # The rest is `info ID`'s.
    info = run_bot("strategies", "info", "scalping", cwd=REPO)
    assert info.returncode == 0 and "closes any position still open after `max_hold_candles` candles." in " ".join(info.stdout.split())


def test_replay_q_is_its_quiet_and_the_log_file_is_created_for_the_user_only(tmp_path: Path) -> None:
    done = run_bot("replay", "--config", "config.replay.json", "--out", tmp_path / "out", "-q", "--log-file", tmp_path / "logs" / "replay.log", cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # no summary table
    log = tmp_path / "logs" / "replay.log"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert (tmp_path / "out" / "trades.csv").exists()


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat()


async def _record(tmp: Path, fake: FakeBinance, *extra: str) -> tuple[int, str]:
    config = tmp / "config.json"
    config.write_text(json.dumps({"exchange": fake.exchange_config()}))
    stamps = fake.market(ETH).series.stamps
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "record", "--config", str(config), "--symbols", ETH, "--timeframe", "1m", "--out", str(tmp / "out"),
        "--since", _iso(stamps[0]), "--until", _iso(stamps[-1] + 60_000), *extra,
        cwd=tmp, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


@pytest.mark.asyncio
async def test_record_appends_its_log_to_the_log_file_and_q_keeps_stderr_for_warnings(tmp_path: Path) -> None:
    async with FakeBinance({ETH: ETH_1M}, start=10**9) as fake:  # every candle closed already
        code, stderr = await _record(tmp_path, fake, "--log-file", "record.log")
        assert code == 0, stderr
        logged = (tmp_path / "record.log").read_text().splitlines()
        assert logged == stderr.splitlines() and all(_LOG_LINE.fullmatch(line) for line in logged), logged
        assert any(line.endswith(f"INFO {ETH}: 14397 candles written to {tmp_path / 'out' / 'ETH-BTC_1m.csv'}") for line in logged)
        (tmp_path / "out" / "ETH-BTC_1m.csv").unlink()
        code, stderr = await _record(tmp_path, fake, "-q", "--log-file", "record.log")
    assert code == 0 and stderr == ""
    assert (tmp_path / "record.log").read_text().splitlines() == logged  # nothing at INFO the second time
