"""`bot run --fresh`: the journal moved aside under its lock (never deleted), the lock kept for the new journal."""
from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from bot.journal.lock import JournalLock
from bot.journal.schema import JournalError

# SQLite's companions of a WAL database: they must keep the database's name plus these.
_COMPANIONS = ("-wal", "-shm")


@dataclass(frozen=True, slots=True)
class MovedAside:
    """What `move_aside` did: the held lock, and each file moved (old path, new path), the journal first."""

    lock: JournalLock
    moved: tuple[tuple[Path, Path], ...]
    # Why the WAL could not be checkpointed into the journal first (it moved with it), or None.
    checkpoint_problem: str | None = None


def move_aside(path: Path, now_ms: int) -> MovedAside:
    """Lock the journal at `path`, checkpoint its WAL, and rename it and its -wal/-shm to `<name>.<UTC time>` beside it.

    Raises JournalInUse while another process holds the lock (nothing is touched then). The lock
    (its `.lock` file never moves) is returned held: the caller hands it to the new Journal, so no
    other process can open the journal between the move and the new file. A symlinked journal
    is moved by its real file. No journal: nothing moved, the lock held all the same.
    """
    real = Path(os.path.realpath(path))
    lock = JournalLock(real)
    lock.acquire()
    try:
        if not real.exists():
            return MovedAside(lock, ())
        problem = _checkpoint(real)
        stem = _free_name(real, now_ms)
        moved = []
        for suffix in ("", *_COMPANIONS):
            source = real.with_name(real.name + suffix)
            if source.exists():
                target = real.with_name(stem + suffix)
                # rename never replaces here: _free_name chose a name none of the three files has.
                os.rename(source, target)
                moved.append((source, target))
        return MovedAside(lock, tuple(moved), problem)
    except OSError as exc:
        lock.release()
        raise JournalError(f"{real}: cannot move the journal aside: {exc.strerror or exc}") from None
    except BaseException:
        lock.release()
        raise


def _checkpoint(real: Path) -> str | None:
    """Copy the WAL into the journal and empty it; the reason when SQLite cannot (the WAL then moves along)."""
    try:
        # mode=rw: never create a database here; the lock keeps every bot process away meanwhile.
        with closing(sqlite3.connect(f"{real.as_uri()}?mode=rw", uri=True, isolation_level=None)) as conn:
            conn.execute("PRAGMA busy_timeout=5000")
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    except sqlite3.Error as exc:
        return str(exc)
    return "a reader kept the WAL busy" if busy else None


def _free_name(real: Path, now_ms: int) -> str:
    """`<name>.<YYYYmmddTHHMMSSZ>`, with `-2`, `-3`... when a journal was already moved aside in that second."""
    stamp = datetime.fromtimestamp(now_ms / 1000, tz=timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = f"{real.name}.{stamp}"
    candidate, n = base, 1
    while any(real.with_name(candidate + suffix).exists() or real.with_name(candidate + suffix).is_symlink() for suffix in ("", *_COMPANIONS)):
        n += 1
        candidate = f"{base}-{n}"
    return candidate
