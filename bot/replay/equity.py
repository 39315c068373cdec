"""The replay's equity series: each strategy's equity sampled on a market-time grid, streamed to equity.csv."""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TextIO

from bot.events import PortfolioSnapshot
from bot.ohlcv import Candle

EQUITY_COLUMNS = ("ts_ms", "strategy_id", "equity", "cash", "unrealised", "open_positions")
HOUR_MS = 3_600_000
# Past this many milliseconds of boundaries without a candle close, only the first and the last
# get a row: a recording with a years-long hole must not write a row for every hour of it.
LONG_GAP_MS = 7 * 24 * HOUR_MS


class _Portfolio(Protocol):
    def record(self) -> PortfolioSnapshot: ...


class _Positions(Protocol):
    @property
    def positions(self) -> Mapping[Any, Any]: ...


class Sampled(Protocol):
    """What the sampler reads of an orchestrator: its id, portfolio and open positions."""

    @property
    def strategy_id(self) -> str: ...

    @property
    def portfolio(self) -> _Portfolio: ...

    @property
    def positions(self) -> _Positions: ...


def sampling_interval_ms(base_timeframes_ms: Sequence[int]) -> int:
    """The grid step: one hour, or the coarsest candle timeframe when that is longer (1d data)."""
    return max([HOUR_MS, *base_timeframes_ms])


class EquitySampler:
    """Writes one equity.csv row per strategy at the start, at every grid boundary of candle close time, and at the end.

    A row at boundary B holds the state after every candle that closed at or before B and
    before any later one, so with several symbols all of them have been seen. The rows go to
    the file as they are made: memory does not grow with the length of the run. Boundaries a
    gap skips repeat the unchanged state, except that a gap whose boundaries span more than
    `long_gap_ms` gets rows at its first and last boundary only (two rows, however long).
    """

    def __init__(self, path: Path, timeframe_ms: Mapping[str, int], interval_ms: int, long_gap_ms: int = LONG_GAP_MS) -> None:
        if interval_ms <= 0:
            raise ValueError("interval_ms must be > 0")
        self.path = path
        self.interval_ms = interval_ms
        self.long_gap_ms = long_gap_ms
        self._timeframe_ms = dict(timeframe_ms)
        self._file: TextIO = path.open("w", encoding="utf-8", newline="", buffering=1 << 16)
        self._file.write(",".join(EQUITY_COLUMNS) + "\n")
        self._strategies: list[Sampled] = []
        self._next = 0
        self._last_ts: int | None = None
        self.rows = 0

    def start(self, strategies: Sequence[Sampled], ts: int) -> None:
        """Write the opening rows at `ts` (the first candle's open time) and set the first boundary after it."""
        self._strategies = list(strategies)
        self._write(ts)
        self._next = (ts // self.interval_ms + 1) * self.interval_ms

    def sampled(self, candles: Iterator[tuple[str, Candle]]) -> Iterator[tuple[str, Candle]]:
        """Pass the candles through, writing the rows of every boundary a candle's close time goes past."""
        step = self.interval_ms
        long_gap = self.long_gap_ms
        nxt = self._next
        timeframe_ms = self._timeframe_ms
        for item in candles:
            close = item[1].ts + timeframe_ms[item[0]]
            if close > nxt:
                # Nothing traded between the boundaries a gap skips: each gets the same state,
                # so the series stays on its grid for the ratios computed from it. A long gap
                # keeps its two ends on the grid; the report reads the time between them.
                last = nxt + (close - 1 - nxt) // step * step
                if last - nxt > long_gap:
                    self._write(nxt)
                    nxt = last
                while close > nxt:
                    self._write(nxt)
                    nxt += step
                self._next = nxt
            yield item

    def finish(self, ts: int) -> None:
        """Write the closing rows at `ts` (the last candle's close) unless a boundary row already has that time."""
        if ts != self._last_ts:
            self._write(ts)

    def close(self) -> None:
        """Flush and close the file."""
        if not self._file.closed:
            self._file.close()

    def _write(self, ts: int) -> None:
        write = self._file.write
        for strategy in self._strategies:
            snap = strategy.portfolio.record()
            # repr keeps floats exact and byte-identical across runs.
            write(
                f"{ts},{strategy.strategy_id},{snap.equity!r},{snap.cash!r},{snap.unrealised!r},"
                f"{len(strategy.positions.positions)}\n"
            )
            self.rows += 1
        self._last_ts = ts
