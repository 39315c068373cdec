"""Making a real journal refuse writes (through a second connection, as a full disk would) or wait for its writer thread."""
from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from bot.journal import Journal

# What SQLite says on SQLITE_FULL; RAISE(ROLLBACK) also does what it does then: the whole transaction is rolled back.
DISK_FULL = "database or disk is full"


def refuse_inserts(path: Path, table: str, when: str = "1") -> None:
    """From now on the journal at `path` refuses each insert into `table` for which the SQL condition `when` holds (on NEW)."""
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute(f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} WHEN {when} BEGIN SELECT RAISE(ROLLBACK, '{DISK_FULL}'); END")


def allow_inserts(path: Path, table: str) -> None:
    """Undo `refuse_inserts` on `table`."""
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute(f"DROP TRIGGER refuse_{table}")


@contextmanager
def writer_held(journal: Journal) -> Iterator[Callable[[], None]]:
    """Keep the journal's writer thread busy until the block ends, or the callable it yields is called: what is handed to it meanwhile waits, in order."""
    # The writer thread is the journal's own: no outside view lets a test hold it.
    release = threading.Event()
    journal._thread.submit(release.wait)
    # A blocking journal call on the loop while it is held would wait for the test, which waits
    # on the loop: let go after a while, so such a regression fails the test instead of hanging it.
    safety = threading.Timer(10.0, release.set)
    safety.start()
    try:
        yield release.set
    finally:
        release.set()
        safety.cancel()
