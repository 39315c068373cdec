"""Reads for the API (trades, daily equity) over a read-only connection of their own: committed rows, never waiting for the writer."""
from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from bot.journal.records import json_object
from bot.journal.schema import JournalError

# The trade fields a reply carries (a trades row's record also holds the closing fill, which it leaves out).
TRADE_FIELDS: Final[tuple[str, ...]] = (
    "strategy_id", "position_id", "symbol", "side", "quantity", "entry_ts", "entry_price", "exit_ts", "exit_price", "pnl", "fees", "exit_reason", "group",
)
# Statements that name a strategy id each: SQLite's default limit on host parameters is far above this.
_MAX_IDS: Final[int] = 500


class JournalReader:
    """A read-only SQLite connection to a journal the daemon writes, used on one thread (the event loop's).

    WAL mode lets a reader run beside the writer: each statement reads the last commit, and no
    read waits for the journal's writer thread or holds it up. Opened on first use, so a daemon
    nobody asks for its history never opens it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    def trades(self, strategy_ids: Sequence[str], limit: int, before: int | None) -> list[dict[str, Any]]:
        """Up to `limit` closed trades of these strategies, newest first, each with its row number `n`; only those numbered below `before` when given."""
        if not strategy_ids or limit <= 0:
            return []
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

    def trade_counts(self, strategy_ids: Sequence[str], since_ms: int) -> dict[str, tuple[int, int]]:
        """Per strategy: its closed trades, and those closed at or after `since_ms`."""
        counts = {sid: (0, 0) for sid in strategy_ids}
        for ids in _chunks(strategy_ids):
            marks = ",".join("?" * len(ids))
            sql = (
                f"SELECT strategy_id, count(*), count(CASE WHEN exit_ts >= ? THEN 1 END) FROM trades "
                f"WHERE strategy_id IN ({marks}) GROUP BY strategy_id"
            )
            for sid, total, today in self._rows(sql, (since_ms, *ids)):
                counts[sid] = (total, today)
        return counts

    def daily_equity(self, strategy_id: str) -> list[tuple[int, float]]:
        """The strategy's end-of-day equity snapshots, oldest first: (ts, equity)."""
        rows = self._rows("SELECT ts, snapshot FROM equity_daily WHERE strategy_id = ? ORDER BY day", (strategy_id,))
        points = []
        for ts, snapshot in rows:
            equity = json_object(snapshot, f"{self.path}: table equity_daily, strategy {strategy_id!r}").get("equity")
            if isinstance(equity, int | float):
                points.append((ts, float(equity)))
        return points

    def close(self) -> None:
        """Close the connection (it opens again on the next read)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _rows(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        try:
            if self._conn is None:
                self._conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
                # Checkpoints are PASSIVE and never lock a reader out; a moment's lock is waited for, briefly (this is the event loop).
                self._conn.execute("PRAGMA busy_timeout=100")
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise JournalError(f"{self.path}: journal read failed: {exc}") from exc


def _chunks(ids: Sequence[str]) -> list[Sequence[str]]:
    return [ids[i : i + _MAX_IDS] for i in range(0, len(ids), _MAX_IDS)]
