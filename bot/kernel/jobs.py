"""`bot replay --jobs N`: the strategies of a replay split over N processes, their outputs merged into one run's.

Each process (a part) replays every candle file for a consecutive run of the enabled strategies,
in a folder of its own; the merge (bot.replay.parts) then writes events.jsonl, trades.csv,
equity.csv and report.json byte for byte as one process replaying them all would. Strategies
coupled by the global risk limits run in one process (bot.replay.coupling).
"""
from __future__ import annotations

import shutil
import signal
import tempfile
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.bus import EventBus
from bot.candles.hub import CandleHub
from bot.candles.sources import CandleSource
from bot.clock import ReplayClock, WallClock
from bot.config.loader import strategy_folders
from bot.config.models import BotConfig, StrategyConfig
from bot.errors import BotError
from bot.kernel.replay import build_replay
from bot.log import BotLogger
from bot.replay.coupling import coupling
from bot.replay.event_order import EventOrder
from bot.replay.parts import Part, merge_parts
from bot.replay.runner import Progress, Replay, ReplayAborted, ReplayResult
from bot.replay.timerange import TimeRange
from bot.strategy.catalog import StrategyCatalog
from bot.strategy.config_check import extra_streams
from bot.strategy.config_load import LoadedConfig

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

Stream = tuple[str, str]
# How often the parent looks at the parts' progress while it waits for them.
_POLL_S = 0.2


class JobError(BotError):
    """A part of a replay run in several processes failed: names its strategies and the error."""


@dataclass(frozen=True, slots=True)
class LogSettings:
    """What each part logs: the level, and the file it appends to as well as stderr."""

    level: int
    file: Path | None = None


@dataclass(frozen=True, slots=True)
class _Task:
    """What one part replays, sent to its process (spawned: everything in it pickles)."""

    index: int
    config_path: Path
    bot: BotConfig
    specs: tuple[StrategyConfig, ...]
    positions: dict[str, int]
    streams: tuple[Stream, ...]
    sources: tuple[CandleSource, ...]
    folder: Path
    time_range: TimeRange | None
    log: LogSettings


def split(count: int, parts: int, market_share: bool = False) -> list[range]:
    """`count` strategies in `parts` consecutive runs as even as can be, the longer ones last.

    With `market_share`, the first part, which also writes the candle events, counts as holding
    one strategy more (writing a line per candle costs about what a strategy does).
    """
    parts = max(1, min(parts, count))
    if market_share and count // parts >= 1 and parts > 1:
        runs = split(count + 1, parts)
        if len(runs[0]) > 1:
            return [range(len(runs[0]) - 1)] + [range(run.start - 1, run.stop - 1) for run in runs[1:]]
    base, extra = divmod(count, parts)
    runs = []
    start = 0
    for index in range(parts):
        size = base + (1 if index >= parts - extra else 0)
        runs.append(range(start, start + size))
        start += size
    return runs


def single_process_reason(loaded: LoadedConfig, sources: Sequence[CandleSource]) -> str | None:
    """Why `--jobs` cannot split this config's strategies over processes; None when it can."""
    coupled = coupling(loaded)
    if coupled is not None:
        return coupled
    # Every part derives every stream: one the candle files cannot give aborts the replay at that strategy's load, as one process does.
    feeds = CandleHub(EventBus(ReplayClock()), 1, None, False)
    for source in sources:
        feeds.add_feed(source.symbol, source.timeframe)
    for spec in loaded.enabled_strategies():
        streams, unbuilt = extra_streams(spec, loaded.catalog, spec.id)
        if unbuilt is not None:
            return f"strategy {spec.id!r} raised while being built ({unbuilt.reason}): it fails when loaded, as in one process"
        for symbol, timeframe in [(spec.symbol, spec.timeframe), *streams]:
            try:
                feeds.check(symbol, timeframe)
            except (KeyError, ValueError) as exc:
                return f"strategy {spec.id!r} reads {symbol} {timeframe}, which the candle files cannot give ({exc.args[0]}): it fails when loaded, as in one process"
    return None


def build_jobs_replay(
    loaded: LoadedConfig,
    sources: list[CandleSource],
    out_dir: Path,
    jobs: int,
    log: LogSettings,
    logger: BotLogger,
    time_range: TimeRange | None = None,
    notice: Callable[[str], None] | None = None,
) -> Replay | ParallelReplay:
    """The replay of `loaded` in `jobs` processes, or in this one (with a `notice` of why, when strategies are coupled)."""
    enabled = loaded.enabled_strategies()
    if jobs > 1 and len(enabled) > 1:
        reason = single_process_reason(loaded, sources)
        if reason is None:
            return ParallelReplay(loaded, sources, out_dir, jobs, log, time_range)
        if notice is not None:
            notice(f"--jobs {jobs}: running in one process: {reason}")
    return build_replay(loaded, sources, out_dir, logger, WallClock(), time_range)


class ParallelReplay:
    """A replay whose strategies run in several processes: same outputs as one process, same `run` as Replay."""

    def __init__(
        self, loaded: LoadedConfig, sources: list[CandleSource], out_dir: Path, jobs: int, log: LogSettings, time_range: TimeRange | None = None
    ) -> None:
        self.loaded = loaded
        self.sources = sources
        self.out_dir = out_dir
        self.jobs = jobs
        self.log = log
        self.time_range = time_range

    def tasks(self, scratch: Path) -> list[_Task]:
        """One task per part: consecutive strategies, each with the streams of every strategy (so every hub emits alike)."""
        enabled = self.loaded.enabled_strategies()
        positions = {spec.id: index for index, spec in enumerate(enabled)}
        streams: list[Stream] = []
        for spec in enabled:
            streams.append((spec.symbol, spec.timeframe))
            streams += extra_streams(spec, self.loaded.catalog, spec.id)[0]
        streams = list(dict.fromkeys(streams))
        tasks = []
        for index, run in enumerate(split(len(enabled), self.jobs, market_share=self.loaded.bot.replay.log_candles)):
            folder = scratch / f"part-{index}"
            folder.mkdir()
            bot = self.loaded.bot
            if index:
                # Market-wide events come from the first part alone: the others need not encode a line per candle.
                bot = bot.model_copy(update={"replay": bot.replay.model_copy(update={"log_candles": False})})
            specs = tuple(enabled[i] for i in run)
            tasks.append(
                _Task(index, self.loaded.path, bot, specs, positions, tuple(streams), tuple(self.sources), folder, self.time_range, self.log)
            )
        return tasks

    async def run(self, progress: Progress | None = None) -> ReplayResult:
        """Replay in the parts' processes and merge their outputs (see Replay.run for `progress` and the errors).

        It blocks while the parts run: nothing else runs on the event loop of `bot replay`.
        """
        return self.run_blocking(progress)

    def run_blocking(self, progress: Progress | None = None) -> ReplayResult:
        """`run` without an event loop."""
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise ReplayAborted(f"output folder {self.out_dir} exists and is not a folder", self.out_dir)
        scratch = Path(tempfile.mkdtemp(prefix="bot-jobs-"))
        try:
            tasks = self.tasks(scratch)
            results = _Processes(tasks).run(progress)
            parts = [Part(task.folder, len(task.specs), task.index == 0) for task in tasks]
            report, events = merge_parts(parts, self.out_dir)
            if report["replay"]["status"] != "complete":
                raise ReplayAborted(str(report["replay"]["error"]), self.out_dir)
            return ReplayResult(self.out_dir, report, int(results[0]["candles"]), events)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


class _Processes:
    """The parts' processes: started together, waited for, all stopped when one fails or the parent is interrupted."""

    def __init__(self, tasks: Sequence[_Task]) -> None:
        self.tasks = tasks

    def run(self, progress: Progress | None) -> list[dict[str, Any]]:
        # Imported here: `bot replay` without --jobs does not pay for it.
        import multiprocessing
        from multiprocessing.connection import wait

        # Spawned, not forked: a child starts clean, holding none of the parent's threads or open files.
        context = multiprocessing.get_context("spawn")
        done_counts = context.Array("q", [-1] * len(self.tasks), lock=False)
        processes: list[BaseProcess] = []
        pipes: dict[Connection, _Task] = {}
        results: dict[int, dict[str, Any]] = {}
        previous = _raise_on_signals()
        try:
            for task in self.tasks:
                receive, send = context.Pipe(duplex=False)
                child = context.Process(target=work, args=(task, send, done_counts), name=f"bot-replay-part-{task.index}")
                child.start()
                send.close()  # the child's end: EOF here once the child is gone
                processes.append(child)
                pipes[receive] = task
            shown = -1
            while pipes:
                ready = set(wait(list(pipes), timeout=_POLL_S))
                for pipe in [pipe for pipe in pipes if pipe in ready]:
                    task = pipes.pop(pipe)
                    results[task.index] = self._outcome(task, pipe)
                    pipe.close()
                if progress is not None:
                    least = min(done_counts)
                    if least > shown:
                        progress(least)
                        shown = least
            for process in processes:
                process.join()
            return [results[task.index] for task in self.tasks]
        finally:
            for process in processes:
                if process.is_alive():
                    process.terminate()
            for process in processes:
                process.join()
            for pipe in pipes:
                pipe.close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    @staticmethod
    def _outcome(task: _Task, pipe: Connection) -> dict[str, Any]:
        names = ", ".join(spec.id for spec in task.specs)
        try:
            kind, value = pipe.recv()
        except EOFError:
            raise JobError(f"the replay process of strategies {names} ended without a result") from None
        if kind == "done":
            result: dict[str, Any] = value
            return result
        if kind == "bot_error":
            # The set-up's refusals (an empty --from/--to range, a bad candle file) are every part's: said as one process says them.
            raise BotError(str(value))
        raise JobError(f"the replay process of strategies {names} failed: {value}")


class Terminated(BaseException):
    """SIGTERM reached `bot replay --jobs` while its parts ran: they are stopped, the command ends."""


def _raise_on_signals() -> dict[int, Any]:
    """Make Ctrl-C and SIGTERM raise in the main thread while it waits for the parts; the handlers replaced, to put back.

    SIGTERM would end this process at once and leave the parts running; asyncio's SIGINT handler
    (`bot replay` runs under anyio.run) only cancels a task at its next await, which the wait never reaches.
    """
    if threading.current_thread() is not threading.main_thread():
        return {}

    def terminated(signum: int, frame: Any) -> None:
        raise Terminated(f"signal {signum}")

    return {signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler), signal.SIGTERM: signal.signal(signal.SIGTERM, terminated)}


def work(task: _Task, pipe: Connection, done_counts: Any) -> None:
    """A part's process: replay its strategies into its folder and send back what the merge needs."""
    # Ctrl-C reaches the whole process group: the parent stops the parts, they do not each print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        pipe.send(("done", _replay_part(task, done_counts)))
    except BotError as exc:
        pipe.send(("bot_error", str(exc)))
    except BaseException as exc:  # noqa: BLE001  reported to the parent, which fails the command with it
        pipe.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
    finally:
        pipe.close()


def _replay_part(task: _Task, done_counts: Any) -> dict[str, Any]:
    import anyio

    catalog = StrategyCatalog.discover(strategy_folders(task.config_path, task.bot))
    loaded = LoadedConfig(task.config_path, task.bot, task.specs, {}, catalog)
    logger = BotLogger.to_stderr(level=task.log.level, log_file=task.log.file)
    try:
        replay = build_replay(loaded, list(task.sources), task.folder, logger, WallClock(), task.time_range)
        order = EventOrder(task.positions)
        replay.services.bus.subscribe(order.record)
        for source in task.sources:
            replay.services.hub.add_feed(source.symbol, source.timeframe)
        order.attach(replay.services.hub, task.streams)

        def show(done: int) -> None:
            done_counts[task.index] = done

        aborted: str | None = None
        try:
            result = anyio.run(replay.run, show)
            candles = result.candles
        except ReplayAborted as exc:
            aborted, candles = exc.reason, replay.candles_done
        order.settle(replay.warmup_candles > 0)
        order.save(task.folder)
        return {"candles": candles, "aborted": aborted}
    finally:
        logger.close()

