"""A real daemon process on a temporary config, its socket, and a client; stopped after each test."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support import BTC_1M, REPO


def write_daemon_config(folder: Path, **overrides: Any) -> Path:
    """config.json + the repo's strategy files in `folder`, feeding recorded BTC candles."""
    shutil.copytree(REPO / "strategies", folder / "strategies", dirs_exist_ok=True)
    config: dict[str, Any] = {
        "mode": "paper",
        "replay": {"candles": {"BTC/USD": {"path": str(BTC_1M), "timeframe": "1m"}}},
        "feed": {"speed": 3000, "loop": True, "backfill": 3000},
        "control": {"socket": "bot.sock"},
        "journal": {"path": "journal.sqlite"},
        "strategy_defaults": {"starting_balance": 10000},
        "strategies": [{"file": "strategies/ema_cross.json"}, {"file": "strategies/rsi_reversion.json"}],
    }
    for key, value in overrides.items():
        config[key] = value
    path = folder / "config.json"
    path.write_bytes(orjson.dumps(config, option=orjson.OPT_INDENT_2))
    return path


class DaemonProcess:
    """A `bot run` child process; `stop()` ends it (SIGTERM, then SIGKILL) and returns its exit code."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.folder = config.parent
        self.socket = self.folder / "bot.sock"
        self.log = self.folder / "daemon.log"
        self._log_file = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "run", "--config", str(config)],
            cwd=self.folder,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until the control socket exists and the feed is playing."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log.read_text()}")
            if self.socket.exists() and b"'playing'" in self.log.read_bytes():
                return
            time.sleep(0.05)
        raise AssertionError(f"daemon not ready after {timeout}s:\n{self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Send `sig`, wait, kill if needed; return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log_file.close()
        return self.proc.returncode


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short temporary folder: Unix socket paths must stay under ~100 characters."""
    folder = Path(tempfile.mkdtemp(prefix="botd-", dir="/tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def daemon(short_tmp: Path) -> Iterator[DaemonProcess]:
    """A running daemon with the repo's two strategies, ready to take commands."""
    process = DaemonProcess(write_daemon_config(short_tmp))
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()
