"""A recorded candle file feeding one symbol: where it is, its timeframe, shift and bounds."""
from __future__ import annotations

import dataclasses
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

from bot.candles.reader import last_timestamp, read_candles
from bot.candles.window import EARLIEST_MS, TimeWindow
from bot.errors import CandleFileError
from bot.ohlcv import Candle, timeframe_ms

# The close-to-close factor above which `bot validate` warns, unless a source sets its own.
DEFAULT_CLOSE_JUMP_FACTOR = 10.0


@dataclass(frozen=True, slots=True)
class CandleSource:
    """A recorded candle file for one symbol and its base timeframe.

    `latest_ms` is the configured latest candle open time (play time, after the shift), when
    the source widens the default bound of now + one timeframe; `from_command_line` is set for
    a --candles file, which has no such setting. `window`, when set, is the span every candle
    read must lie in (see `bounded`).
    """

    symbol: str
    path: Path
    timeframe: str
    shift_ms: int = 0
    latest_ms: int | None = None
    close_jump_factor: float = DEFAULT_CLOSE_JUMP_FACTOR
    from_command_line: bool = field(default=False, compare=False)
    window: TimeWindow | None = field(default=None, compare=False)

    def bounded(self, now_ms: int) -> CandleSource:
        """This source refusing candles that open before 1970 or after its latest allowed time.

        The latest allowed time is `latest_ms` when configured, else `now_ms` + one timeframe
        (inclusive: up to the candle after the one in progress). Bounds are moved back by the
        shift, so the file is read as written.
        """
        if self.latest_ms is not None:
            latest, why = self.latest_ms, f"replay.candles.{self.symbol}.latest_ts_ms"
        elif self.from_command_line:
            latest = now_ms + timeframe_ms(self.timeframe)
            why = (
                f"now + one {self.timeframe} candle; a --candles file has no latest_ts_ms: to allow later ones, "
                f"name it in replay.candles.{self.symbol}.path and set replay.candles.{self.symbol}.latest_ts_ms"
            )
        else:
            latest = now_ms + timeframe_ms(self.timeframe)
            why = f"now + one {self.timeframe} candle; replay.candles.{self.symbol}.latest_ts_ms allows later ones"
        window = TimeWindow(EARLIEST_MS - self.shift_ms, latest - self.shift_ms, why, self.shift_ms)
        return dataclasses.replace(self, window=window)

    def candles(self) -> Generator[Candle, None, None]:
        """The file's candles, moved in time by `shift_ms` (whole days, so aggregation stays aligned)."""
        # The reader's own generator when nothing moves: one level less resumed per candle.
        return read_candles(self.path, self.window) if not self.shift_ms else self._shifted()

    def _shifted(self) -> Generator[Candle, None, None]:
        shift = self.shift_ms
        for candle in read_candles(self.path, self.window):
            yield candle._replace(ts=candle.ts + shift)

    def check_last(self) -> None:
        """Refuse a plain CSV file whose last row lies after the window, reading only its tail.

        Other files are checked as they stream (see `last_timestamp`). No-op without a window.
        """
        if self.window is None:
            return
        ts = last_timestamp(self.path)
        if ts is not None and ts > self.window.latest:
            raise CandleFileError(str(self.path), None, f"last line: {self.window.problem(ts)}")
