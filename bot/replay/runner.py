"""Data-driven replay: stream recorded candles through the hub to every enabled strategy, on paper."""
from __future__ import annotations

import itertools
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.bus import EventBus
from bot.candles.hub import CandleFeedError
from bot.candles.merge import merge_streams
from bot.candles.reader import last_timestamp
from bot.candles.sources import CandleSource
from bot.clock import Clock, ReplayClock, WallClock
from bot.errors import BotError, StrategyError
from bot.events import Event, PositionClosed, ReplayFinished, ReplaySource, ReplayStarted
from bot.ohlcv import Candle, timeframe_ms
from bot.replay.equity import EquitySampler, sampling_interval_ms
from bot.replay.event_log import EventLog, TradesCsv
from bot.replay.report import build_report, write_report_json
from bot.replay.timerange import EmptyRangeError, TimeRange, iso
from bot.services import BotServices
from bot.strategy.config_load import LoadedConfig
from bot.strategy.manager import StrategyManager

Progress = Callable[[int], None]
_PROGRESS_EVERY = 8192


class ReplayAborted(BotError):
    """A replay stopped before its end; report.json says why and the outputs are partial."""

    def __init__(self, reason: str, out_dir: Path) -> None:
        self.reason = reason
        self.out_dir = out_dir
        super().__init__(f"replay aborted: {reason} (partial output in {out_dir})")


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """Where the outputs went and the report that was written."""

    out_dir: Path
    report: dict[str, Any]
    candles: int
    events: int


class _Opened:
    """A source's file opened once for the whole run: the next candle to play, and the rest.

    `first` and `last` are the open times the file holds, for a message about a --from/--to
    range it misses; `last` is None until known (read from a plain CSV file's tail when
    `find_last` is set, or seen when the warm-up read the whole file).
    """

    __slots__ = ("source", "rest", "head", "first", "last")

    def __init__(self, source: CandleSource, find_last: bool) -> None:
        self.source = source
        self.rest: Generator[Candle, None, None] = source.candles()
        self.head: Candle | None = next(self.rest, None)
        self.first = None if self.head is None else self.head.ts
        tail = last_timestamp(source.path) if find_last else None
        self.last = None if tail is None else tail + source.shift_ms

    def before(self, start: int) -> Iterator[Candle]:
        """Take the candles that open before `start` (the warm-up); `head` is then the first at or after it, if any."""
        candle = self.head
        rest = self.rest
        last = self.last
        while candle is not None and candle.ts < start:
            yield candle
            last = candle.ts
            candle = next(rest, None)
        self.head = candle
        if candle is None:
            self.last = last

    def playing(self, end: int | None) -> Iterator[Candle]:
        """The candles to replay: `head` and the rest of the file, up to `end` (exclusive) when given."""
        if self.head is None:
            return iter(())
        candles = itertools.chain((self.head,), self.rest)
        if end is None:
            return candles
        # The file is read no further than the first candle at or after `end`. A candle is a
        # tuple starting with its open time, so (end,) > candle is candle.ts < end, compared in C:
        # no Python call per candle on the hot path.
        limit: tuple[float, ...] = (end,)
        return itertools.takewhile(limit.__gt__, candles)

    def holds(self, time_range: TimeRange) -> bool:
        """Whether a candle to play opens inside the range, as far as is known before reading on."""
        head = self.head
        return head is not None and time_range.holds(head.ts, self.last)

    def span(self) -> str:
        """When the file's candles open (play time, after any shift_days), for a message."""
        if self.first is None:
            return "never"
        return f"from {iso(self.first)}" + (" on" if self.last is None else f" to {iso(self.last)}")

    def where(self) -> str:
        """The symbol and its file, for a message."""
        source = self.source
        shifted = f", shift_days {source.shift_ms // 86_400_000}" if source.shift_ms else ""
        return f"{source.symbol} ({source.path}{shifted})"

    def close(self) -> None:
        """Close the file, wherever the reading stopped."""
        self.rest.close()


class _Outputs:
    """The run's output files, opened in its output folder: events.jsonl, trades.csv and equity.csv."""

    def __init__(self, out_dir: Path, sources: list[CandleSource]) -> None:
        self._early = self._first_seq = 0
        self.events = EventLog(out_dir / "events.jsonl")
        try:
            self.trades = TradesCsv(out_dir / "trades.csv")
            frames = {s.symbol: timeframe_ms(s.timeframe) for s in sources}
            self.equity = EquitySampler(out_dir / "equity.csv", frames, sampling_interval_ms(list(frames.values())))
        except BaseException:
            self.close()
            raise

    def take(self, early: list[Event], bus: EventBus) -> None:
        """Write the events published before the files were open, in order, then every event as it is published."""
        for event in early:
            self.events.write(event)
            if isinstance(event, PositionClosed):
                self.trades.write(event)
        # Every event is written from here on: the count is the bus's sequence since.
        self._early, self._first_seq = len(early), bus.seq
        bus.subscribe_each(self.events.writer_for)
        bus.subscribe(self.trades.write, types=(PositionClosed,))

    def events_written(self, bus: EventBus) -> int:
        """How many events went to events.jsonl: those published before the files were open, and every one since."""
        return self._early + bus.seq - self._first_seq

    def close(self) -> None:
        """Flush and close whichever files were opened."""
        for name in ("events", "trades", "equity"):
            output = getattr(self, name, None)
            if output is not None:
                output.close()


class Replay:
    """One replay run: strategies on the kernel's services, the candle stream and the output files."""

    def __init__(
        self,
        services: BotServices,
        manager: StrategyManager,
        loaded: LoadedConfig,
        sources: list[CandleSource],
        out_dir: Path,
        wall_clock: Clock | None = None,
        time_range: TimeRange | None = None,
    ) -> None:
        self.loaded = loaded
        self.sources = sources
        self.out_dir = out_dir
        self.time_range = time_range
        # Only for the latest candle time a source accepts by default (now + one timeframe).
        self._wall_clock = wall_clock or WallClock()
        # Built by the kernel (bot/kernel), for mode replay.
        self.services = services
        self.manager = manager
        self.candles_done = 0
        # Candles read before --from into the hub's history, which strategies warm up from.
        self.warmup_candles = 0

    async def run(self, progress: Progress | None = None) -> ReplayResult:
        """Replay every candle and write events.jsonl, trades.csv, equity.csv and report.json.

        `progress` is called with 0 once the set-up has passed every check made before anything
        is written, then with the count of candles replayed every so often and at the end.

        A run cut short (a corrupt candle file, a failing event subscriber) still writes
        report.json, with status "aborted" and the error, then raises ReplayAborted.
        A source whose first or last candle lies outside its time window (before 1970, after
        now + one timeframe unless the source sets latest_ts_ms) raises CandleFileError before
        anything is written; a gzipped CSV file cannot be read from its end, so its last row
        is refused as the stream reaches it, and the run aborts there.

        With a time range, candles before its start fill the hub's history, which every
        strategy warms up from before the first candle in the range; only candles in the range
        are traded, sampled and counted. A higher-timeframe candle that opens before the start
        is warm-up too, even when it closes inside the range. A range no file has a candle in
        raises EmptyRangeError before anything is written: found from the files' ends when they
        say so (plain CSV files), else once the warm-up has read up to the range.
        """
        now = self._wall_clock.now_ms()
        self.sources = [source.bounded(now) for source in self.sources]
        opened = self._open()
        try:
            start = self._start_time(opened)
            return await self._run(opened, start, progress)
        finally:
            for stream in opened:
                stream.close()

    async def _run(self, opened: list[_Opened], start: int | None, progress: Progress | None) -> ReplayResult:
        services = self.services
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise ReplayAborted(f"output folder {self.out_dir} exists and is not a folder", self.out_dir)
        # The set-up (loading, the warm-up, the range check) runs before the output folder is
        # touched: a range found empty on the way writes nothing. Its events wait here meanwhile;
        # the files then take the bus's place of this buffer (nothing else on a replay's bus
        # publishes in turn, so the order of the events written stays the order published).
        early: list[Event] = []
        buffering = services.bus.subscribe(early.append)
        count = 0
        error: str | None = None
        await services.start()
        try:
            try:
                self._set_up(opened, start)
            except EmptyRangeError:
                raise
            except BotError as exc:
                error = self._why(exc)
            if error is None and progress is not None:
                progress(0)  # the checks made before anything is written have passed
            services.bus.unsubscribe(buffering)
            self.out_dir.mkdir(parents=True, exist_ok=True)
            outputs = _Outputs(self.out_dir, self.sources)
            try:
                outputs.take(early, services.bus)
                equity = outputs.equity
                if error is None:
                    try:
                        equity.start([self.manager.get(sid) for sid in self.manager.ids()], services.clock.now_ms())
                        self._stream(opened, progress, equity)
                        equity.finish(services.clock.now_ms())
                        count = self.candles_done
                        services.bus.publish(ReplayFinished, None, count, services.hub.gap_count)
                    except BotError as exc:
                        error = self._why(exc)
                        count = self.candles_done
            finally:
                outputs.close()
        finally:
            await services.stop()
        if error is None and services.bus.handler_errors:
            error = (
                f"{services.bus.handler_errors} event subscriber error(s), so the outputs are incomplete; "
                f"first: {services.logger.first_subscriber_error}"
            )
        orchestrators = [self.manager.get(sid) for sid in self.manager.ids()]
        facts: dict[str, Any] = {
            "status": "aborted" if error else "complete",
            "error": error,
            "candles": count,
            "gaps": services.hub.gap_count,
            "sources": [str(s.path) for s in self.sources],
            "equity_interval_ms": outputs.equity.interval_ms,
        }
        if self.time_range is not None:
            facts["range"] = {**self.time_range.as_report(), "warmup_candles": self.warmup_candles}
        report = build_report(orchestrators, facts)
        write_report_json(self.out_dir / "report.json", report)
        if error is not None:
            raise ReplayAborted(error, self.out_dir)
        return ReplayResult(self.out_dir, report, count, outputs.events_written(services.bus))

    def _why(self, exc: BotError) -> str:
        """Why the run stopped, for report.json: a candle feed's error names its file."""
        if isinstance(exc, CandleFeedError):
            paths = {s.symbol: s.path for s in self.sources}
            return f"{paths.get(exc.symbol, '?')}: {exc}"
        return str(exc)

    def _open(self) -> list[_Opened]:
        """Each source's file, opened at its first candle, after refusing any file whose ends lie outside its window."""
        opened: list[_Opened] = []
        try:
            for source in self.sources:
                source.check_last()
                opened.append(_Opened(source, find_last=self.time_range is not None))
        except BaseException:
            for stream in opened:
                stream.close()
            raise
        return opened

    def _start_time(self, opened: list[_Opened]) -> int | None:
        """When the run starts: the first candle's open time, or --from when that is later; None without candles.

        Refuses a range that no file can have a candle in, by what is known before reading on.
        """
        firsts = [stream.first for stream in opened if stream.first is not None]
        if not firsts:
            return None
        time_range = self.time_range
        if time_range is None:
            return min(firsts)
        if not any(stream.holds(time_range) for stream in opened):
            raise self._empty(opened)
        return min(firsts) if time_range.start is None else max(min(firsts), time_range.start)

    def _empty(self, opened: list[_Opened]) -> EmptyRangeError:
        assert self.time_range is not None
        spans = "; ".join(f"{stream.where()} {stream.span()}" for stream in opened)
        return EmptyRangeError(f"{self.time_range.describe()}: no candle opens in that range; the files' candles open: {spans}")

    def _set_up(self, opened: list[_Opened], start: int | None) -> None:
        services = self.services
        # Event time starts at the first recorded candle (at --from with a range), so even the
        # set-up events carry market time rather than the epoch.
        if start is not None and isinstance(services.clock, ReplayClock):
            services.clock.advance_to(start)
        for source in self.sources:
            services.hub.add_feed(source.symbol, source.timeframe)
        specs = self.loaded.enabled_strategies()
        warm_until = None if self.time_range is None else self.time_range.start
        if warm_until is None or all(stream.head is None or stream.head.ts >= warm_until for stream in opened):
            for spec in specs:
                self.manager.load(spec)
                self._activate(spec.id)
        else:
            # Loaded first, so the higher timeframes they ask for are built from the warm-up as
            # it goes by; activated after it, so each warms up from that history.
            for spec in specs:
                self.manager.load(spec)
            for stream in opened:
                # A higher-timeframe candle opening before --from is warm-up even if it closes after it.
                self.warmup_candles += services.hub.preload(stream.source.symbol, stream.before(warm_until), warm_until)
            for spec in specs:
                self._activate(spec.id)
        if self.time_range is not None:
            self._check_range(opened)
        services.bus.publish(ReplayStarted, None, tuple(ReplaySource(s.symbol, s.path.name, s.timeframe) for s in self.sources))

    def _activate(self, strategy_id: str) -> None:
        try:
            self.manager.activate(strategy_id)
        except StrategyError:
            pass  # its warm-up raised: the manager marked it failed and published why; the others go on

    def _check_range(self, opened: list[_Opened]) -> None:
        """After the warm-up: refuse a range no file has a candle in, and warn of each file that has none."""
        assert self.time_range is not None
        missing = [stream for stream in opened if not stream.holds(self.time_range)]
        if len(missing) == len(opened):
            raise self._empty(opened)
        for stream in missing:
            self.services.logger.logger.warning(
                "%s: no candle opens in the range %s (they open %s): strategies on %s do not trade",
                stream.where(), self.time_range.describe(), stream.span(), stream.source.symbol,
            )

    def _stream(self, opened: list[_Opened], progress: Progress | None, equity: EquitySampler) -> int:
        # The hot loop: no awaits, no per-candle allocation beyond the candle; the next candle
        # goes out only after every subscribed orchestrator has finished with this one.
        ingest = self.services.hub.ingest
        end = None if self.time_range is None else self.time_range.end
        streams = [(s.source.symbol, timeframe_ms(s.source.timeframe), s.playing(end)) for s in opened]
        candles = equity.sampled(merge_streams(streams))
        count = 0
        try:
            if progress is None:
                for symbol, candle in candles:
                    ingest(symbol, candle)
                    count += 1
                return count
            for symbol, candle in candles:
                ingest(symbol, candle)
                count += 1
                if not count % _PROGRESS_EVERY:
                    progress(count)
            progress(count)
            return count
        finally:
            self.candles_done = count
