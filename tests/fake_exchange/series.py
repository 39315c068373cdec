"""A recorded candle file served as text, exactly as written, with Binance-shaped rows."""
from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from bot.ohlcv import timeframe_ms

# The five value columns, kept as the file's own text so the fake serves what was recorded.
Values = tuple[str, str, str, str, str]


@dataclass(frozen=True, slots=True)
class Series:
    """One symbol's recorded candles: open times and the untouched decimal text of each row."""

    timeframe: str
    tf_ms: int
    stamps: list[int]
    values: list[Values]

    @classmethod
    def load(cls, path: Path, timeframe: str) -> Series:
        """Read a shared/data CSV (`ts_ms,open,high,low,close,volume`) keeping every number's text."""
        stamps: list[int] = []
        values: list[Values] = []
        with path.open() as lines:
            next(lines)
            for line in lines:
                if not line.strip():
                    continue
                ts, o, h, lo, c, v = line.rstrip("\n").split(",")
                stamps.append(int(ts))
                values.append((o, h, lo, c, v))
        return cls(timeframe, timeframe_ms(timeframe), stamps, values)

    def shifted(self, ms: int) -> Series:
        """The same recorded values, each candle opening `ms` later (negative: earlier); a whole number of candles."""
        if ms % self.tf_ms:
            raise ValueError(f"a shift of {ms} ms is not a whole number of {self.timeframe} candles")
        return replace(self, stamps=[ts + ms for ts in self.stamps])

    def __len__(self) -> int:
        return len(self.stamps)

    def index_at_or_after(self, ts: int) -> int:
        """Index of the first candle opening at or after `ts`."""
        return bisect.bisect_left(self.stamps, ts)

    def kline(self, index: int, now_ms: int, updates: int, volumes: Callable[[str, str], tuple[str, str]] = lambda v, c: (v, "0")) -> list[object]:
        """The 12-field REST row of candle `index` as seen at `now_ms` (partial while it is forming).

        `volumes(volume, close)` gives fields 5 and 7 (by default the volume, and "0").
        """
        ts = self.stamps[index]
        o, h, lo, c, v = self.visible(index, now_ms, updates)
        volume, second = volumes(v, c)
        return [ts, o, h, lo, c, volume, ts + self.tf_ms - 1, second, 0, "0", "0", "0"]

    def visible(self, index: int, now_ms: int, updates: int) -> Values:
        """The candle's values at `now_ms`: final once closed, else the partial update reached by then."""
        ts = self.stamps[index]
        if now_ms >= ts + self.tf_ms:
            return self.values[index]
        step = max(0, (now_ms - ts) * updates // self.tf_ms)
        return self.partial(index, step, updates)

    def partial(self, index: int, step: int, updates: int) -> Values:
        """Values of the forming candle after `step` of `updates` pushes: price walks from open to close.

        They differ from the final values (unless the candle is flat), so a feed that publishes
        a partial candle as closed is caught by an exact comparison.
        """
        o_text, _h_text, _l_text, c_text, v_text = self.values[index]
        o, c, v = float(o_text), float(c_text), float(v_text)
        fraction = step / updates
        close = o + (c - o) * fraction
        return (o_text, repr(max(o, close)), repr(min(o, close)), repr(close), repr(v * fraction))
