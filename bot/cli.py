"""The `bot` command line: replay and validate."""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from bot.candles.reader import count_candles
from bot.clock import WallClock
from bot.config.loader import LoadedConfig, load_config
from bot.control.ctl_cli import add_ctl_parser, run_ctl
from bot.live.record_cli import add_record_parser, run_record
from bot.daemon.app import Daemon
from bot.daemon.feed import Pacer
from bot.errors import BotError, CandleFileError, ConfigError, ConfigProblem
from bot.log import BotLogger
from bot.replay.runner import Replay, ReplayResult
from bot.report.build import write_report
from bot.strategy.catalog_cli import add_strategies_parser, run_strategies
from bot.replay.sources import CandleSource, SourceScan, parse_candle_arg, resolve_sources, scan_source

EXIT_OK = 0
EXIT_INVALID = 2
EXIT_STRATEGY_FAILED = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bot", description="Multi-strategy crypto trading bot.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    replay = commands.add_parser("replay", help="paper-trade every enabled strategy over recorded candles")
    replay.add_argument("--config", default="config.json", type=Path, help="base configuration (default: config.json)")
    replay.add_argument(
        "--candles",
        action="append",
        default=[],
        metavar="SYMBOL=PATH",
        help="recorded candle file for a symbol (repeatable); default: the files named in the config",
    )
    replay.add_argument("--out", default=Path("runs/replay"), type=Path, help="output folder (default: runs/replay)")
    replay.add_argument("--quiet", action="store_true", help="no progress bar, no summary table")
    replay.add_argument("--report", action="store_true", help="also write the HTML report (OUT/report.html)")

    validate = commands.add_parser("validate", help="check the configuration and strategy files without running")
    validate.add_argument("--config", default="config.json", type=Path, help="base configuration (default: config.json)")

    report = commands.add_parser("report", help="turn a replay's output folder into one self-contained HTML page")
    report.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a replay's output folder (from bot replay --out)")
    report.add_argument("--out", type=Path, default=None, metavar="FILE", help="the HTML file to write (default: RUN_DIR/report.html)")

    run = commands.add_parser("run", help="run the daemon: paper-trade on a clock-driven feed, steered through the control socket")
    run.add_argument("--config", default="config.json", type=Path, help="base configuration (default: config.json)")
    run.add_argument("--candles", action="append", default=[], metavar="SYMBOL=PATH", help="recorded candle file for a symbol (repeatable)")

    add_strategies_parser(commands)
    add_ctl_parser(commands)
    add_record_parser(commands)
    return parser


def _stderr() -> Console:
    # soft_wrap on print keeps one problem on one line when stderr is a file or a pipe.
    return Console(stderr=True)


def _error(console: Console, text: str) -> None:
    # Error text quotes user input and candle values such as "[low 9.0, high 12.0]": never markup.
    console.print(f"[bold red]error[/]: {escape(text)}", highlight=False, soft_wrap=True)


def _print_problems(console: Console, problems: Sequence[ConfigProblem]) -> None:
    for problem in problems:
        _error(console, str(problem))


def _prepare(config: Path, candle_args: list[str], console: Console, daemon: bool = False) -> tuple[LoadedConfig, list[CandleSource]] | None:
    try:
        loaded = load_config(config)
        overrides: dict[str, str] = {}
        for arg in candle_args:
            symbol, path = parse_candle_arg(arg)
            if symbol in overrides:
                raise ValueError(f"--candles names {symbol} twice ({overrides[symbol]} and {path})")
            overrides[symbol] = path
    except ConfigError as exc:
        _print_problems(console, exc.problems)
        return None
    except ValueError as exc:
        _error(console, str(exc))
        return None
    if daemon and loaded.bot.feed.source == "ccxt":
        # The daemon streams exchange.feed.symbols (load_config checked every strategy against
        # them): no recorded file is read. `bot replay` still replays replay.candles.
        if overrides:
            _error(console, "--candles: feed.source is ccxt, the daemon streams exchange.feed.symbols")
            return None
        return loaded, []
    sources, problems = resolve_sources(loaded, overrides)
    if problems:
        _print_problems(console, problems)
        return None
    return loaded, sources


def _summary(result: ReplayResult) -> Table:
    table = Table(title=f"Replay: {result.candles:,} candles, {result.events:,} events -> {result.out_dir}")
    for column in ("strategy", "state", "trades", "win rate", "realised", "fees", "max DD", "final equity", "return"):
        table.add_column(column, justify="left" if column in ("strategy", "state") else "right")
    rows = list(result.report["strategies"].items()) + [("TOTAL", result.report["totals"])]
    for sid, r in rows:
        table.add_row(
            sid,
            str(r.get("state", "")),
            str(r["trades"]),
            f"{100 * r['win_rate']:.1f}%",
            f"{r['realised_pnl']:,.2f}",
            f"{r['fees']:,.2f}",
            f"{r['max_drawdown_pct']:.2f}%" if "max_drawdown_pct" in r else "",
            f"{r['final_equity']:,.2f}",
            f"{r['return_pct']:+.2f}%",
        )
    return table


def _replay(args: argparse.Namespace) -> int:
    err = _stderr()
    prepared = _prepare(args.config, args.candles, err)
    if prepared is None:
        return EXIT_INVALID
    loaded, sources = prepared
    replay = Replay(loaded, sources, args.out, BotLogger.to_stderr(), WallClock())
    if args.quiet:
        result = anyio.run(replay.run)
    else:
        total = sum(count_candles(s.path) for s in sources)
        columns = (TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=err, transient=False) as bar:
            task = bar.add_task("replay", total=total)
            result = anyio.run(replay.run, lambda n: bar.update(task, completed=n))
        # Outside a terminal rich would wrap the table at 80 columns; logs and CI are wider.
        Console(width=None if sys.stdout.isatty() else 140).print(_summary(result))
    if args.report:
        _write_report(args.out, None, args.quiet)
    failed = [sid for sid, r in result.report["strategies"].items() if r["state"] == "failed"]
    if not failed:
        return EXIT_OK
    for sid in failed:
        err.print(
            f"[bold yellow]warning[/]: strategy {escape(sid)} failed: {escape(str(result.report['strategies'][sid]['last_error']))}",
            highlight=False,
            soft_wrap=True,
        )
    return EXIT_STRATEGY_FAILED


def _write_report(run_dir: Path, out: Path | None, quiet: bool) -> None:
    path = write_report(run_dir, out)
    if not quiet:
        Console().print(f"report: {escape(str(path))}", highlight=False, soft_wrap=True)


def _report(args: argparse.Namespace) -> int:
    _write_report(args.run_dir, args.out, quiet=False)
    return EXIT_OK


def _validate(args: argparse.Namespace) -> int:
    console = Console()
    prepared = _prepare(args.config, [], _stderr(), daemon=True)
    if prepared is None:
        return EXIT_INVALID
    loaded, sources = prepared
    err = _stderr()
    scans = []
    now = WallClock().now_ms()
    for source in sources:
        try:
            scans.append((source, scan_source(source.bounded(now))))
        except CandleFileError as exc:
            _error(err, str(exc))
    if len(scans) < len(sources):
        return EXIT_INVALID
    for source, scan in scans:
        console.print(
            f"{escape(source.symbol)}: {escape(str(source.path))}: {scan.candles:,} candles of {source.timeframe}, {scan.gaps:,} gaps",
            highlight=False,
            soft_wrap=True,
        )
        _warn_jumps(err, source, scan)
    enabled = loaded.enabled_strategies()
    live = loaded.bot.exchange.feed if loaded.bot.exchange is not None and loaded.bot.feed.source == "ccxt" else None
    fed = f"live candles of {', '.join(live.symbols)} {live.timeframe}" if live is not None else f"candles for {', '.join(s.symbol + ' ' + s.timeframe for s in sources) or 'nothing'}"
    console.print(
        f"{escape(str(args.config))}: OK ({len(loaded.strategies)} strategies, {len(enabled)} enabled; {fed})",
        highlight=False,
        soft_wrap=True,
    )
    return EXIT_OK


def _warn_jumps(console: Console, source: CandleSource, scan: SourceScan) -> None:
    # Warnings, not errors: a real market can move that much, so validate still passes.
    for jump in scan.jumps:
        console.print(
            f"[bold yellow]warning[/]: {escape(str(source.path))}: {jump.unit} {jump.where}: close {jump.close!r} is more than "
            f"{source.close_jump_factor:g}x away from the previous close {jump.previous!r} (replay.candles.{escape(source.symbol)}.close_jump_factor)",
            highlight=False,
            soft_wrap=True,
        )
    if scan.jump_count > len(scan.jumps):
        console.print(
            f"[bold yellow]warning[/]: {escape(str(source.path))}: {scan.jump_count - len(scan.jumps):,} more close jumps not listed",
            highlight=False,
            soft_wrap=True,
        )


def _run(args: argparse.Namespace, pacer: Pacer | None = None) -> int:
    prepared = _prepare(args.config, args.candles, _stderr(), daemon=True)
    if prepared is None:
        return EXIT_INVALID
    loaded, sources = prepared
    logger = BotLogger.to_stderr(level=getattr(logging, loaded.bot.daemon.log_level))
    try:
        return anyio.run(Daemon(loaded, sources, logger, pacer).run)
    except BaseExceptionGroup as group:
        # An operator's error raised inside the task group (a journal file that is not a
        # journal, say) is still reported as one clear line, not a traceback.
        errors, others = group.split(BotError)
        if others is not None or errors is None:
            raise
        err = _stderr()
        for exc in errors.exceptions:
            _error(err, str(exc))
        return EXIT_INVALID


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "replay":
            return _replay(args)
        if args.command == "run":
            return _run(args)
        if args.command == "ctl":
            return run_ctl(args)
        if args.command == "record":
            return run_record(args)
        if args.command == "report":
            return _report(args)
        if args.command == "strategies":
            return run_strategies(args, Console(), _stderr())
        return _validate(args)
    except BotError as exc:
        _error(_stderr(), str(exc))
        return EXIT_INVALID


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
