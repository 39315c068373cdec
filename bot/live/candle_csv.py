"""Append-only candle CSV in the format replay reads, safe to resume after a crash."""
from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import TextIO

from bot.candles.reader import HEADER
from bot.ohlcv import Candle

_TAIL = 1 << 16


def csv_name(symbol: str, timeframe: str) -> str:
    """File name of a symbol's recording: `ETH/BTC` 1m -> `ETH-BTC_1m.csv` (as in shared/data)."""
    return f"{symbol.replace('/', '-').replace(':', '-')}_{timeframe}.csv"


def format_number(value: float) -> str:
    """The shortest decimal text that reads back as the same float, never with an exponent.

    A file of plain decimals, read to floats and written back, comes out byte for byte the
    same (an integral value is written without `.0`, as sources write them). A source that
    wrote more digits than a double holds cannot be reproduced from floats, by anyone.
    """
    text = repr(float(value))
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    return text.removesuffix(".0")


def format_row(candle: Candle) -> str:
    """One CSV line (with its newline) for a candle."""
    return f"{candle.ts},{format_number(candle.open)},{format_number(candle.high)},{format_number(candle.low)},{format_number(candle.close)},{format_number(candle.volume)}\n"


class CandleCsv:
    """One symbol's recording: opened for appending after its last complete row.

    A torn last line (the process died mid-write) is cut off when the file is opened, so a
    restart resumes after the last whole row: no row lost that was flushed, none duplicated.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.last_ts: int | None = None
        self._file: TextIO | None = None
        self.rows = 0

    def open(self) -> int | None:
        """Prepare the file (header if new, tail repaired if torn); return the last recorded open time."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        header = HEADER + b"\n"
        with open(self.path, "a+b") as raw:
            size = raw.seek(0, os.SEEK_END)
            raw.seek(max(0, size - _TAIL))
            tail = raw.read()
            cut = tail.rfind(b"\n") + 1
            complete = max(0, size - len(tail) + cut)
            raw.seek(0)
            if raw.read(len(header)) != header[: min(size, len(header))] and size:
                raise ValueError(f"{self.path}: not a candle recording (its first line is not {HEADER.decode()!r})")
            if complete < len(header):
                raw.truncate(0)
                raw.write(header)
            else:
                raw.truncate(complete)
                last = tail[:cut].rstrip(b"\n").rsplit(b"\n", 1)[-1]
                if last != HEADER:
                    try:
                        self.last_ts = int(last.split(b",", 1)[0])
                    except ValueError:
                        raise ValueError(f"{self.path}: the last row is not a candle: {last[:80]!r}") from None
            raw.flush()
            os.fsync(raw.fileno())
        self._file = open(self.path, "a", encoding="ascii", newline="\n")  # noqa: SIM115  open across appends; close() closes it
        return self.last_ts

    def append(self, candle: Candle) -> None:
        """Buffer one candle's row; `flush` makes it durable. Older candles than the last are refused."""
        if self._file is None:
            raise RuntimeError("open() first")
        if self.last_ts is not None and candle.ts <= self.last_ts:
            raise ValueError(f"{self.path}: candle {candle.ts} is not after the last recorded one, {self.last_ts}")
        self._file.write(format_row(candle))
        self.last_ts = candle.ts
        self.rows += 1

    def flush(self) -> None:
        """Write the buffered rows through to the disk (flush + fsync)."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        """Flush and close."""
        if self._file is not None:
            self.flush()
            self._file.close()
            self._file = None
