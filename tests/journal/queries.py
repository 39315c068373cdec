"""Reads of a journal file that only tests make, with plain sqlite3 on the real file (the daemon never needs them)."""
from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson

# Every table that holds rows of a strategy.
_TABLES_WITH_STRATEGIES = ("strategy_states", "orders", "positions", "trades", "portfolio", "equity_daily", "strategy_events")


def strategy_ids(path: Path) -> list[str]:
    """Every strategy id with a row in any table of the journal at `path`, sorted."""
    union = " UNION ".join(f"SELECT strategy_id FROM {table}" for table in _TABLES_WITH_STRATEGIES)
    with closing(sqlite3.connect(path)) as conn:
        return [row[0] for row in conn.execute(union + " ORDER BY 1")]


def equity_days(path: Path, strategy_id: str) -> list[tuple[str, dict[str, Any]]]:
    """A strategy's daily equity snapshots in the journal at `path`, as ('YYYY-MM-DD' UTC, snapshot), oldest day first."""
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT day, snapshot FROM equity_daily WHERE strategy_id = ? ORDER BY day", (strategy_id,)).fetchall()
    return [(day, orjson.loads(snapshot)) for day, snapshot in rows]
