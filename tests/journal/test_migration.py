"""Journals written by every earlier schema version open in place, and read their take-profit rungs from the reason text once."""
from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from bot.journal import SCHEMA_VERSION, Journal

# The columns each version added to `orders`, newest last: a journal of version v lacks those of v + 1 on.
_ADDED = {2: ("pair_group",), 3: ("order_type", "limit_price"), 4: ("stop_price",), 5: ("rung",)}
# (client id, intent, reason, the rung the migration must read from it)
_ORDERS = (
    ("s-1", "open", "signal", None),
    ("s-2", "close", "take_profit_1", 0),
    ("s-3", "close", "take_profit_12", 11),
    ("s-4", "close", "stop_loss", None),
    ("s-5", "close", "take_profit_x", None),
    ("s-6", "close", "take_profit_", None),
    ("s-7", "close", "take_profit_0", None),
    ("s-8", "open", "take_profit_2", None),  # an entry is never a rung's close, whatever it is called
)


def _journal_of_version(path: Path, version: int) -> None:
    """A journal as version `version` wrote it, with the orders above pending."""
    Journal(path).close()
    with closing(sqlite3.connect(path)) as conn, conn:
        for added in range(version + 1, SCHEMA_VERSION + 1):
            for column in _ADDED[added]:
                conn.execute(f"ALTER TABLE orders DROP COLUMN {column}")
        conn.execute("UPDATE schema_version SET version = ?", (version,))
        for number, (client_id, intent, reason, _) in enumerate(_ORDERS, 1):
            conn.execute(
                "INSERT INTO orders (strategy_id, client_id, number, symbol, side, quantity, intent, position_id, reason, ref_price, "
                "status, submitted_ts, submitted_seq) VALUES ('s', ?, ?, 'BTC/USD', 'sell', 1.0, ?, 's-p1', ?, 100.0, 'submitted', ?, ?)",
                (client_id, number, intent, reason, number, number),
            )


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION))
def test_a_journal_of_every_earlier_version_is_migrated_with_its_rungs_read_from_the_reason(tmp_path: Path, version: int) -> None:
    path = tmp_path / "journal.sqlite"
    _journal_of_version(path, version)
    with Journal(path) as journal:
        pending = journal.pending_orders("s")
    assert [(row["client_id"], row["rung"]) for row in pending] == [(client_id, rung) for client_id, _, _, rung in _ORDERS]
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        columns = {row[1] for row in conn.execute("PRAGMA table_info(orders)")}
    assert {column for added in _ADDED.values() for column in added} <= columns


def test_a_current_journal_keeps_the_rung_it_was_given_not_the_reason_text(tmp_path: Path) -> None:
    """Only the migration reads rungs from text: a version-5 row named take_profit_1 without a rung stays without one."""
    path = tmp_path / "journal.sqlite"
    Journal(path).close()
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "INSERT INTO orders (strategy_id, client_id, number, symbol, side, quantity, intent, position_id, reason, ref_price, "
            "status, submitted_ts, submitted_seq, rung) VALUES ('s', 's-1', 1, 'BTC/USD', 'sell', 1.0, 'close', 's-p1', 'take_profit_1', "
            "100.0, 'submitted', 1, 1, NULL)"
        )
    with Journal(path) as journal:
        assert [row["rung"] for row in journal.pending_orders("s")] == [None]
