"""The replay's outputs written as events arrive: events.jsonl and trades.csv."""
from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, TextIO

import orjson

from bot.events import Event


def _encode(value: Any) -> Any:
    # Candles are NamedTuples, which orjson does not serialise on its own: write them as arrays.
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def encode_event(event: Event) -> bytes:
    """One event as a JSON line with a stable key order."""
    return orjson.dumps(event.as_dict(), default=_encode)


class EventLog:
    """Writes every event to `events.jsonl`, one orjson line each, as it is published."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO = path.open("wb", buffering=1 << 20)
        self.count = 0

    def write(self, event: Event) -> None:
        """Append one event (a bus subscriber)."""
        self._file.write(encode_event(event) + b"\n")
        self.count += 1

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


def iso_ms(ts_ms: int) -> str:
    """UTC ISO-8601 text of epoch milliseconds."""
    return datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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
        trade = event.payload
        self._writer.writerow(
            (
                trade["strategy_id"],
                trade["symbol"],
                trade["side"],
                repr(trade["quantity"]),
                iso_ms(trade["entry_ts"]),
                repr(trade["entry_price"]),
                iso_ms(trade["exit_ts"]),
                repr(trade["exit_price"]),
                repr(trade["pnl"]),
                repr(trade["fees"]),
                trade["exit_reason"],
                trade["position_id"],
            )
        )
        self.count += 1

    def close(self) -> None:
        """Flush and close the file."""
        if not self._file.closed:
            self._file.close()
