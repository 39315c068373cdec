"""The daemon's recorded feed: candles from files published at a multiple of real time, or when a test says."""
from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Literal, Protocol

import anyio
from anyio.abc import TaskStatus

from bot.candles.hub import CandleHub
from bot.candles.merge import merged_candles
from bot.candles.sources import CandleSource
from bot.errors import BotError
from bot.ohlcv import Candle, timeframe_ms

FeedState = Literal["starting", "backfilling", "playing", "ended", "stopped"]


class Pacer(Protocol):
    """When the recorded feed publishes each candle while playing: clock-driven in `bot run`, stepped by a test."""

    def begin(self, last_close: int | None, processed: Callable[[], Awaitable[None]]) -> None:
        """Playing starts, after the backfill.

        `last_close` is the close time of the newest backfilled candle (None without a backfill);
        `processed()` returns once every strategy has processed every candle published so far.
        """

    async def wait(self, close_ts: int) -> None:
        """Return when the candle closing at `close_ts` may be published; the feed cancels this wait to stop."""

    async def finish(self, state: Literal["ended", "stopped"]) -> None:
        """Playing is over (the recording ended, or the feed was stopped): nothing more is published."""


class ClockPacer:
    """Each candle at its close time scaled by `speed`, counted from the last backfilled close."""

    def __init__(self, speed: float) -> None:
        self._speed = speed
        self._origin_wall: float | None = None
        self._origin_ts = 0

    def begin(self, last_close: int | None, processed: Callable[[], Awaitable[None]]) -> None:
        """Start the clock at the last backfilled close: the next candle comes one scaled interval later."""
        # Without a backfill, the clock starts at the first candle played (published at once).
        self._origin_wall = None if last_close is None else anyio.current_time()
        self._origin_ts = 0 if last_close is None else last_close

    async def wait(self, close_ts: int) -> None:
        """Sleep until the candle's scaled close time (only yield when it is already due)."""
        if self._origin_wall is None:
            self._origin_wall, self._origin_ts = anyio.current_time(), close_ts
        delay = self._origin_wall + (close_ts - self._origin_ts) / 1000.0 / self._speed - anyio.current_time()
        if delay > 0:
            await anyio.sleep(delay)
        else:
            await anyio.lowlevel.checkpoint()

    async def finish(self, state: Literal["ended", "stopped"]) -> None:
        """Nothing to release."""


async def _nothing_to_process() -> None:
    await anyio.lowlevel.checkpoint()


class RecordedFeed:
    """Publishes recorded candles to the hub, each at its close time scaled by `speed` (or when `pacer` says).

    The first `backfill` candles go out at once, before trading starts, so strategies warm up
    from history as they would from an exchange's REST backfill. With `loop`, the recording
    starts again shifted forward in time by its own length, so time never runs backwards.
    With `resume_after` (a restart: the close time of the last candle processed), playing
    continues after it, and the backfill is the `backfill` candles just before it.
    `pacer` decides when each candle is played (default: ClockPacer(speed)); `processed` waits
    until every candle published so far has been processed (the daemon's inboxes drained).
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
        pacer: Pacer | None = None,
        processed: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._sources = sources
        self._hub = hub
        self._speed = speed
        self._loop = loop
        self._backfill = backfill
        self._on_state = on_state
        self._resume_after = resume_after
        self._on_published = on_published
        self._pacer: Pacer = pacer if pacer is not None else ClockPacer(speed)
        self._processed = processed if processed is not None else _nothing_to_process
        # The pacer's wait for the next candle, cancelled by `stop`.
        self._pacing: anyio.CancelScope | None = None
        self.state: FeedState = "starting"
        self.published = 0
        # Close time of the last candle published while playing (the restart point once processed).
        self.last_close: int | None = None
        # Time shift between two passes of the looped recording (None: not looping, or not known yet).
        self.loop_period: int | None = None
        self._stop = anyio.Event()
        # Sources added mid-session: (next close time, order, symbol, candle, rest of the file).
        self._added: list[tuple[int, int, str, Candle, Iterator[Candle]]] = []
        self._added_count = 0
        # Each added symbol's source number while it plays, and that of the candle being played (None: the main stream).
        self._live_added: dict[str, int] = {}
        self._playing_source: int | None = None
        self.added_sources: list[CandleSource] = []
        self._lengths = {s.symbol: timeframe_ms(s.timeframe) for s in sources}

    def _set_state(self, state: FeedState, **info: Any) -> None:
        self.state = state
        self._on_state(state, {"candles": self.published, **info})

    def stop(self) -> None:
        """Stop publishing after the current candle."""
        self._stop.set()
        if self._pacing is not None:
            self._pacing.cancel()

    def add_source(self, source: CandleSource, now_ms: int) -> int:
        """Add a symbol mid-session: its candles closed by `now_ms` warm the history, the rest are played.

        Returns how many candles went into history. An added source does not loop; it is played
        only while the feed plays. A bad file leaves no trace (CandleFileError/CandleFeedError).
        """
        length = timeframe_ms(source.timeframe)
        candles = source.candles()
        past: list[Candle] = []
        upcoming: Candle | None = None
        for candle in candles:
            if candle.ts + length > now_ms:
                upcoming = candle
                break
            past.append(candle)
        self._hub.add_feed(source.symbol, source.timeframe)
        try:
            warmed = self._hub.preload(source.symbol, past)
        except BaseException:
            self._hub.remove_feed(source.symbol)
            raise
        self._lengths[source.symbol] = length
        self.added_sources.append(source)
        self._added_count += 1
        self._live_added[source.symbol] = self._added_count
        if upcoming is not None:
            heapq.heappush(self._added, (upcoming.ts + length, self._added_count, source.symbol, upcoming, candles))
        return warmed

    def remove_source(self, symbol: str) -> None:
        """Stop playing a symbol added mid-session and forget its feed (nobody may subscribe to it)."""
        if symbol not in {source.symbol for source in self.added_sources}:
            raise ValueError(f"{symbol} was not added mid-session")
        self._hub.remove_feed(symbol)
        self._added = [entry for entry in self._added if entry[2] != symbol]
        heapq.heapify(self._added)
        self.added_sources = [source for source in self.added_sources if source.symbol != symbol]
        del self._lengths[symbol]
        # Its next candle may already wait on the pacer in `run`: it must not reach the hub, nor a
        # feed of the same symbol added again later.
        del self._live_added[symbol]

    def _loop_period(self) -> tuple[int, int] | None:
        """(first open time, time shift between two passes) of the looped recording, or None if empty."""
        first = last = None
        for _, candle in merged_candles(self._sources):
            if first is None:
                first = candle.ts
            last = candle.ts
        if first is None or last is None:
            return None
        step = min(timeframe_ms(s.timeframe) for s in self._sources)
        # Shift by a whole number of the largest timeframe, so derived buckets stay aligned.
        unit = max(timeframe_ms(s.timeframe) for s in self._sources)
        return first, -(-(last - first + step) // unit) * unit + unit

    def _stream(self) -> Iterator[tuple[str, Candle]]:
        shift = 0
        period: int | None = None
        if self._loop:
            found = self._loop_period()
            if found is None:
                return
            first, period = found
            self.loop_period = period
            if self._resume_after is not None and self._resume_after > first:
                # Start at the pass holding the resume point instead of re-reading every pass
                # since the daemon began (one pass back, so the backfill window is complete).
                shift = max(0, (self._resume_after - first) // period - 1) * period
        while True:
            for symbol, candle in merged_candles(self._sources):
                yield symbol, candle._replace(ts=candle.ts + shift) if shift else candle
            if period is None:
                return
            shift += period

    def _with_added(self, stream: Iterator[tuple[str, Candle]], lengths: dict[str, int]) -> Iterator[tuple[str, Candle]]:
        """The main stream merged, in close-time order, with sources added while playing."""
        head = next(stream, None)
        while head is not None or self._added:
            added = self._added
            if added and (head is None or added[0][0] < head[1].ts + lengths[head[0]]):
                _, order, symbol, candle, rest = heapq.heappop(added)
                try:
                    following = next(rest, None)
                except BotError as exc:
                    # A bad row deep in an added file ends that symbol's feed, not the daemon.
                    self._on_state(self.state, {"candles": self.published, "symbol": symbol, "error": str(exc)})
                    following = None
                if following is not None:
                    heapq.heappush(added, (following.ts + lengths[symbol], order, symbol, following, rest))
                self._playing_source = order
                yield symbol, candle
            else:
                assert head is not None
                self._playing_source = None
                yield head
                head = next(stream, None)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Backfill, report started, then play the rest as the pacer allows until the end or `stop`."""
        stream = self._stream()
        self._set_state("backfilling", backfill=self._backfill)
        ingest = self._hub.ingest
        lengths = self._lengths
        if self._resume_after is None:
            backlog: Iterable[tuple[str, Candle]] = itertools.islice(stream, self._backfill)
        else:
            window: deque[tuple[str, Candle]] = deque(maxlen=self._backfill)
            resume_at: list[tuple[str, Candle]] = []
            for item in stream:
                if item[1].ts + lengths[item[0]] > self._resume_after:
                    resume_at.append(item)
                    break
                window.append(item)
            backlog = window
            stream = itertools.chain(resume_at, stream)
        last_close: int | None = None
        for symbol, candle in backlog:
            ingest(symbol, candle)
            self.published += 1
            last_close = candle.ts + lengths[symbol]
        task_status.started()
        self._set_state("playing", speed=self._speed)
        pacer = self._pacer
        pacer.begin(last_close, self._processed)
        for symbol, candle in self._with_added(stream, lengths):
            if self._stop.is_set():
                break
            close_ts = candle.ts + lengths[symbol]
            source = self._playing_source
            with anyio.CancelScope() as self._pacing:
                await pacer.wait(close_ts)
            self._pacing = None
            if self._stop.is_set():
                break
            if source is not None and self._live_added.get(symbol) != source:
                continue  # removed (remove-symbol) while this candle waited
            ingest(symbol, candle)
            self.published += 1
            self.last_close = close_ts
            if self._on_published is not None:
                self._on_published(close_ts)
        state: Literal["ended", "stopped"] = "stopped" if self._stop.is_set() else "ended"
        self._set_state(state)
        await pacer.finish(state)
