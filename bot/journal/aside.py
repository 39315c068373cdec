"""`bot run --fresh`: the journal and its -wal/-shm moved aside under its lock, all or none (never deleted), the lock kept for the new journal."""
from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bot.journal.lock import JournalLock
from bot.journal.schema import JournalError

# SQLite's companions of a WAL database: they must keep the database's name plus these.
_COMPANIONS = ("-wal", "-shm")

Rename = Callable[[Path, Path], None]


@dataclass(frozen=True, slots=True)
class MovedAside:
    """What `move_aside` did: the held lock, and each file moved (old path, new path), the journal first."""

    lock: JournalLock
    moved: tuple[tuple[Path, Path], ...]
    # Why the WAL could not be checkpointed into the journal first (it moved with it), or None.
    checkpoint_problem: str | None = None


@dataclass(frozen=True, slots=True)
class OpenWork:
    """What a journal still has going: positions not closed and orders submitted but not filled or cancelled."""

    positions: int
    orders: int


def _no_check(real: Path) -> None:
    """The default `check` of move_aside: nothing to verify first."""


def move_aside(path: Path, now_ms: int, check: Callable[[Path], None] = _no_check, rename: Rename = os.rename) -> MovedAside:
    """Lock the journal at `path`, checkpoint its WAL, and rename it and its -wal/-shm to `<name>.<UTC time>` beside it.

    Raises JournalInUse while another process holds the lock (nothing is touched then). Then
    `check(real path)` runs, under the lock and before anything is renamed: whatever it raises
    leaves every file where it was (the caller's last word on whether to start over). The lock
    (its `.lock` file never moves) is returned held: the caller hands it to the new Journal, so
    no other process can open the journal between the move and the new file. A symlinked
    journal is moved by its real file. A -wal or -shm moves whenever it exists, even without the
    journal: a new journal must never start beside an old WAL. Either every file moves or none
    does: a rename that fails puts the ones already moved back. The companions move before the
    journal, so a process killed halfway leaves the journal in place rather than a WAL without
    its journal (which SQLite would drop when a new journal is created there). Nothing to move:
    the lock is held all the same. `rename` is the file system's (a test passes one that races it).
    """
    real = Path(os.path.realpath(path))
    lock = JournalLock(real)
    lock.acquire()
    try:
        problem = _checkpoint(real) if os.path.lexists(real) else None
        check(real)
        # Listed after the checkpoint: closing its connection removes a WAL it emptied.
        present = [real.with_name(real.name + suffix) for suffix in ("", *_COMPANIONS) if os.path.lexists(real.with_name(real.name + suffix))]
        if not present:
            return MovedAside(lock, ())
        stem = _free_name(real, now_ms)
        moves = [(source, source.with_name(stem + source.name[len(real.name):])) for source in present]
        _rename_all(real, moves[::-1], rename)
        return MovedAside(lock, tuple(moves), problem)
    except BaseException:
        lock.release()
        raise


def open_work(real: Path) -> OpenWork:
    """The open positions and pending orders of the journal at `real`, read without writing (none when it does not exist).

    Call it holding the journal's lock. Raises JournalError when the file cannot be read as a journal.
    """
    if not real.exists():
        return OpenWork(0, 0)
    try:
        # Not mode=ro: a read-only connection would leave an empty -wal and -shm behind when it closes.
        with closing(sqlite3.connect(f"{real.as_uri()}?mode=rw", uri=True, isolation_level=None)) as conn:
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA query_only=1")
            (positions,) = conn.execute("SELECT COUNT(*) FROM positions WHERE status != 'closed'").fetchone()
            (orders,) = conn.execute("SELECT COUNT(*) FROM orders WHERE status = 'submitted'").fetchone()
    except sqlite3.Error as exc:
        raise JournalError(f"{real}: cannot read its open positions and pending orders: {exc}") from None
    return OpenWork(int(positions), int(orders))


def numbering(path: Path) -> dict[str, tuple[int, int]]:
    """Each strategy's (last order number, last position number) in the journal at `path`, read without writing.

    With what that journal had carried over itself: `run --fresh` twice must not go back either.
    Raises JournalError when the file cannot be read as a journal.
    """
    from bot.journal.sqlite import CARRIED_ORDERS, CARRIED_POSITIONS

    found: dict[str, list[int]] = {}

    def note(sid: str, which: int, number: object) -> None:
        if isinstance(number, int):
            numbers = found.setdefault(sid, [0, 0])
            numbers[which] = max(numbers[which], number)

    try:
        with closing(sqlite3.connect(f"{path.as_uri()}?mode=rw", uri=True, isolation_level=None)) as conn:
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA query_only=1")
            for which, table in enumerate(("orders", "positions")):
                for sid, number in conn.execute(f"SELECT strategy_id, max(number) FROM {table} GROUP BY strategy_id"):  # our two table names, not data
                    note(sid, which, number)
            for which, prefix in enumerate((CARRIED_ORDERS, CARRIED_POSITIONS)):
                for key, value in conn.execute("SELECT key, CAST(value AS INTEGER) FROM meta WHERE substr(key, 1, ?) = ?", (len(prefix), prefix)):
                    note(key[len(prefix):], which, value)
    except sqlite3.Error as exc:
        raise JournalError(f"{path}: cannot read the order and position numbers it used: {exc}") from None
    return {sid: (orders, positions) for sid, (orders, positions) in found.items()}


def _rename_all(real: Path, moves: list[tuple[Path, Path]], rename: Rename) -> None:
    """Rename each (source, target) in order, or none: on a failure the renames done are undone, newest first."""
    done: list[tuple[Path, Path]] = []
    for source, target in moves:
        try:
            # rename never replaces here: _free_name chose a name none of the three files has.
            rename(source, target)
        except OSError as exc:
            reason = f"{real}: cannot move the journal aside: {source.name} -> {target.name}: {exc.strerror or exc}"
            stuck = _undo(done, rename)
            if stuck:
                # Nothing is lost, but the operator must know where each file is now.
                raise JournalError(f"{reason}; and could not move back {'; '.join(stuck)}") from None
            raise JournalError(f"{reason}; nothing was moved") from None
        done.append((source, target))


def _undo(done: list[tuple[Path, Path]], rename: Rename) -> list[str]:
    """Rename each target back to its source, newest first; what could not be moved back, as `new -> old: reason`."""
    stuck = []
    for source, target in reversed(done):
        try:
            rename(target, source)
        except OSError as exc:
            stuck.append(f"{target} -> {source.name}: {exc.strerror or exc}")
    return stuck


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
    stamp = datetime.fromtimestamp(now_ms / 1000, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    base = f"{real.name}.{stamp}"
    candidate, n = base, 1
    # lexists: a dangling symlink takes the name too, and a name the file system refuses is left to the rename to report.
    while any(os.path.lexists(real.with_name(candidate + suffix)) for suffix in ("", *_COMPANIONS)):
        n += 1
        candidate = f"{base}-{n}"
    return candidate
