"""`bot sweep`: its command line, checked whole before anything runs, then the replay of the variants and their ranking."""
from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from pathlib import Path

import anyio
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bot.candles.sources import CandleSource
from bot.config.currency import RISK_LIMITS, collision_problems, risk_problems
from bot.config.loader import mixed_currency_problems
from bot.errors import ConfigProblem
from bot.kernel.jobs import LogSettings, build_jobs_replay
from bot.log import BotLogger
from bot.log_options import log_level
from bot.replay.coupling import coupling
from bot.replay.sources import resolve_sources
from bot.replay.timerange import TimeRange
from bot.strategy.config_check import extra_streams
from bot.strategy.config_load import LoadedConfig
from bot.sweep.grid import SweepInputError, Variant, build_variants, parse_axis, refused
from bot.sweep.ranking import Ranked, check_rank, rank, write_csv

# The command line's config loading: the config and its candle files, or None once it printed the problems.
Prepare = Callable[[Path, list[str], Console], "tuple[LoadedConfig, list[CandleSource]] | None"]


def run_sweep(args: argparse.Namespace, prepare: Prepare, err: Console, out: Console) -> int:
    """Check the whole command line, replay the variants, print the ranked table and write OUT/sweep.csv; the exit code."""
    try:
        check_rank(args.rank)
        if args.jobs < 1:
            raise SweepInputError(f"--jobs {args.jobs}: give a number of processes, at least 1")
        time_range = _time_range(args.start, args.end)
        axes = [parse_axis(option) for option in args.grid]
    except SweepInputError as exc:
        _error(err, str(exc))
        return 2
    prepared = prepare(args.config, [], err)
    if prepared is None:
        return 2
    loaded, sources = prepared
    try:
        spec = next((s for s in loaded.strategies if s.id == args.strategy), None)
        if spec is None:
            known = ", ".join(s.id for s in loaded.strategies) or "none"
            raise SweepInputError(f"--strategy {args.strategy}: no strategy of {args.config} has that id (it has: {known})")
        label = str(loaded.strategy_files.get(spec.id, args.config))
        variants = build_variants(spec, axes, loaded.catalog, label)
        for variant in variants:
            problems = _config_problems(loaded, variant, label)
            if problems:
                raise refused(spec.id, axes, variant.values, problems)
    except SweepInputError as exc:
        _error(err, str(exc))
        return 2
    swept = dataclasses.replace(loaded, strategies=tuple(variant.spec for variant in variants))
    shared = coupling(swept)
    if shared is not None:
        # Alternatives sharing one kill switch: each variant's result depends on the others'.
        one = f" in one process (not --jobs {args.jobs})" if args.jobs > 1 else ""
        _note(err, f"the variants are replayed together{one} and share the global risk limits: {shared}")
    level = log_level(args)
    logger = BotLogger.to_stderr(level=level, log_file=args.log_file)
    try:
        replay = build_jobs_replay(swept, sources, args.out, args.jobs, LogSettings(level, args.log_file), logger, time_range)
        result = anyio.run(replay.run)
    finally:
        logger.close()
    ranked = rank(variants, axes, result.report["strategies"], args.rank)
    write_csv(ranked, args.out / "sweep.csv")
    out.print(_table(ranked, variants, args), soft_wrap=True)
    return 0


def _config_problems(loaded: LoadedConfig, variant: Variant, label: str) -> list[ConfigProblem]:
    """What loading config.json would refuse of the variant as a strategy file: another currency read, a symbol
    without candles, a timeframe they cannot make, a global risk limit that cannot hold for it."""
    spec = variant.spec
    streams, _ = extra_streams(spec, loaded.catalog, label)
    problems = mixed_currency_problems(spec, label, streams)
    limits = {name: getattr(loaded.bot.risk, name) for name in RISK_LIMITS}
    problems += risk_problems(limits, str(loaded.path), [(spec.id, spec.symbol, label)])
    problems += collision_problems([(spec.id, spec.symbol, label)])
    problems += resolve_sources(dataclasses.replace(loaded, strategies=(spec,)))[1]
    return problems


def _time_range(start: str | None, end: str | None) -> TimeRange | None:
    try:
        return TimeRange.parse(start, end)
    except ValueError as exc:
        raise SweepInputError(str(exc)) from None


def _table(ranked: Ranked, variants: list[Variant], args: argparse.Namespace) -> Table:
    table = Table(title=f"Sweep of {args.strategy}: {len(variants)} variants ranked by {args.rank} -> {args.out / 'sweep.csv'}")
    for column in ranked.columns:
        table.add_column(column, justify="left" if column in ("strategy_id", "state") else "right")
    for row in ranked.rows:
        table.add_row(*(escape(f"{value:,.4f}" if isinstance(value, float) else str(value)) for value in row))
    return table


def _error(console: Console, text: str) -> None:
    console.print(f"[bold red]error[/]: {escape(text)}", highlight=False, soft_wrap=True)


def _note(console: Console, text: str) -> None:
    console.print(f"[bold]note[/]: {escape(text)}", highlight=False, soft_wrap=True)
