"""`bot run`'s log: -q/-v/--log-level over daemon.log_level, --log-file, UTC times and key=value fields."""
from __future__ import annotations

import re
import stat
import subprocess
import sys
from pathlib import Path

import orjson

from tests.daemon.process import DaemonProcess, write_daemon_config
from tests.support import SHARED_DATA

XMR = "XMR/BTC"
# Every log line: "2026-01-05 12:00:00.123Z LEVEL text", the time in UTC.
_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR) .+")


def xmr_config(folder: Path, **daemon: object) -> Path:
    """A daemon trading XMR/BTC on 400 recorded candles: its holes make warnings to log."""
    data = folder / "XMR-BTC_1m.csv"
    data.write_text("\n".join((SHARED_DATA / "XMR-BTC_1m.csv").read_text().splitlines()[:401]) + "\n")
    (folder / "xmr.json").write_bytes(
        orjson.dumps({"id": "xmr", "symbol": XMR, "timeframe": "1m", "quantity": 1, "analyzers": [{"type": "ema_cross", "params": {"fast": 3, "slow": 6}}]})
    )
    return write_daemon_config(
        folder,
        replay={"candles": {XMR: {"path": str(data), "timeframe": "1m"}}},
        feed={"speed": 3000, "loop": True, "backfill": 50},
        strategies=[{"file": "xmr.json"}],
        daemon=daemon,
    )


def run_steps(config: Path, *args: str) -> list[str]:
    """Run a stepped daemon with `args` over 300 candles, stop it; its stderr lines."""
    daemon = DaemonProcess(config, stepped=True, args=args)
    try:
        daemon.wait_ready()
        daemon.step(300)
    finally:
        assert daemon.stop() == 0, daemon.log.read_text()[-3000:]
    return daemon.log.read_text().splitlines()


def levels(lines: list[str]) -> set[str]:
    return {line.split(" ")[2] for line in lines}


def test_the_log_file_gets_every_line_of_stderr_in_utc_with_key_value_fields(short_tmp: Path) -> None:
    log_file = short_tmp / "logs" / "bot.log"
    lines = run_steps(xmr_config(short_tmp), "--log-file", "logs/bot.log")
    assert log_file.read_text().splitlines() == lines
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600  # trading history: the user's alone
    assert all(_LINE.fullmatch(line) for line in lines), lines
    text = "\n".join(lines)
    assert "feed_state state=playing candles=50 speed=3000" in text
    assert re.search(r'WARNING candle gaps? symbol=XMR/BTC timeframe=1m ', text)
    # No Python dict reprs, no epoch milliseconds.
    assert "{'" not in text and not re.search(r"\b1[0-9]{12}\b", text)


def test_the_log_file_is_appended_to_by_the_next_run(short_tmp: Path) -> None:
    config = xmr_config(short_tmp)
    first = run_steps(config, "--log-file", "bot.log")
    second = run_steps(config, "--log-file", "bot.log")
    assert (short_tmp / "bot.log").read_text().splitlines() == first + second


def test_quiet_logs_warnings_only_and_log_level_overrides_the_config(short_tmp: Path) -> None:
    quiet = run_steps(xmr_config(short_tmp), "-q")
    assert levels(quiet) == {"WARNING"}  # the gap lines, and nothing at INFO
    # The config asks for errors only; --log-level asks for more and wins.
    (short_tmp / "journal.sqlite").unlink()
    louder = run_steps(xmr_config(short_tmp, log_level="ERROR"), "--log-level", "info")
    assert levels(louder) == {"INFO", "WARNING"}
    (short_tmp / "journal.sqlite").unlink()
    assert run_steps(xmr_config(short_tmp, log_level="ERROR")) == []  # daemon.log_level alone


def test_verbose_and_quiet_together_are_a_usage_error(short_tmp: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "bot", "run", "-v", "-q"], cwd=short_tmp, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "not allowed with argument" in done.stderr


def test_a_log_file_that_cannot_be_opened_is_one_error_line_before_anything_starts(short_tmp: Path) -> None:
    config = xmr_config(short_tmp)
    (short_tmp / "taken").write_text("a file, not a folder")
    done = subprocess.run(
        [sys.executable, "-m", "bot", "run", "--config", str(config), "--log-file", "taken/bot.log"], cwd=short_tmp, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == ["error: --log-file taken/bot.log: taken is not a folder"]
    assert not (short_tmp / "journal.sqlite").exists() and not (short_tmp / "bot.sock").exists()
