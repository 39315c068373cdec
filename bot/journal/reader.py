"""Reads for the API (trades, daily equity) over a read-only connection of their own, in a worker thread: the event loop never waits on SQLite."""
from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Final, NamedTuple, TypeVar

import anyio.to_thread

from bot.journal.records import json_object
from bot.journal.schema import JournalError
from bot.ohlcv import timeframe_ms

T = TypeVar("T")
# The trade fields a reply carries (a trades row's record also holds the closing fill, which it leaves out).
TRADE_FIELDS: Final[tuple[str, ...]] = (
    "strategy_id", "position_id", "symbol", "side", "quantity", "entry_ts", "entry_price", "exit_ts", "exit_price", "pnl", "fees", "exit_reason", "group",
)
# Statements that name a strategy id each: SQLite's default limit on host parameters is far above this.
_MAX_IDS: Final[int] = 500


class TradesBefore(NamedTuple):
    """A strategy's trades journalled before a run: how many, the UTC day of the newest, and how many closed that day."""

    total: int
    last_day: int | None
    last_day_count: int


class JournalReader:
    """A read-only SQLite connection to a journal the daemon writes, used from worker threads one read at a time.

    WAL mode lets a reader run beside the writer: each statement reads the last commit, and no
    read waits for the journal's writer thread or holds it up. A count over a long history takes
    a while: it runs in a worker thread (SQLite lets go of the GIL while it works), so candles
    go on meanwhile. Opened on the first read; closed for good by `close`.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        # One read at a time on the connection, whichever worker thread runs it.
        self._lock = threading.Lock()

    async def trades(self, strategy_ids: Sequence[str], limit: int, before: int | None) -> list[dict[str, Any]]:
        """Up to `limit` closed trades of these strategies newest first, each with its row number `n` (only those below `before` when given)."""
        return await self._in_thread(partial(self._trades, strategy_ids, limit, before))

    async def next_trade_number(self) -> int:
        """The number the next trade row will get (SQLite's rowid: one past the largest)."""
        return await self._in_thread(self._next_trade_number)

    async def trades_before(self, first_new: int) -> dict[str, TradesBefore]:
        """Per strategy, the trades numbered below `first_new` (one pass over them: in a worker thread, once)."""
        return await self._in_thread(partial(self._trades_before, first_new))

    async def daily_equity(self, strategy_ids: Sequence[str]) -> dict[str, list[tuple[int, float]]]:
        """Each strategy's end-of-day equity snapshots, oldest first: (ts, equity)."""
        return await self._in_thread(partial(self._daily_equity, strategy_ids))

    def close(self) -> None:
        """Close the connection; later reads fail (the daemon is stopping). A read under way is interrupted, not waited for."""
        self._closed = True
        # A read under way is interrupted (thread-safe: it ends with an error at once); one that took the lock but had
        # not started its statement yet would not be: interrupt again until the lock is free.
        while not self._lock.acquire(timeout=0.01):
            conn = self._conn
            if conn is not None:
                conn.interrupt()
        try:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        finally:
            self._lock.release()

    async def _in_thread(self, read: Callable[[], T]) -> T:
        # A cancelled caller (the daemon's task group at a failed start) stops waiting; the read ends with the
        # connection: `close` interrupts it.
        return await anyio.to_thread.run_sync(read, abandon_on_cancel=True)

    def _trades(self, strategy_ids: Sequence[str], limit: int, before: int | None) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for ids in _chunks(strategy_ids):
            marks = ",".join("?" * len(ids))
            sql = f"SELECT id, record FROM trades WHERE strategy_id IN ({marks})"
            params: list[Any] = list(ids)
            if before is not None:
                sql += " AND id < ?"
                params.append(before)
            for n, record in self._rows(sql + " ORDER BY id DESC LIMIT ?", (*params, limit)):
                fields = json_object(record, f"{self.path}: table trades, row {n}")
                rows.append({"n": n, **{name: fields.get(name) for name in TRADE_FIELDS}})
        rows.sort(key=lambda row: row["n"], reverse=True)
        return rows[:limit]

    def _next_trade_number(self) -> int:
        rows = self._rows("SELECT coalesce(max(id), 0) + 1 FROM trades", ())
        return int(rows[0][0])

    def _trades_before(self, first_new: int) -> dict[str, TradesBefore]:
        day = timeframe_ms("1d")
        totals = self._rows(
            "SELECT strategy_id, count(*), max(exit_ts) FROM trades WHERE id < ? GROUP BY strategy_id", (first_new,)
        )
        before = {sid: TradesBefore(total, None if last is None else last // day, 0) for sid, total, last in totals}
        last_days = self._rows(
            "SELECT t.strategy_id, count(*) FROM trades AS t JOIN "
            "(SELECT strategy_id, max(exit_ts) / ? AS day FROM trades WHERE id < ? GROUP BY strategy_id) AS m "
            "ON t.strategy_id = m.strategy_id WHERE t.id < ? AND t.exit_ts >= m.day * ? GROUP BY t.strategy_id",
            (day, first_new, first_new, day),
        )
        for sid, count in last_days:
            before[sid] = before[sid]._replace(last_day_count=count)
        return before

    def _daily_equity(self, strategy_ids: Sequence[str]) -> dict[str, list[tuple[int, float]]]:
        days: dict[str, list[tuple[int, float]]] = {sid: [] for sid in strategy_ids}
        for ids in _chunks(strategy_ids):
            marks = ",".join("?" * len(ids))
            for sid, ts, snapshot in self._rows(f"SELECT strategy_id, ts, snapshot FROM equity_daily WHERE strategy_id IN ({marks}) ORDER BY strategy_id, day", tuple(ids)):
                equity = json_object(snapshot, f"{self.path}: table equity_daily, strategy {sid!r}").get("equity")
                if isinstance(equity, int | float) and not isinstance(equity, bool):
                    days[sid].append((ts, float(equity)))
        return days

    def _rows(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        with self._lock:
            if self._closed:
                raise JournalError(f"{self.path}: the journal is closed")
            try:
                if self._conn is None:
                    # Any worker thread may run a read (one at a time, under the lock).
                    self._conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
                    # Checkpoints are PASSIVE and never lock a reader out; a moment's lock is waited for.
                    self._conn.execute("PRAGMA busy_timeout=1000")
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise JournalError(f"{self.path}: journal read failed: {exc}") from exc


def _chunks(ids: Sequence[str]) -> list[Sequence[str]]:
    return [ids[i : i + _MAX_IDS] for i in range(0, len(ids), _MAX_IDS)]
