"""Data-driven replay: stream recorded candles through the hub to every enabled strategy, on paper."""
from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bot.candles.hub import CandleFeedError
from bot.candles.model import Candle, timeframe_ms
from bot.clock import Clock, ReplayClock, WallClock
from bot.config.loader import LoadedConfig
from bot.errors import BotError
from bot.log import BotLogger
from bot.replay.equity import EquitySampler, sampling_interval_ms
from bot.replay.event_log import EventLog, TradesCsv
from bot.replay.report import build_report
from bot.replay.sources import CandleSource
from bot.services import BotServices
from bot.strategy.factory import OrchestratorFactory
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


def merged_candles(sources: list[CandleSource]) -> Iterator[tuple[str, Candle]]:
    """All sources' candles in close-time order; ties go in source order, so replay is deterministic."""
    if len(sources) == 1:
        symbol = sources[0].symbol
        for candle in sources[0].candles():
            yield symbol, candle
        return

    def keyed(index: int, source: CandleSource) -> Iterator[tuple[int, int, str, Candle]]:
        length = timeframe_ms(source.timeframe)
        for candle in source.candles():
            yield candle.ts + length, index, source.symbol, candle

    for _, _, symbol, candle in heapq.merge(*(keyed(i, s) for i, s in enumerate(sources))):
        yield symbol, candle


class Replay:
    """One replay run: services, strategies, the candle stream and the output files."""

    def __init__(
        self,
        loaded: LoadedConfig,
        sources: list[CandleSource],
        out_dir: Path,
        logger: BotLogger | None = None,
        wall_clock: Clock | None = None,
    ) -> None:
        self.loaded = loaded
        self.sources = sources
        self.out_dir = out_dir
        # Only for the latest candle time a source accepts by default (now + one timeframe).
        self._wall_clock = wall_clock or WallClock()
        self.services = BotServices.for_replay(loaded.bot, logger)
        self.factory = OrchestratorFactory(self.services, loaded.catalog)
        self.manager = StrategyManager(self.services, self.factory)
        self.candles_done = 0

    async def run(self, progress: Progress | None = None) -> ReplayResult:
        """Replay every candle and write events.jsonl, trades.csv, equity.csv and report.json.

        A run cut short (a corrupt candle file, a failing event subscriber) still writes
        report.json, with status "aborted" and the error, then raises ReplayAborted.
        A source whose first or last candle lies outside its time window (before 1970, after
        now + one timeframe unless the source sets latest_ts_ms) raises CandleFileError before
        anything is written; a gzipped CSV file cannot be read from its end, so its last row
        is refused as the stream reaches it, and the run aborts there.
        """
        services = self.services
        now = self._wall_clock.now_ms()
        self.sources = [source.bounded(now) for source in self.sources]
        firsts = self._first_times()
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise ReplayAborted(f"output folder {self.out_dir} exists and is not a folder", self.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        events = EventLog(self.out_dir / "events.jsonl")
        trades = TradesCsv(self.out_dir / "trades.csv")
        services.bus.subscribe(events.write)
        services.bus.subscribe(trades.write, types=("position_closed",))
        frames = {s.symbol: timeframe_ms(s.timeframe) for s in self.sources}
        equity = EquitySampler(self.out_dir / "equity.csv", frames, sampling_interval_ms(list(frames.values())))
        count = 0
        error: str | None = None
        await services.start()
        try:
            self._set_up(firsts)
            equity.start([self.manager.get(sid) for sid in self.manager.ids()], services.clock.now_ms())
            self._stream(progress, equity)
            equity.finish(services.clock.now_ms())
            count = self.candles_done
            services.bus.publish("replay_finished", {"candles": count, "gaps": services.hub.gap_count})
        except CandleFeedError as exc:
            paths = {s.symbol: s.path for s in self.sources}
            error = f"{paths.get(exc.symbol, '?')}: {exc}"
            count = self.candles_done
        except BotError as exc:
            error = str(exc)
            count = self.candles_done
        finally:
            events.close()
            trades.close()
            equity.close()
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
            "equity_interval_ms": equity.interval_ms,
        }
        report = build_report(orchestrators, facts)
        (self.out_dir / "report.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
        if error is not None:
            raise ReplayAborted(error, self.out_dir)
        return ReplayResult(self.out_dir, report, count, events.count)

    def _first_times(self) -> list[int]:
        """Each source's first candle time, after refusing any file whose ends lie outside its window."""
        firsts = []
        for source in self.sources:
            source.check_last()
            firsts += [c.ts for c in itertools.islice(source.candles(), 1)]
        return firsts

    def _set_up(self, firsts: list[int]) -> None:
        services = self.services
        # Event time starts at the first recorded candle, so even the set-up events carry
        # market time rather than the epoch.
        if firsts and isinstance(services.clock, ReplayClock):
            services.clock.advance_to(min(firsts))
        for source in self.sources:
            services.hub.add_feed(source.symbol, source.timeframe)
        for spec in self.loaded.enabled_strategies():
            self.manager.load(spec)
            self.manager.activate(spec.id)
        services.bus.publish(
            "replay_started",
            {"sources": [{"symbol": s.symbol, "file": s.path.name, "timeframe": s.timeframe} for s in self.sources]},
        )

    def _stream(self, progress: Progress | None, equity: EquitySampler) -> int:
        # The hot loop: no awaits, no per-candle allocation beyond the candle; the next candle
        # goes out only after every subscribed orchestrator has finished with this one.
        ingest = self.services.hub.ingest
        candles = equity.sampled(merged_candles(self.sources))
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
