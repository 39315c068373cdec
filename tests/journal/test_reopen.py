"""Reopening: state survives close/reopen; wrong files are refused by name; one equity row per strategy per UTC day."""
from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.errors import BotError
from bot.event_codec import encode_record, payload_of
from bot.events import FillRecord, OrderSubmitted, PortfolioSnapshot, PositionClosed, PositionOpened, PositionReduced, PositionState, StrategyStateChanged
from bot.journal import SCHEMA_VERSION, Journal, JournalError
from bot.journal.records import JournalledState
from tests.journal.builders import JournalledRun, dump_tables
from tests.journal.queries import equity_days, strategy_ids

DAY = 86_400_000
T0 = 1_640_995_200_000  # 2022-01-01T00:00:00Z


def _reads(journal: Journal) -> dict[str, Any]:
    reads: dict[str, Any] = {"states": journal.strategy_states(), "ids": strategy_ids(journal.path)}
    for sid in strategy_ids(journal.path):
        reads[sid] = (
            journal.open_positions(sid),
            journal.pending_orders(sid),
            journal.portfolio(sid),
            journal.closed_trades(sid),
            journal.last_order_number(sid),
            journal.last_position_number(sid),
            equity_days(journal.path, sid),
            journal.strategy_events(sid),
        )
    return reads


def _utc_day(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1000, tz=UTC).strftime("%Y-%m-%d")


def test_state_survives_close_and_reopen(tmp_path: Path, journalled_run: JournalledRun) -> None:
    rig = journalled_run.rig
    with Journal(journalled_run.path) as first:
        before = _reads(first)
    # A copy reopened elsewhere reads the same (the WAL was checkpointed into the file on close).
    copy = tmp_path / "copy.sqlite"
    copy.write_bytes(journalled_run.path.read_bytes())
    assert not Path(str(journalled_run.path) + "-wal").exists()
    with Journal(copy) as reopened:
        after = _reads(reopened)
    assert after == before
    assert before["ids"] == ["a", "b"]
    assert {sid: s.state for sid, s in before["states"].items()} == rig.manager.states()
    for sid in ("a", "b"):
        assert before[sid][3] and before[sid][6] and before[sid][7]
        assert before[sid][4] == len(rig.of_type(OrderSubmitted, sid))


def test_reopened_journal_goes_on_writing(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path) as journal:
        journal.record(StrategyStateChanged(1, 0, 0, "a", "active", "activated", None, None))
    with Journal(path) as journal:
        journal.record(StrategyStateChanged(1, 5, 5, "a", "failed", "failed", None, "ValueError: x"))
        assert journal.strategy_states() == {"a": JournalledState("failed", "failed", None, "ValueError: x", 5)}


def test_creates_parent_folders_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "run" / "deep" / "journal.sqlite"
    with Journal(path):
        pass
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_newer_schema_version_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    Journal(path).close()
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(JournalError) as raised:
        Journal(path)
    assert str(path) in str(raised.value) and f"version {SCHEMA_VERSION + 1}" in str(raised.value)
    assert isinstance(raised.value, BotError)


def test_a_file_that_is_not_a_database_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    path.write_bytes(b"this is a trading log, not a database\n" * 100)
    with pytest.raises(JournalError, match="not a usable SQLite journal") as raised:
        Journal(path)
    assert str(path) in str(raised.value)
    assert path.read_bytes() == b"this is a trading log, not a database\n" * 100


def test_another_sqlite_database_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    with pytest.raises(JournalError, match="not a journal") as raised:
        Journal(path)
    assert str(path) in str(raised.value)


def test_a_closed_journal_refuses_to_record(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    journal.close()
    journal.close()
    with pytest.raises(JournalError, match="journal.sqlite"):
        journal.record(StrategyStateChanged(1, 0, 0, "a", "active", "activated", None, None))


def test_a_bad_payload_rolls_back_the_whole_event(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path) as journal:
        # The position is inserted, then the portfolio cannot be serialised: nothing may remain.
        position = PositionState(
            "a-p1", "BTC/USD", "long", "open", 1.0, 1.0, 100.0, 0, None, (), False, None, None, None, False, False, 0.0, 0.0, None
        )
        portfolio = PortfolioSnapshot(1000.0, object(), 1000.0, 0.0, 0.0, 0.0, 0.0, 1000.0, 0.0, 0.0)  # type: ignore[arg-type]
        fill = FillRecord("a-1", "BTC/USD", "buy", 1.0, 100.0, 0.0, "taker", "signal", 0)
        with pytest.raises(JournalError, match="seq 7"):
            journal.record(PositionOpened(7, 0, 0, "a", position, "a-1", portfolio, fill))
        assert journal.open_positions("a") == [] and journal.portfolio("a") is None
    assert all(rows == [] for table, rows in dump_tables(path).items() if table != "schema_version")


def test_equity_daily_has_one_row_per_strategy_per_utc_day(journalled_run: JournalledRun) -> None:
    rig = journalled_run.rig
    with closing(sqlite3.connect(journalled_run.path)) as conn:
        assert conn.execute("SELECT count(*) FROM (SELECT 1 FROM equity_daily GROUP BY strategy_id, day HAVING count(*) > 1)").fetchone() == (0,)
    with Journal(journalled_run.path) as journal:
        for sid in ("a", "b"):
            expected: dict[str, dict[str, Any]] = {}
            for event in rig.events:
                if event.strategy_id == sid and isinstance(event, (PositionOpened, PositionReduced, PositionClosed)):
                    expected[_utc_day(event.ts)] = payload_of(event)["portfolio"]
            days = equity_days(journal.path, sid)
            assert len(days) >= 8 and dict(days) == expected
            assert [day for day, _ in days] == sorted(expected)


def _snapshot(equity: float) -> PortfolioSnapshot:
    return PortfolioSnapshot(1000.0, 1000.0, equity, 0.0, 0.0, 0.0, 0.0, 1000.0, 0.0, 0.0)


def test_snapshot_equity_keeps_the_latest_snapshot_of_each_day(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path) as journal:
        journal.snapshot_equity("a", T0 + 3_600_000, _snapshot(1.0))
        journal.snapshot_equity("a", T0 + DAY - 1, _snapshot(2.0))
        journal.snapshot_equity("a", T0 + 7_200_000, _snapshot(1.5))  # late and older: ignored
        journal.snapshot_equity("a", T0 + DAY, _snapshot(3.0))
        journal.snapshot_equity("b", T0, _snapshot(9.0))
        assert equity_days(path, "a") == [("2022-01-01", encode_record(_snapshot(2.0))), ("2022-01-02", encode_record(_snapshot(3.0)))]
        assert equity_days(path, "b") == [("2022-01-01", encode_record(_snapshot(9.0)))]
        assert journal.portfolio("a") is None
