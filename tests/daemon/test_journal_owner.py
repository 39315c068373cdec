"""Two daemons never share a journal: the second one exits 2 before it reads or writes anything."""
from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.control.client import result
from tests.daemon.process import DaemonProcess, write_daemon_config


def test_a_second_daemon_on_the_same_journal_exits_2_naming_the_owner(short_tmp: Path) -> None:
    first_dir, second_dir = short_tmp / "a", short_tmp / "b"
    first_dir.mkdir()
    second_dir.mkdir()
    journal = first_dir / "journal.sqlite"
    first = DaemonProcess(write_daemon_config(first_dir))
    try:
        first.wait_ready()
        before = result(first.socket, "status")["strategies"]
        # Another socket, the same journal: only the journal lock can tell them apart.
        second_config = write_daemon_config(second_dir, journal={"path": str(journal)})
        second = subprocess.run(
            [sys.executable, "-m", "bot", "run", "--config", str(second_config)], cwd=second_dir, capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 2, second.stderr
        # One line and nothing else: it stopped before reading or writing anything.
        assert second.stderr.strip() == f"error: journal {journal} is in use by another bot process (pid {first.proc.pid})"
        assert not (second_dir / "bot.sock").exists()
        # The first daemon trades on, unharmed.
        assert result(first.socket, "status")["strategies"].keys() == before.keys()
        assert result(first.socket, "status")["health"] == "ok"
    finally:
        assert first.stop() == 0
    assert (first_dir / "journal.sqlite.lock").exists()  # never moved or deleted
    with sqlite3.connect(journal) as db:
        assert {row[0] for row in db.execute("SELECT strategy_id FROM strategy_states")} == {"ema_cross", "rsi_reversion"}


def test_a_killed_daemons_journal_is_free_for_the_next_one(short_tmp: Path) -> None:
    config = write_daemon_config(short_tmp)
    first = DaemonProcess(config)
    try:
        first.wait_ready()
        first.stop(signal.SIGKILL)
    finally:
        first.stop()
    second = DaemonProcess(config)  # the kernel released the lock with the killed process
    try:
        second.wait_ready()
        assert result(second.socket, "status")["health"] in ("ok", "degraded")
    finally:
        assert second.stop() == 0
