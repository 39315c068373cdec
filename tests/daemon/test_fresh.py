"""`bot run` says when it resumes a journal, and `bot run --fresh` moves the journal aside under its lock, never deleting it."""
from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from bot.fmt import format_time
from bot.journal import Journal, JournalInUse
from bot.journal.aside import move_aside
from bot.journal.lock import JournalLock
from bot.journal.schema import JournalError
from tests.daemon.process import DaemonProcess, journal_rows, write_daemon_config

# The journal moved aside: journal.sqlite.<UTC time>, e.g. journal.sqlite.20260105T114955Z.
_ASIDE = re.compile(r"journal\.sqlite\.\d{8}T\d{6}Z")
_OPEN = "SELECT COUNT(*) FROM positions WHERE status != 'closed'"


def open_positions(folder: Path) -> int:
    return int(journal_rows(folder, _OPEN)[0][0])


def journal_facts(path: Path) -> dict[str, Any]:
    """What a journal file holds, read with plain SQLite (and nothing beside it)."""
    with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
        return {
            "strategies": sorted(row[0] for row in db.execute("SELECT strategy_id FROM strategy_states")),
            "open": db.execute(_OPEN).fetchone()[0],
            "trades": db.execute("SELECT COUNT(*) FROM trades").fetchone()[0],
            "feed": db.execute("SELECT value FROM meta WHERE key = 'feed.last_ts'").fetchone(),
        }


def first_run_with_a_position(config: Path, *, crash: bool) -> dict[str, Any]:
    """Run a stepped daemon until a position is open, then stop it (or kill -9 it); what its journal holds."""
    folder = config.parent
    daemon = DaemonProcess(config, stepped=True)
    try:
        daemon.wait_ready()
        daemon.step_until(lambda: open_positions(folder), "an open position", candles=20)
        facts = journal_facts(folder / "journal.sqlite")  # read while the WAL still holds it
    finally:
        code = daemon.kill() if crash else daemon.stop()
    assert code == (-9 if crash else 0), daemon.log.read_text()[-3000:]
    assert "new journal journal.sqlite" in daemon.log.read_text()
    assert facts["open"] >= 1 and facts["feed"] == (str(daemon.last_close),)
    return facts


def test_a_second_run_says_it_resumes_the_journal_and_what_it_holds(short_tmp: Path) -> None:
    config = write_daemon_config(short_tmp)
    before = first_run_with_a_position(config, crash=False)
    second = DaemonProcess(config, stepped=True)
    try:
        second.wait_ready()
    finally:
        assert second.stop() == 0
    lines = second.log.read_text().splitlines()
    opened = before["open"]
    # The first line of the second run, before anything else happens.
    assert lines[0].split(" ", 3)[2:] == [
        "INFO",
        (f"resuming journal.sqlite: 2 strategies, {opened} open position{'s' if opened != 1 else ''}, "
        f"last candle {format_time(int(before['feed'][0]))}; bot run --fresh starts over"),
    ]


def test_fresh_moves_a_crashed_journal_aside_with_its_wal_checkpointed_and_starts_a_new_one(short_tmp: Path) -> None:
    config = write_daemon_config(short_tmp)
    before = first_run_with_a_position(config, crash=True)
    lock_file = short_tmp / "journal.sqlite.lock"
    lock_inode = lock_file.stat().st_ino
    fresh = DaemonProcess(config, stepped=True, args=["--fresh"])
    try:
        fresh.wait_ready()
        new = journal_facts(short_tmp / "journal.sqlite")
    finally:
        assert fresh.stop() == 0
    (aside,) = [p for p in short_tmp.iterdir() if p.name.startswith("journal.sqlite.") and p.name != "journal.sqlite.lock"]
    assert _ASIDE.fullmatch(aside.name), aside.name
    # Checkpointed before the move: the file alone (no -wal beside it) holds everything the
    # killed daemon had committed, whatever of it was still in the WAL.
    assert not aside.with_name(aside.name + "-wal").exists()
    assert journal_facts(aside) == before
    # The new journal starts over: the strategies loaded afresh, nothing open, no feed position yet.
    assert new == {"strategies": ["ema_cross", "rsi_reversion"], "open": 0, "trades": 0, "feed": None}
    log = fresh.log.read_text()
    assert f"--fresh: moved journal.sqlite aside to {aside.name}; starting a new journal" in log
    assert "new journal journal.sqlite" in log and "resuming" not in log
    # The lock file never moves: the same file guarded the old journal and guards the new one.
    assert lock_file.stat().st_ino == lock_inode


def test_fresh_is_refused_while_another_daemon_holds_the_journal_and_nothing_moves(stepped: DaemonProcess) -> None:
    folder = stepped.folder
    stepped.step(5)
    files = {p.name: p.stat().st_ino for p in folder.iterdir() if p.name.startswith("journal.sqlite")}
    assert {"journal.sqlite", "journal.sqlite-wal", "journal.sqlite.lock"} <= files.keys()
    done = subprocess.run(
        [sys.executable, "-m", "bot", "run", "--config", str(stepped.config), "--fresh"], cwd=folder, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == f"error: journal {folder / 'journal.sqlite'} is in use by another bot process (pid {stepped.proc.pid})"
    assert {p.name: p.stat().st_ino for p in folder.iterdir() if p.name.startswith("journal.sqlite")} == files
    assert stepped.step(5).published == 5  # the running daemon trades on, on its journal


def test_a_journal_moved_aside_twice_in_one_second_keeps_both(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    now = 1_767_614_400_000  # 2026-01-05 12:00Z
    for _ in range(2):
        with Journal(path) as journal:
            journal.set_meta("feed.last_ts", str(now))
        done = move_aside(path, now)
        # Held until handed on: nobody can open the journal while it is being replaced.
        with pytest.raises(JournalInUse):
            Journal(path)
        Journal(path, lock=done.lock).close()  # the new journal takes the lock over, and releases it
        assert not done.lock.held
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["journal.sqlite", "journal.sqlite.20260105T120000Z", "journal.sqlite.20260105T120000Z-2", "journal.sqlite.lock"]
    for name in names[1:3]:
        assert journal_facts(tmp_path / name)["feed"] == (str(now),)


def test_a_symlinked_journal_is_moved_aside_by_its_real_file(tmp_path: Path) -> None:
    real = tmp_path / "data" / "journal.sqlite"
    real.parent.mkdir()
    Journal(real).close()
    link = tmp_path / "journal.sqlite"
    link.symlink_to(real)
    done = move_aside(link, 1_767_614_400_000)
    assert [(old, new.name) for old, new in done.moved] == [(real, "journal.sqlite.20260105T120000Z")]
    # The link still names the journal: the new one is created where the lock is.
    Journal(link, lock=done.lock).close()
    assert link.is_symlink() and real.is_file() and (real.parent / "journal.sqlite.lock").exists()
    assert not (tmp_path / "journal.sqlite.lock").exists()


def test_a_lock_for_another_journal_is_not_taken_over(tmp_path: Path) -> None:
    lock = JournalLock(tmp_path / "other.sqlite")
    lock.acquire()
    try:
        with pytest.raises(ValueError, match="the lock handed over is for"):
            Journal(tmp_path / "journal.sqlite", lock=lock)
    finally:
        lock.release()
    assert not (tmp_path / "journal.sqlite").exists()


def test_a_file_that_is_not_a_journal_is_moved_aside_all_the_same(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    path.write_bytes(b"not a database at all")
    done = move_aside(path, 1_767_614_400_000)
    try:
        assert done.checkpoint_problem is not None and "not a database" in done.checkpoint_problem
        assert (tmp_path / "journal.sqlite.20260105T120000Z").read_bytes() == b"not a database at all"
        assert not path.exists()
    finally:
        done.lock.release()


# --- nothing moves when the daemon could not start on the new journal ---------------------------


def a_journal_of_an_earlier_run(folder: Path) -> dict[str, int]:
    """journal.sqlite with a feed position in `folder`, as a stopped daemon leaves it; its files' inodes by name."""
    with Journal(folder / "journal.sqlite") as journal:
        journal.set_meta("feed.last_ts", "1641299400000")
    return journal_files(folder)


def journal_files(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_ino for p in folder.iterdir() if p.name.startswith("journal.sqlite")}


def run_fresh(config: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key != "BOT_UNSET_TOKEN"} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot", "run", "--config", str(config), "--fresh"],
        cwd=config.parent, env=environment, capture_output=True, text=True, timeout=60,
    )


def test_fresh_with_another_daemon_on_the_socket_moves_nothing(stepped: DaemonProcess, tmp_path: Path) -> None:
    # A second config whose journal is its own but whose control socket is the running daemon's.
    folder = tmp_path / "second"
    folder.mkdir()
    config = write_daemon_config(folder, control={"socket": str(stepped.socket)})
    files = a_journal_of_an_earlier_run(folder)
    done = run_fresh(config)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == f"error: another bot daemon is running on {stepped.socket}"
    # The journal stays where it was, for the next plain `bot run` to resume.
    assert journal_files(folder) == files
    with Journal(folder / "journal.sqlite") as journal:
        assert journal.get_meta("feed.last_ts") == "1641299400000"
    assert stepped.step(5).published == 5  # the running daemon never noticed


def test_fresh_without_the_control_token_moves_nothing(short_tmp: Path) -> None:
    config = write_daemon_config(short_tmp, control={"socket": "bot.sock", "tcp": {"port": 1, "token_env": "BOT_UNSET_TOKEN"}})
    files = a_journal_of_an_earlier_run(short_tmp)
    done = run_fresh(config)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == "error: control.tcp needs a token of at least 16 characters in the environment variable BOT_UNSET_TOKEN"
    assert journal_files(short_tmp) == files


# --- all or none -----------------------------------------------------------------------------------


def wal_of_a_crash(folder: Path) -> bytes:
    """The -wal file a daemon killed -9 leaves: committed journal pages not yet checkpointed."""
    scratch = folder / "scratch"
    scratch.mkdir()
    journal = Journal(scratch / "journal.sqlite")
    try:
        journal.set_meta("feed.last_ts", "1641299400000")
        return (scratch / "journal.sqlite-wal").read_bytes()
    finally:
        journal.close()


def test_an_orphan_wal_is_moved_aside_so_the_new_journal_never_starts_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    wal = wal_of_a_crash(tmp_path)
    assert len(wal) > 0
    path.with_name("journal.sqlite-wal").write_bytes(wal)  # its journal is gone (moved by hand, say)
    done = move_aside(path, 1_767_614_400_000)
    aside = tmp_path / "journal.sqlite.20260105T120000Z-wal"
    assert done.moved == ((path.with_name("journal.sqlite-wal"), aside),)
    Journal(path, lock=done.lock).close()
    # SQLite would have dropped the WAL beside the new, empty journal: it is kept, byte for byte.
    assert aside.read_bytes() == wal
    assert not path.with_name("journal.sqlite-wal").exists()


def test_a_rename_that_fails_puts_back_the_files_already_moved(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path) as journal:
        journal.set_meta("feed.last_ts", "1641299400000")
    # A reader in a read transaction keeps the WAL from being emptied: it has to move with the journal.
    reader = sqlite3.connect(path)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM meta").fetchone()
        with Journal(path) as journal:
            journal.set_meta("feed.last_ts", "1641299460000")
        files = journal_files(tmp_path)
        assert {"journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm"} <= files.keys()
        target = tmp_path / "journal.sqlite.20260105T120000Z"

        def racing(source: Path, new: Path) -> None:
            # Another process takes the journal's new name just before it is renamed: a real collision.
            if new == target:
                new.mkdir()
                (new / "theirs").touch()
            os.rename(source, new)

        with pytest.raises(JournalError) as refused:
            move_aside(path, 1_767_614_400_000, rename=racing)
        assert str(refused.value).startswith(f"{path}: cannot move the journal aside: journal.sqlite -> {target.name}: ")
        assert str(refused.value).endswith("; nothing was moved")
        # The -wal and -shm renamed before the journal's rename failed are back beside it, the same files
        # (looked at while the reader is still there: the last connection to close removes them).
        assert {name: inode for name, inode in journal_files(tmp_path).items() if name in files} == files
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("journal.sqlite.2026")) == [target.name]  # their folder only
    finally:
        reader.close()
    with Journal(path) as journal:  # the lock was let go, and nothing of the WAL was lost
        assert journal.get_meta("feed.last_ts") == "1641299460000"
