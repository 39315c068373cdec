"""Resolve which recorded file feeds each symbol, and check every strategy is fed."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bot.candles.reader import file_kind, infer_timeframe
from bot.candles.sources import DEFAULT_CLOSE_JUMP_FACTOR, CandleSource
from bot.errors import CandleFileError, ConfigProblem
from bot.ohlcv import timeframe_ms
from bot.strategy.config_load import LoadedConfig

# Jumps listed one by one per file; the rest are only counted.
_JUMPS_SHOWN = 20


@dataclass(frozen=True, slots=True)
class CloseJump:
    """A candle whose close is more than the source's factor above or below the previous close."""

    unit: str
    where: int
    previous: float
    close: float


@dataclass(frozen=True, slots=True)
class SourceScan:
    """What a full read of a candle file found."""

    candles: int
    gaps: int
    first: int | None
    last: int | None
    jumps: list[CloseJump] = field(default_factory=list)
    jump_count: int = 0


def scan_source(source: CandleSource) -> SourceScan:
    """Read a whole candle file and check it fits its timeframe; CandleFileError names the candle at fault.

    Also lists the candles whose close jumps by more than the source's factor (the first
    few; all are counted): warnings, since a real market can do it, but a file in the wrong
    unit or with a stray row does it far more often.
    """
    step = timeframe_ms(source.timeframe)
    unit, offset = ("line", 1) if file_kind(source.path) == "csv" else ("row", 0)
    factor = source.close_jump_factor
    count = gaps = jump_count = 0
    jumps: list[CloseJump] = []
    first = last = None
    prev_close = 0.0
    for candle in source.candles():
        ts = candle.ts
        if ts % step:
            raise CandleFileError(str(source.path), count + 1, f"timestamp {ts} is not on a {source.timeframe} boundary", unit="candle")
        close = candle.close
        if last is None:
            first = ts
        else:
            if ts - last > step:
                gaps += 1
            if close > prev_close * factor or close * factor < prev_close:
                jump_count += 1
                if len(jumps) < _JUMPS_SHOWN:
                    jumps.append(CloseJump(unit, count + 1 + offset, prev_close, close))
        last = ts
        prev_close = close
        count += 1
    return SourceScan(count, gaps, first, last, jumps, jump_count)


def parse_candle_arg(text: str) -> tuple[str, str]:
    """Split a `SYMBOL=PATH` command-line value; ValueError names the bad value."""
    symbol, sep, path = text.partition("=")
    if not sep or not symbol.strip() or not path.strip():
        raise ValueError(f"--candles expects SYMBOL=PATH, got {text!r}")
    return symbol.strip(), path.strip()


def resolve_sources(loaded: LoadedConfig, overrides: dict[str, str] | None = None) -> tuple[list[CandleSource], list[ConfigProblem]]:
    """The candle files to replay: config.json's replay.candles, each symbol named in `overrides`
    (the command line's --candles) read from the file given there instead; a symbol the config
    does not name is added."""
    problems: list[ConfigProblem] = []
    sources: list[CandleSource] = []
    label = str(loaded.path)
    overrides = overrides or {}
    entries: list[tuple[str, Path, str | None, str, str, int, int | None, float]] = []
    # An overridden symbol keeps its place in the config's order, so the merge of candles that
    # close at the same instant is the same as with the config's own file.
    for symbol in [*loaded.bot.replay.candles, *(s for s in overrides if s not in loaded.bot.replay.candles)]:
        if symbol in overrides:
            # A file named on the command line is the command line's problem, not config.json's;
            # the config's timeframe, shift and bounds describe the config's file, so none carries over.
            entries.append((symbol, Path(overrides[symbol]), None, "command line", f"--candles {symbol}", 0, None, DEFAULT_CLOSE_JUMP_FACTOR))
            continue
        cfg = loaded.bot.replay.candles[symbol]
        entries.append(
            (
                symbol,
                loaded.base_dir / cfg.path,
                cfg.timeframe,
                label,
                f"replay.candles.{symbol}.path",
                cfg.shift_days * 86_400_000,
                cfg.latest_ts_ms,
                cfg.close_jump_factor,
            )
        )
    unusable: set[str] = set()
    for symbol, path, timeframe, where, field_name, shift, latest, jump in entries:
        if not path.is_file():
            problems.append(ConfigProblem(where, field_name, f"candle file not found: {path}"))
            unusable.add(symbol)
            continue
        if timeframe is None:
            try:
                timeframe = infer_timeframe(path)
            except CandleFileError as exc:
                problems.append(ConfigProblem(where, field_name, str(exc)))
                unusable.add(symbol)
                continue
        sources.append(CandleSource(symbol, path, timeframe, shift, latest, jump, symbol in overrides))
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
        for field_name, timeframe in needed:
            target = timeframe_ms(timeframe)
            if target < base_ms or target % base_ms:
                problems.append(
                    ConfigProblem(file_label, field_name, f"{timeframe} cannot be built from {strategy.symbol}'s {source.timeframe} candles ({source.path})")
                )
    return sources, problems
