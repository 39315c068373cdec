"""One process owns a journal: a second one is refused before it reads or writes; files are private."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bot.journal import Journal, JournalInUse
from bot.journal.lock import lock_path_of

_HOLDER = """
import sys
from pathlib import Path
from bot.journal import Journal
journal = Journal(Path(sys.argv[1]))
print("held", flush=True)
sys.stdin.read()
"""


def _hold_in_child(path: Path) -> subprocess.Popen[str]:
    child = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline() == "held\n"
    return child


def test_a_second_process_is_refused_with_the_owners_pid_and_the_journal_is_untouched(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    child = _hold_in_child(path)
    try:
        files = [path, path.with_name(path.name + "-wal")]
        before = [f.read_bytes() if f.exists() else None for f in files]
        with pytest.raises(JournalInUse) as refused:
            Journal(path)
        assert str(refused.value) == f"journal {path} is in use by another bot process (pid {child.pid})"
        assert [f.read_bytes() if f.exists() else None for f in files] == before
    finally:
        child.kill()
        child.communicate()
    # The kernel let the lock go with the killed owner: the journal opens, the lock file stayed put.
    assert lock_path_of(path).exists()
    with Journal(path) as journal:
        assert journal.strategy_states() == {}
    assert lock_path_of(path).exists()


def test_a_second_journal_in_the_same_process_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    first = Journal(path)
    with pytest.raises(JournalInUse, match=f"pid {os.getpid()}"):
        Journal(path)
    first.close()
    Journal(path).close()


def test_a_journal_dropped_without_close_lets_its_lock_go(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    Journal(path)  # dropped at once: its finalizers stop the thread and release the lock
    import gc

    gc.collect()
    Journal(path).close()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_run_folder_journal_wal_and_shm_are_private(tmp_path: Path) -> None:
    previous = os.umask(0o022)  # the usual umask, whatever the machine's
    try:
        _check_private_files(tmp_path)
    finally:
        os.umask(previous)


def _check_private_files(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "deep" / "journal.sqlite"
    with Journal(path) as journal:
        journal.set_meta("k", "v")  # a write: the WAL and shm files exist now
        assert _mode(tmp_path / "runs") == 0o700
        assert _mode(path.parent) == 0o700
        for name in ("journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm", "journal.sqlite.lock"):
            assert _mode(path.parent / name) == 0o600, name


def test_an_existing_world_readable_journal_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    Journal(path).close()
    path.chmod(0o644)
    with Journal(path) as journal:
        journal.set_meta("k", "v")
        assert _mode(path) == 0o600
        assert _mode(path.with_name("journal.sqlite-wal")) == 0o600


def test_a_symlinked_name_for_the_journal_takes_the_same_lock(tmp_path: Path) -> None:
    real = tmp_path / "a" / "journal.sqlite"
    other = tmp_path / "b"
    other.mkdir()
    first = Journal(real)
    try:
        (other / "journal.sqlite").symlink_to(real)
        with pytest.raises(JournalInUse):
            Journal(other / "journal.sqlite")
    finally:
        first.close()


def test_a_symlink_planted_as_the_lock_file_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    (tmp_path / "journal.sqlite.lock").symlink_to(target)
    with pytest.raises(Exception, match="lock file"):
        Journal(tmp_path / "journal.sqlite")
    assert target.read_text() == "keep me"
