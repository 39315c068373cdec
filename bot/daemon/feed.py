"""The daemon's recorded feed: candles from files published at a multiple of real time."""
from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

import anyio
from anyio.abc import TaskStatus

from bot.candles.hub import CandleHub
from bot.candles.model import Candle, timeframe_ms
from bot.replay.runner import merged_candles
from bot.replay.sources import CandleSource

FeedState = Literal["starting", "backfilling", "playing", "ended", "stopped"]


class RecordedFeed:
    """Publishes recorded candles to the hub, each at its close time scaled by `speed`.

    The first `backfill` candles go out at once, before trading starts, so strategies warm up
    from history as they would from an exchange's REST backfill. With `loop`, the recording
    starts again shifted forward in time by its own length, so time never runs backwards.
    With `resume_after` (a restart), playing continues after that candle time, and the backfill
    is the `backfill` candles just before it.
    """

    def __init__(
        self,
        sources: list[CandleSource],
        hub: CandleHub,
        speed: float,
        loop: bool,
        backfill: int,
        on_state: Callable[[FeedState, dict[str, Any]], None],
        resume_after: int | None = None,
        on_published: Callable[[int], None] | None = None,
    ) -> None:
        self._sources = sources
        self._hub = hub
        self._speed = speed
        self._loop = loop
        self._backfill = backfill
        self._on_state = on_state
        self._resume_after = resume_after
        self._on_published = on_published
        self.state: FeedState = "starting"
        self.published = 0
        self._stop = anyio.Event()

    def _set_state(self, state: FeedState, **info: Any) -> None:
        self.state = state
        self._on_state(state, {"candles": self.published, **info})

    def stop(self) -> None:
        """Stop publishing after the current candle."""
        self._stop.set()

    def _stream(self) -> Iterator[tuple[str, Candle]]:
        shift = 0
        while True:
            first = last = None
            for symbol, candle in merged_candles(self._sources):
                if first is None:
                    first = candle.ts
                last = candle.ts
                yield symbol, candle._replace(ts=candle.ts + shift) if shift else candle
            if not self._loop or first is None or last is None:
                return
            step = min(timeframe_ms(s.timeframe) for s in self._sources)
            # Shift by a whole number of the largest timeframe, so derived buckets stay aligned.
            unit = max(timeframe_ms(s.timeframe) for s in self._sources)
            span = last - first + step
            shift += -(-span // unit) * unit + unit

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Backfill, report started, then play the rest in (scaled) real time until the end or `stop`."""
        stream = self._stream()
        self._set_state("backfilling", backfill=self._backfill)
        ingest = self._hub.ingest
        lengths = {s.symbol: timeframe_ms(s.timeframe) for s in self._sources}
        if self._resume_after is None:
            backlog: Iterable[tuple[str, Candle]] = itertools.islice(stream, self._backfill)
        else:
            window: deque[tuple[str, Candle]] = deque(maxlen=self._backfill)
            resume_at: list[tuple[str, Candle]] = []
            for item in stream:
                if item[1].ts > self._resume_after:
                    resume_at.append(item)
                    break
                window.append(item)
            backlog = window
            stream = itertools.chain(resume_at, stream)
        for symbol, candle in backlog:
            ingest(symbol, candle)
            self.published += 1
        task_status.started()
        self._set_state("playing", speed=self._speed)
        origin_wall: float | None = None
        origin_ts = 0
        for symbol, candle in stream:
            if self._stop.is_set():
                self._set_state("stopped")
                return
            close_ts = candle.ts + lengths[symbol]
            if origin_wall is None:
                origin_wall, origin_ts = anyio.current_time(), close_ts
            delay = origin_wall + (close_ts - origin_ts) / 1000.0 / self._speed - anyio.current_time()
            if delay > 0:
                with anyio.move_on_after(delay):
                    await self._stop.wait()
                if self._stop.is_set():
                    self._set_state("stopped")
                    return
            else:
                await anyio.lowlevel.checkpoint()
            ingest(symbol, candle)
            self.published += 1
            if self._on_published is not None:
                self._on_published(candle.ts)
        self._set_state("ended")
