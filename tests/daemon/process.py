"""A real daemon process (clock-driven, or its feed stepped by the test) on a temporary config; stopped after each test."""
from __future__ import annotations

import os
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest

from tests.support import BTC_1M, REPO

T = TypeVar("T")


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


def journal_rows(folder: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of `folder`'s journal.sqlite read with plain SQLite: a running daemon's lock refuses a second Journal, never a reader."""
    with closing(sqlite3.connect(folder / "journal.sqlite")) as db:
        rows: list[tuple[Any, ...]] = db.execute(sql, params).fetchall()
    return rows


@dataclass(frozen=True, slots=True)
class Step:
    """What one `DaemonProcess.step` published: every candle of it processed by every strategy."""

    published: int
    # Close time of the newest candle published (the feed position the daemon journalled).
    last_close: int | None
    # "playing", or "ended"/"stopped" when the feed ended or was stopped during the step.
    state: str


class DaemonProcess:
    """A `bot run` child process; `stop()` ends it (SIGTERM, then SIGKILL) and returns its exit code.

    With `stepped=True` it runs tests/daemon/stepped_daemon.py instead: the same `bot run`, but
    its recorded feed publishes nothing after the backfill until `step(n)` asks for n candles,
    and `step` returns once every strategy has processed them. Between two steps the daemon's
    candle clock stands still, so what a test reads on the control socket cannot change under
    it (unless a command changes it). A stepped daemon never stepped is a restart whose feed
    stays at its resume point, or a daemon held still while a test does something else to it.
    kill -9 (`kill()`) and SIGTERM work as for `bot run`. Stepping needs the recorded feed
    (feed.source recorded, the default): a live feed has no pacer and never says it plays.
    `args` follow `bot run --config CONFIG` (--fresh, --log-file PATH, ...).
    """

    def __init__(self, config: Path, env: dict[str, str] | None = None, *, stepped: bool = False, args: Sequence[str] = ()) -> None:
        self.config = config
        self.folder = config.parent
        self.socket = self.folder / "bot.sock"
        self.log = self.folder / "daemon.log"
        self.stepped = stepped
        # The stepped feed's state as the last acknowledgement told it (None: not playing yet).
        self.feed_state: str | None = None
        self.last_close: int | None = None
        self._log_file = self.log.open("wb")
        self._acks: int | None = None
        self._ack_buffer = b""
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        if not stepped:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "run", "--config", str(config), *args],
                cwd=self.folder,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                env=environment,
            )
            return
        acks, child_acks = os.pipe()
        # The runner module lives in the repo's tests package: importable from the run folder too.
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), environment.get("PYTHONPATH")]))
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.daemon.stepped_daemon", "--ack-fd", str(child_acks), "--config", str(config), *args],
                cwd=self.folder,
                stdin=subprocess.PIPE,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                env=environment,
                pass_fds=(child_acks,),
            )
        except BaseException:
            os.close(acks)
            raise
        finally:
            os.close(child_acks)  # the child's copy only: end of file here once it is gone
        self._acks = acks

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until the control socket exists and the feed is playing (stepped: strategies up, nothing played yet)."""
        if self.stepped:
            while self.feed_state is None:
                self._next_ack(timeout)
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log.read_text()}")
            if self.socket.exists() and b"feed_state state=playing" in self.log.read_bytes():
                return
            time.sleep(0.05)
        raise AssertionError(f"daemon not ready after {timeout}s:\n{self.log.read_text()}")

    def step(self, candles: int = 1, timeout: float = 30.0) -> Step:
        """Publish the next `candles` candles and return once every strategy has processed them (stepped only).

        Fails when the feed ended or stopped before the last of them, or the daemon died.
        `step(0)` publishes nothing and returns once everything published before is processed.
        """
        assert self.stepped and self.proc.stdin is not None, "step() needs DaemonProcess(..., stepped=True)"
        if candles < 0:
            raise ValueError(f"cannot step {candles} candles")
        self.wait_ready(timeout)
        if self.feed_state != "playing":
            raise AssertionError(f"cannot step: the feed has {self.feed_state}")
        try:
            self.proc.stdin.write(f"step {candles}\n".encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise AssertionError(self._exited()) from None
        while True:
            ack = self._next_ack(timeout)
            if ack["event"] == "stepped":
                break
        done = Step(ack["published"], ack["last_close"], ack["state"])
        if done.published < candles:
            raise AssertionError(f"the feed {done.state} after {done.published} of {candles} candles:\n{self.log.read_text()[-3000:]}")
        return done

    def step_until(self, probe: Callable[[], T | None], what: str, candles: int = 1, limit: int = 5000) -> T:
        """Step `candles` at a time until `probe()` returns something truthy (checked first with none); return it.

        Fails naming `what` after `limit` candles. The feed then stands still: what the probe
        saw holds until the next step.
        """
        stepped = 0
        while True:
            value = probe()
            if value:
                return value
            if stepped >= limit:
                raise AssertionError(f"no {what} after {stepped} candles")
            stepped += self.step(candles).published

    def kill(self) -> int:
        """kill -9, as a crash: nothing is flushed or closed; the exit code (-9)."""
        return self.stop(signal.SIGKILL)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Send `sig`, wait, kill if needed; return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        # Only now: a stopping daemon may still acknowledge a step, and must find the pipe open.
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        if self._acks is not None:
            os.close(self._acks)
            self._acks = None
        self._log_file.close()
        return self.proc.returncode

    def _next_ack(self, timeout: float) -> dict[str, Any]:
        """The next acknowledgement of a stepped daemon (its feed state and position noted)."""
        assert self._acks is not None, "the daemon was stopped"
        deadline = time.monotonic() + timeout
        while b"\n" not in self._ack_buffer:
            remaining = deadline - time.monotonic()
            readable, _, _ = select.select([self._acks], [], [], max(remaining, 0))
            if not readable:
                raise AssertionError(f"no word from the stepped daemon after {timeout}s:\n{self.log.read_text()[-3000:]}")
            chunk = os.read(self._acks, 65536)
            if not chunk:
                raise AssertionError(self._exited())
            self._ack_buffer += chunk
        line, self._ack_buffer = self._ack_buffer.split(b"\n", 1)
        ack: dict[str, Any] = orjson.loads(line)
        if ack["event"] == "error":
            raise AssertionError(f"the stepped daemon refused a command: {ack['error']}")
        if ack["event"] == "playing":
            self.feed_state = "playing"
        else:
            self.feed_state = ack["state"]
        self.last_close = ack["last_close"]
        return ack

    def _exited(self) -> str:
        try:
            code: int | None = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            code = None
        return f"the stepped daemon is gone (exit code {code}):\n{self.log.read_text()[-3000:]}"


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


@pytest.fixture
def stepped(short_tmp: Path) -> Iterator[DaemonProcess]:
    """A running daemon with the repo's two strategies whose feed moves only when the test calls `step`."""
    process = DaemonProcess(write_daemon_config(short_tmp), stepped=True)
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()
