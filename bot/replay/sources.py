"""Resolve which recorded file feeds each symbol, and check every strategy is fed."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bot.candles.model import Candle, timeframe_ms
from bot.candles.reader import infer_timeframe, read_candles
from bot.config.loader import LoadedConfig
from bot.errors import CandleFileError, ConfigProblem


@dataclass(frozen=True, slots=True)
class CandleSource:
    """A recorded candle file for one symbol and its base timeframe."""

    symbol: str
    path: Path
    timeframe: str
    shift_ms: int = 0

    def candles(self) -> Iterator[Candle]:
        """The file's candles, moved in time by `shift_ms` (whole days, so aggregation stays aligned)."""
        if not self.shift_ms:
            yield from read_candles(self.path)
            return
        shift = self.shift_ms
        for candle in read_candles(self.path):
            yield candle._replace(ts=candle.ts + shift)


@dataclass(frozen=True, slots=True)
class SourceScan:
    """What a full read of a candle file found."""

    candles: int
    gaps: int
    first: int | None
    last: int | None


def scan_source(source: CandleSource) -> SourceScan:
    """Read a whole candle file and check it fits its timeframe; CandleFileError names the candle at fault."""
    step = timeframe_ms(source.timeframe)
    count = gaps = 0
    first = last = None
    for candle in source.candles():
        ts = candle.ts
        if ts % step:
            raise CandleFileError(str(source.path), count + 1, f"timestamp {ts} is not on a {source.timeframe} boundary", unit="candle")
        if last is None:
            first = ts
        elif ts - last > step:
            gaps += 1
        last = ts
        count += 1
    return SourceScan(count, gaps, first, last)


def parse_candle_arg(text: str) -> tuple[str, str]:
    """Split a `SYMBOL=PATH` command-line value; ValueError names the bad value."""
    symbol, sep, path = text.partition("=")
    if not sep or not symbol.strip() or not path.strip():
        raise ValueError(f"--candles expects SYMBOL=PATH, got {text!r}")
    return symbol.strip(), path.strip()


def resolve_sources(loaded: LoadedConfig, overrides: dict[str, str] | None = None) -> tuple[list[CandleSource], list[ConfigProblem]]:
    """The candle files to replay: command-line overrides, else the config's replay.candles."""
    problems: list[ConfigProblem] = []
    sources: list[CandleSource] = []
    label = str(loaded.path)
    entries: list[tuple[str, Path, str | None, str, str, int]]
    if overrides:
        # A file named on the command line is the command line's problem, not config.json's.
        entries = [(symbol, Path(path), None, "command line", f"--candles {symbol}", 0) for symbol, path in overrides.items()]
    else:
        entries = [
            (symbol, loaded.base_dir / cfg.path, cfg.timeframe, label, f"replay.candles.{symbol}.path", cfg.shift_days * 86_400_000)
            for symbol, cfg in loaded.bot.replay.candles.items()
        ]
    unusable: set[str] = set()
    for symbol, path, timeframe, where, field, shift in entries:
        if not path.is_file():
            problems.append(ConfigProblem(where, field, f"candle file not found: {path}"))
            unusable.add(symbol)
            continue
        if timeframe is None:
            try:
                timeframe = infer_timeframe(path)
            except CandleFileError as exc:
                problems.append(ConfigProblem(where, field, str(exc)))
                unusable.add(symbol)
                continue
        sources.append(CandleSource(symbol, path, timeframe, shift))
    by_symbol = {s.symbol: s for s in sources}
    for strategy in loaded.enabled_strategies():
        file_label = str(loaded.strategy_files.get(strategy.id, label))
        source = by_symbol.get(strategy.symbol)
        if source is None:
            if strategy.symbol not in unusable:  # an unusable file was reported already
                problems.append(
                    ConfigProblem(file_label, "symbol", f"no candles for {strategy.symbol!r}: add it to replay.candles or pass --candles {strategy.symbol}=PATH")
                )
            continue
        needed = [("timeframe", strategy.timeframe)] + [
            (f"filters[{i}].params.timeframe", str(f.params["timeframe"])) for i, f in enumerate(strategy.filters) if "timeframe" in f.params
        ]
        base_ms = timeframe_ms(source.timeframe)
        for field, timeframe in needed:
            target = timeframe_ms(timeframe)
            if target < base_ms or target % base_ms:
                problems.append(
                    ConfigProblem(file_label, field, f"{timeframe} cannot be built from {strategy.symbol}'s {source.timeframe} candles ({source.path})")
                )
    return sources, problems
