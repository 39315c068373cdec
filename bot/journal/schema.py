"""The journal's SQLite schema, and opening a journal file safely (WAL, version check)."""
from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path
from typing import Final

from bot.errors import BotError

SCHEMA_VERSION: Final[int] = 5

# Every table is keyed by strategy_id first, so one strategy's rows never mix with another's
# and every per-strategy read is an index range scan. STRICT makes SQLite refuse a value of the
# wrong type instead of storing it silently. JSON columns hold orjson text.
_DDL: Final[tuple[str, ...]] = (
    "CREATE TABLE schema_version (version INTEGER NOT NULL) STRICT",
    """CREATE TABLE strategy_states (
        strategy_id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        change TEXT,
        policy TEXT,
        last_error TEXT,
        ts INTEGER NOT NULL,
        seq INTEGER NOT NULL
    ) STRICT""",
    # number: n of a client id `<strategy_id>-<n>` (NULL for another shape), for last_order_number.
    """CREATE TABLE orders (
        strategy_id TEXT NOT NULL,
        client_id TEXT NOT NULL,
        number INTEGER,
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        quantity REAL NOT NULL,
        intent TEXT NOT NULL,
        position_id TEXT,
        reason TEXT,
        ref_price REAL,
        status TEXT NOT NULL CHECK (status IN ('submitted', 'filled', 'cancelled')),
        filled_quantity REAL NOT NULL DEFAULT 0,
        submitted_ts INTEGER NOT NULL,
        submitted_seq INTEGER NOT NULL,
        done_ts INTEGER,
        done_seq INTEGER,
        pair_group TEXT,
        order_type TEXT,
        limit_price REAL,
        stop_price REAL,
        rung INTEGER,
        PRIMARY KEY (strategy_id, client_id)
    ) STRICT, WITHOUT ROWID""",
    # No index on pending orders: the table is clustered by strategy, recovery scans that range
    # once at start-up, and every index would be one more page written per order event.
    """CREATE TABLE fills (
        id INTEGER PRIMARY KEY,
        strategy_id TEXT NOT NULL,
        client_id TEXT NOT NULL,
        symbol TEXT,
        side TEXT,
        price REAL NOT NULL,
        quantity REAL NOT NULL,
        fee REAL NOT NULL,
        liquidity TEXT,
        reason TEXT,
        fill_ts INTEGER,
        ts INTEGER NOT NULL,
        seq INTEGER NOT NULL
    ) STRICT""",
    # state: the PositionState as last announced. trail_anchor, closed_quantity and
    # exit_value are Position attributes that it leaves out but recovery needs; they are
    # kept from the trailing_activated and position_reduced payloads.
    """CREATE TABLE positions (
        strategy_id TEXT NOT NULL,
        position_id TEXT NOT NULL,
        number INTEGER,
        symbol TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('open', 'partially_closed', 'closed')),
        state TEXT NOT NULL,
        trail_anchor REAL NOT NULL DEFAULT 0,
        closed_quantity REAL NOT NULL DEFAULT 0,
        exit_value REAL NOT NULL DEFAULT 0,
        client_id TEXT,
        opened_ts INTEGER NOT NULL,
        opened_seq INTEGER NOT NULL,
        updated_ts INTEGER NOT NULL,
        updated_seq INTEGER NOT NULL,
        PRIMARY KEY (strategy_id, position_id)
    ) STRICT, WITHOUT ROWID""",
    "CREATE INDEX positions_open ON positions (strategy_id) WHERE status != 'closed'",
    # Closed trades are append-only, apart from the positions table, so a reused position id
    # (a restart that did not continue numbering) can never overwrite a trade.
    """CREATE TABLE trades (
        id INTEGER PRIMARY KEY,
        strategy_id TEXT NOT NULL,
        position_id TEXT NOT NULL,
        exit_ts INTEGER,
        ts INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        record TEXT NOT NULL
    ) STRICT""",
    "CREATE INDEX trades_strategy ON trades (strategy_id)",
    """CREATE TABLE portfolio (
        strategy_id TEXT PRIMARY KEY,
        snapshot TEXT NOT NULL,
        ts INTEGER NOT NULL
    ) STRICT""",
    """CREATE TABLE equity_daily (
        strategy_id TEXT NOT NULL,
        day TEXT NOT NULL,
        snapshot TEXT NOT NULL,
        ts INTEGER NOT NULL,
        PRIMARY KEY (strategy_id, day)
    ) STRICT, WITHOUT ROWID""",
    # A bounded log of the strategy events with no table of their own: n counts per strategy,
    # and each insert deletes what fell out of the window, so it never holds more than N rows.
    """CREATE TABLE strategy_events (
        strategy_id TEXT NOT NULL,
        n INTEGER NOT NULL,
        type TEXT NOT NULL,
        ts INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        payload TEXT NOT NULL,
        PRIMARY KEY (strategy_id, n)
    ) STRICT, WITHOUT ROWID""",
    # Daemon-level facts that are not strategy events: where the feed is, which file each
    # strategy was loaded from.
    """CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) STRICT, WITHOUT ROWID""",
)


class JournalError(BotError):
    """The journal file cannot be opened, is not a journal, has a newer schema, or a write failed."""


def open_database(path: Path, wal_size_limit: int = -1) -> sqlite3.Connection:
    """Open or create the journal at `path` (parent folders too), in WAL mode with the current schema.

    The connection never checkpoints on its own (the journal's checkpoint thread does), and
    truncates the WAL file to `wal_size_limit` bytes (-1: never) when the WAL starts over.
    """
    # The trading history is the user's alone: folders created here are 0700, the file 0600, and
    # SQLite gives the WAL and shm files the file's own mode.
    previous = os.umask(0o077)
    try:
        return _open(path, wal_size_limit)
    finally:
        os.umask(previous)


def _open(path: Path, wal_size_limit: int) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        restrict_journal_files(path)
        # isolation_level=None: the journal issues BEGIN/COMMIT itself, one transaction per event.
        # Opened here, then used only by the journal's writer thread (bot.journal.writer_thread).
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as exc:
        raise JournalError(f"{path}: cannot open the journal: {exc}") from exc
    try:
        _prepare(conn, path)
        # A commit that reaches SQLite's threshold would carry the checkpoint and its syncs on
        # the writer's (the event loop's) thread: the journal's checkpoint thread does it instead.
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute(f"PRAGMA journal_size_limit={int(wal_size_limit)}")
    except sqlite3.DatabaseError as exc:
        conn.close()
        # "file is not a database" and friends: name the file, the operator must move it away.
        raise JournalError(f"{path}: not a usable SQLite journal: {exc}") from None
    except BaseException:
        conn.close()
        raise
    return conn


def restrict_journal_files(path: Path) -> None:
    """Make an existing journal (and its WAL and shm files) readable by its owner only, as a new one is."""
    for name in (path.name, path.name + "-wal", path.name + "-shm"):
        candidate = path.with_name(name)
        try:
            mode = candidate.stat().st_mode
        except FileNotFoundError:
            continue
        if mode & 0o077:
            os.chmod(candidate, stat.S_IMODE(mode) & 0o700)


def open_checkpoint_connection(path: Path) -> sqlite3.Connection:
    """A second connection to an open journal, for the checkpoint thread (which it may be used from)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        # As the writer's: a checkpoint syncs the WAL before copying it and the file after, so a
        # power loss cannot leave the file half copied from a WAL that has since started over.
        conn.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        conn.close()
        raise
    return conn


def _prepare(conn: sqlite3.Connection, path: Path) -> None:
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise JournalError(f"{path}: the journal needs WAL mode, SQLite left it in {mode!r} mode")
    # In WAL mode, synchronous=NORMAL syncs only at checkpoints, not at each commit: a committed
    # transaction is in the WAL file (the OS page cache) when COMMIT returns, so it survives the
    # process being killed (kill -9) and is replayed on the next open. Only an OS crash or power
    # loss can take back the last commits, and never corrupts the file.
    conn.execute("PRAGMA synchronous=NORMAL")
    # A second process (a `bot ctl` reader) may hold the lock briefly; wait rather than fail.
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("BEGIN IMMEDIATE")
    try:
        _check_or_create(conn, path)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _check_or_create(conn: sqlite3.Connection, path: Path) -> None:
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "schema_version" not in tables:
        if tables:
            raise JournalError(f"{path}: is a SQLite database but not a journal (tables: {', '.join(sorted(tables))})")
        for statement in _DDL:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        return
    rows = conn.execute("SELECT version FROM schema_version").fetchall()
    if len(rows) != 1 or not isinstance(rows[0][0], int):
        raise JournalError(f"{path}: the journal's schema_version table is damaged ({rows!r})")
    version = rows[0][0]
    if version > SCHEMA_VERSION:
        raise JournalError(
            f"{path}: journal schema version {version} is newer than this bot supports ({SCHEMA_VERSION}); "
            "run a newer bot or point journal.path at another file"
        )
    if version == 1:
        # Version 2 records the pair group of an order, so a pair leg still pending after a
        # crash is restored as a leg of its pair.
        conn.execute("ALTER TABLE orders ADD COLUMN pair_group TEXT")
        conn.execute("UPDATE schema_version SET version = 2")
        version = 2
    if version == 2:
        # Version 3 records limit orders (type and price), so one resting at a crash comes back as one.
        conn.execute("ALTER TABLE orders ADD COLUMN order_type TEXT")
        conn.execute("ALTER TABLE orders ADD COLUMN limit_price REAL")
        conn.execute("UPDATE schema_version SET version = 3")
        version = 3
    if version == 3:
        # Version 4 records stop orders resting on the exchange (their trigger price), so the
        # stop protecting a position is looked up, not forgotten, after a crash.
        conn.execute("ALTER TABLE orders ADD COLUMN stop_price REAL")
        conn.execute("UPDATE schema_version SET version = 4")
        version = 4
    if version == 4:
        # Version 5 records the take-profit rung a close takes as a number. Older journals only
        # named it in the reason (`take_profit_<n>`, 1-based): read it from there, here and only here.
        conn.execute("ALTER TABLE orders ADD COLUMN rung INTEGER")
        conn.execute(
            "UPDATE orders SET rung = CAST(substr(reason, 13) AS INTEGER) - 1 "
            "WHERE intent = 'close' AND reason GLOB 'take_profit_[1-9]*' AND substr(reason, 13) NOT GLOB '*[^0-9]*'"
        )
        conn.execute("UPDATE schema_version SET version = 5")
        version = 5
    if version < SCHEMA_VERSION:
        raise JournalError(f"{path}: journal schema version {version} is unknown (this bot writes {SCHEMA_VERSION})")
