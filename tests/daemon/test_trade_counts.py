"""Trade counts: the journal's earlier trades counted once, this run's from its PositionClosed events, today by UTC day."""
from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import anyio
import pytest

from bot.daemon.trade_counts import TradeCounts
from bot.events import FillRecord, PortfolioSnapshot, PositionClosed, TradeRecord
from bot.journal import JournalError
from bot.journal.reader import JournalReader
from bot.journal.schema import open_database

DAY = 86_400_000
D = 19_000 * DAY  # a UTC midnight
PORTFOLIO = PortfolioSnapshot(1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0)


def _trade(sid: str, exit_ts: int) -> TradeRecord:
    return TradeRecord(sid, f"{sid}-p", "BTC/USD", "long", 1.0, exit_ts - 1, 1.0, exit_ts, 1.0, 0.0, 0.0, "signal", None)


def _closed(sid: str, exit_ts: int) -> PositionClosed:
    fill = FillRecord(f"{sid}-1", "BTC/USD", "sell", 1.0, 1.0, 0.0, "taker", "signal", exit_ts)
    return PositionClosed(1, exit_ts, exit_ts, sid, _trade(sid, exit_ts), PORTFOLIO, fill)


def _journal(path: Path, trades: list[tuple[str, int]]) -> None:
    """A journal whose trades table holds these (strategy, exit time) rows."""
    with closing(open_database(path)) as db:
        for sid, exit_ts in trades:
            db.execute("INSERT INTO trades (strategy_id, position_id, exit_ts, ts, seq, record) VALUES (?, 'p', ?, ?, 0, '{}')", (sid, exit_ts, exit_ts))


@pytest.mark.asyncio
async def test_earlier_trades_and_this_runs_add_up_by_day(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    _journal(path, [("a", D - 5), ("a", D - 1), ("a", D + 10), ("a", D + 20), ("a", D + 30), ("b", D + 40)])
    reader = JournalReader(path)
    counts = TradeCounts(await reader.next_trade_number())
    # This run's first trade is journalled (a row past the start's number) before the earlier ones are counted.
    _journal(path, [("a", D + 50)])
    await counts.load(reader)
    counts(_closed("a", D + 50))
    counts(_closed("a", D + DAY + 1))
    assert await counts.counts(reader, ["a", "b", "c"], D + 60) == {"a": (7, 4), "b": (1, 1), "c": (0, 0)}
    assert await counts.counts(reader, ["a", "b"], D + DAY + 2) == {"a": (7, 1), "b": (1, 0)}
    reader.close()


@pytest.mark.asyncio
async def test_a_count_that_failed_is_tried_again_by_the_next_request(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    reader = JournalReader(path)  # no journal there yet: the first read fails
    counts = TradeCounts(2)  # one earlier trade, numbered 1
    await counts.load(reader)
    with pytest.raises(JournalError, match="journal read failed"):
        await counts.counts(reader, ["a"], D)
    _journal(path, [("a", D + 1)])
    assert await counts.counts(reader, ["a"], D) == {"a": (1, 1)}
    reader.close()


@pytest.mark.asyncio
async def test_a_closed_reader_refuses_reads(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    _journal(path, [])
    reader = JournalReader(path)
    assert await reader.next_trade_number() == 1
    reader.close()
    with pytest.raises(JournalError, match="closed"):
        await reader.next_trade_number()
    with closing(sqlite3.connect(path)) as db:  # the file is untouched by the reader
        assert db.execute("SELECT count(*) FROM trades").fetchone() == (0,)


@pytest.mark.asyncio
async def test_a_count_cancelled_under_way_is_made_by_the_next_request(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    _journal(path, [("a", D + 1)])
    reader = JournalReader(path)
    counts = TradeCounts(2)

    class Cancelled(JournalReader):
        async def trades_before(self, first_new: int) -> dict[str, Any]:
            raise anyio.get_cancelled_exc_class()

    with pytest.raises(anyio.get_cancelled_exc_class()):
        await counts.load(Cancelled(path))
    # Not taken for "nothing earlier": counted now.
    assert await counts.counts(reader, ["a"], D) == {"a": (1, 1)}
    reader.close()
