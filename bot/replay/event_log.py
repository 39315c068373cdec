"""The replay's outputs written as events arrive: events.jsonl and trades.csv."""
from __future__ import annotations

import csv
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from time import gmtime, strftime
from typing import BinaryIO, Final, TextIO

from bot.event_codec import HEADER, line_writer
from bot.events import Event, PositionClosed


class EventLog:
    """Writes every event to `events.jsonl` as it is published: the format header, then one line per event."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO = path.open("wb", buffering=1 << 20)
        self._file.write(HEADER + b"\n")
        self._writers: dict[type[Event], Callable[[Event], None]] = {}

    def write(self, event: Event) -> None:
        """Append one event."""
        self.writer_for(type(event))(event)

    def writer_for(self, cls: type[Event]) -> Callable[[Event], None]:
        """The function appending one `cls` event's line: subscribed with `EventBus.subscribe_each`, the bus calls it directly."""
        writer = self._writers.get(cls)
        if writer is None:
            writer = self._writers[cls] = line_writer(cls, self._file.write)
            # The name a failing subscriber is reported by (report.json's error): the same for every class, as before.
            writer.__qualname__ = "EventLog.write"
        return writer

    def close(self) -> None:
        """Flush and close the file."""
        if not self._file.closed:
            self._file.close()


TRADE_COLUMNS = (
    "strategy_id",
    "symbol",
    "side",
    "quantity",
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "pnl",
    "fees",
    "exit_reason",
    "position_id",
)


# Twice per trades.csv row: the day's text comes from time's C functions once per day, the
# time of day from these tables (a third of strftime's cost per call).
_HOUR_MINUTE: Final[tuple[str, ...]] = tuple(f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60))
_SECOND: Final[tuple[str, ...]] = tuple(f"{s:02d}Z" for s in range(60))


@lru_cache(maxsize=16)
def _day_text(day: int) -> str:
    return strftime("%Y-%m-%dT", gmtime(day * 86_400))


def iso_ms(ts_ms: int) -> str:
    """UTC ISO-8601 text of epoch milliseconds (to the second, the milliseconds dropped)."""
    day, second = divmod(ts_ms // 1000, 86_400)
    minute, second = divmod(second, 60)
    return _day_text(day) + _HOUR_MINUTE[minute] + _SECOND[second]


class TradesCsv:
    """Writes one `trades.csv` row per closed trade (pnl net of fees; exit price quantity-weighted)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO = path.open("w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file)
        self._writer.writerow(TRADE_COLUMNS)
        self.count = 0

    def write(self, event: Event) -> None:
        """Append the trade of a position_closed event (a bus subscriber)."""
        assert isinstance(event, PositionClosed), event
        trade = event.trade
        row = (
            trade.strategy_id,
            trade.symbol,
            trade.side,
            repr(trade.quantity),
            iso_ms(trade.entry_ts),
            repr(trade.entry_price),
            iso_ms(trade.exit_ts),
            repr(trade.exit_price),
            repr(trade.pnl),
            repr(trade.fees),
            trade.exit_reason,
            trade.position_id,
        )
        # The csv module tests every character of a row (about a tenth of an order's cost): the
        # texts are joined here unless a free-text field holds what csv would quote.
        words = trade.strategy_id + trade.symbol + trade.side + trade.exit_reason + trade.position_id
        if '"' in words or "," in words or "\n" in words or "\r" in words:
            self._writer.writerow(row)
        else:
            self._file.write(",".join(row) + "\r\n")
        self.count += 1

    def close(self) -> None:
        """Flush and close the file."""
        if not self._file.closed:
            self._file.close()
