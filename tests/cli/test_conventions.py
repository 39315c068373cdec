"""What users expect of the `bot` command line: --version, one line per strategy in a pipe, the log options of replay and record."""
from __future__ import annotations

import asyncio
import json
import re
import shutil
import stat
import sys
from datetime import UTC, datetime
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


# A strategy that fails partway: an ERROR line that the log must hold, however quiet.
_BOOM = '''
"""Fails on its 100th candle."""
from bot.strategy.base import Strategy


class Boom(Strategy):
    """Raises on its 100th candle."""

    name = "boom"
    version = "1.0.0"

    def __init__(self, params, context):
        super().__init__(params, context)
        self.seen = 0

    def on_candle(self, symbol, timeframe, candle):
        self.seen += 1
        if self.seen == 100:
            raise RuntimeError("boom at candle 100")
'''


def test_replay_q_is_its_quiet_and_the_log_file_is_created_for_the_user_only(tmp_path: Path) -> None:
    # The bundled replay, plus a strategy that fails.
    shutil.copytree(REPO / "strategies", tmp_path / "strategies", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "strategies" / "boom.py").write_text(_BOOM)
    (tmp_path / "strategies" / "boom.json").write_text(json.dumps({"id": "boom", "module": "boom", "symbol": "BTC/USD", "timeframe": "1m", "quantity": 0.1}))
    config = json.loads((REPO / "config.replay.json").read_text())
    for source in config["replay"]["candles"].values():
        source["path"] = str(REPO / source["path"])
    config["strategies"].append({"file": "strategies/boom.json"})
    (tmp_path / "config.json").write_text(json.dumps(config))
    done = run_bot("replay", "--config", "config.json", "--out", tmp_path / "out", "-q", "--log-file", tmp_path / "logs" / "replay.log", cwd=tmp_path)
    assert done.returncode == 3, done.stderr  # a strategy failed
    assert done.stdout == ""  # no summary table
    log = tmp_path / "logs" / "replay.log"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    # The file holds the log lines stderr showed, warnings and errors only, and not the console's own line.
    logged = log.read_text().splitlines()
    assert logged == [line for line in done.stderr.splitlines() if _LOG_LINE.fullmatch(line)]
    assert [line.split(" ", 2)[2] for line in logged] == ["ERROR [boom] strategy marked failed; its positions stay protected: RuntimeError: boom at candle 100"]
    assert "warning: strategy boom failed: RuntimeError: boom at candle 100" in done.stderr.splitlines()
    assert (tmp_path / "out" / "trades.csv").exists()


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()


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
