"""The `bot` command line: replay and validate."""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.cluster_args import add_replay_cluster_options, add_worker_parser, needs_cluster_extra
from bot.control.ctl_args import add_ctl_parser
from bot.errors import BotError, CandleFileError, ConfigError, ConfigProblem
from bot.live.record_args import add_record_parser
from bot.log_options import add_log_options, log_level
from bot.strategy.catalog_args import add_strategies_parser
from bot.sweep.sweep_args import add_sweep_parser

# Each command imports what it runs when it runs, so `bot --help` (and one command) loads none of the others.
if TYPE_CHECKING:
    import logging

    from rich.console import Console
    from rich.table import Table

    from bot.candles.sources import CandleSource
    from bot.cluster.replay import ClusterReplay
    from bot.daemon.feed import Pacer
    from bot.journal.lock import JournalLock
    from bot.kernel.assembly import RouterFactory
    from bot.kernel.jobs import ParallelReplay
    from bot.replay.runner import Replay, ReplayResult
    from bot.replay.sources import SourceScan
    from bot.strategy.config_load import LoadedConfig

EXIT_OK = 0
EXIT_INVALID = 2
EXIT_STRATEGY_FAILED = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bot", description="Multi-strategy crypto trading bot.")
    parser.add_argument("--version", action=_PrintVersion, help="print the version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("version", help="print the version")

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
    replay.add_argument(
        "--from",
        dest="start",
        metavar="WHEN",
        help="trade from the first candle that opens at or after WHEN (UTC date or date-time, e.g. 2022-01-01 or 2022-01-01T12:30); "
        "earlier candles only warm the strategies up",
    )
    replay.add_argument("--to", dest="end", metavar="WHEN", help="stop before the first candle that opens at or after WHEN (exclusive)")
    replay.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary table, log warnings and errors only")
    replay.add_argument("--report", action="store_true", help="also write the HTML report (OUT/report.html)")
    replay.add_argument(
        "--jobs",
        type=_job_count,
        default=1,
        metavar="N",
        help="replay the strategies in N processes (same outputs; strategies coupled by global risk limits run in one)",
    )
    add_replay_cluster_options(replay)
    add_log_options(replay, quiet=False)

    validate = commands.add_parser("validate", help="check the configuration and strategy files without running")
    validate.add_argument("--config", default="config.json", type=Path, help="base configuration (default: config.json)")

    report = commands.add_parser("report", help="turn a replay's output folder into one self-contained HTML page")
    report.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a replay's output folder (from bot replay --out)")
    report.add_argument("--out", type=Path, default=None, metavar="FILE", help="the HTML file to write (default: RUN_DIR/report.html)")

    run = commands.add_parser("run", help="run the daemon: paper-trade on a clock-driven feed, steered through the control socket")
    run.add_argument("--config", default="config.json", type=Path, help="base configuration (default: config.json)")
    run.add_argument("--candles", action="append", default=[], metavar="SYMBOL=PATH", help="recorded candle file for a symbol (repeatable)")
    run.add_argument(
        "--fresh",
        action="store_true",
        help="start over: move the journal (and its -wal/-shm) aside as JOURNAL.<UTC time>, never deleted, instead of resuming it; "
        "in mode live refused while the journal holds open positions or pending orders (see --force)",
    )
    run.add_argument(
        "--force",
        action="store_true",
        help="with --fresh in mode live: start over even though the journal holds open positions or pending orders; "
        "the new journal knows nothing of them, so they and their stop orders stay on the exchange for you to close there",
    )
    add_log_options(run)

    add_strategies_parser(commands)
    add_sweep_parser(commands)
    add_ctl_parser(commands)
    add_record_parser(commands)
    add_worker_parser(commands)
    return parser


class _PrintVersion(argparse.Action):
    """argparse's version action, reading the installed version only when asked (importlib.metadata is slow to import)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: str | None = None) -> None:
        print(_version_line())
        parser.exit()


def _version_line() -> str:
    from bot.version import bot_version

    return f"bot {bot_version()}"


def _stderr() -> Console:
    from rich.console import Console

    # soft_wrap on print keeps one problem on one line when stderr is a file or a pipe.
    return Console(stderr=True)


def _error(console: Console, text: str) -> None:
    from rich.markup import escape

    # Error text quotes user input and candle values such as "[low 9.0, high 12.0]": never markup.
    console.print(f"[bold red]error[/]: {escape(text)}", highlight=False, soft_wrap=True)


def _note(console: Console, text: str) -> None:
    from rich.markup import escape

    console.print(f"[bold]note[/]: {escape(text)}", highlight=False, soft_wrap=True)


def _job_count(text: str) -> int:
    """--jobs: a whole number of processes, at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of processes (a whole number, at least 1)")
    return int(text)


def _cluster_options_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with replay's --cluster, --workers and --jobs together (None: nothing)."""
    if args.cluster is None:
        return "--workers needs --cluster URL: the workers are the cluster's" if args.workers is not None else None
    if args.jobs > 1:
        return "--jobs and --cluster do not go together: with --cluster the strategies run on --workers N worker processes"
    return needs_cluster_extra()


def _cluster_use(config: Path, loaded: LoadedConfig) -> str | None:
    """What `bot run` makes of a `cluster` section today (None without one): said, lest it seem to run strategies on workers."""
    cluster = loaded.bot.cluster
    if cluster is None:
        return None
    published = f"{config}: cluster section: candles and events are published to {cluster.url} (streams MD_{cluster.name}, EVT_{cluster.name}); "
    if cluster.placement == "workers":
        return published + f"each strategy decides on a worker of cluster {cluster.name} (bot worker --config ... --name NAME), its book kept here"
    return published + "every strategy decides in this process (placement hub)"


def _cluster_unusable(loaded: LoadedConfig, environ: Mapping[str, str] | None = None) -> str | None:
    """Why the config's cluster section cannot be used here (the extra missing; with `environ`, a credential's variable unset), or None."""
    if loaded.bot.cluster is None:
        return None
    missing = needs_cluster_extra()
    if missing is not None:
        return f"cluster section: {missing}"
    if loaded.bot.cluster.placement == "workers":
        from bot.cluster.leases import check_sid

        for spec in loaded.enabled_strategies():
            try:
                check_sid(spec.id)
            except ValueError as exc:
                # Each strategy's mind is placed by a lease named after it: an id that cannot name one would fail it at its first candle.
                return f"cluster.placement workers: {exc}"
    if environ is not None:
        from bot.cluster.access import ClusterConnectError, read_credentials

        try:
            read_credentials(loaded.bot.cluster, environ)
        except ClusterConnectError as exc:
            return str(exc)
    return None


def _http_unusable(loaded: LoadedConfig, environ: Mapping[str, str]) -> str | None:
    """Why the config's http section cannot be served (its token's variable named but unset), or None."""
    if loaded.bot.http is None:
        return None
    from bot.http.server import HttpStartError, http_token

    try:
        http_token(loaded.bot.http, environ)
    except HttpStartError as exc:
        return str(exc)
    return None


def _print_problems(console: Console, problems: Sequence[ConfigProblem | str]) -> None:
    for problem in problems:
        _error(console, str(problem))


def _gather(config: Path, candle_args: list[str], daemon: bool) -> tuple[LoadedConfig | None, list[CandleSource], list[ConfigProblem | str]]:
    """The config (None when it has problems), the candle files to read and every problem found:
    the command line's, config.json's, the strategy files' and the candle sources' in one list,
    so one run shows them all. The files of a config with problems are still resolved."""
    from bot.config.loader import exchange_problems
    from bot.replay.sources import parse_candle_arg, resolve_sources
    from bot.strategy.config_load import IncompleteConfigError, load_config

    problems: list[ConfigProblem | str] = []
    overrides: dict[str, str] = {}
    try:
        for arg in candle_args:
            symbol, path = parse_candle_arg(arg)
            if symbol in overrides:
                raise ValueError(f"--candles names {symbol} twice ({overrides[symbol]} and {path})")
            overrides[symbol] = path
    except ValueError as exc:
        problems.append(str(exc))
    loaded: LoadedConfig | None = None
    partial: LoadedConfig | None
    try:
        loaded = partial = load_config(config)
    except IncompleteConfigError as exc:
        problems += exc.problems
        partial = exc.partial
    except ConfigError as exc:
        return None, [], problems + exc.problems
    if partial is not None:
        # Here, not in load_config: the daemon must not import ccxt because a client sent a config.
        problems += exchange_problems(partial.bot, str(config))
    if partial is None or len(overrides) < len(candle_args):
        return loaded, [], problems
    if daemon and partial.bot.feed.source == "ccxt":
        # The daemon streams exchange.feed.symbols (load_config checked every strategy against
        # them): no recorded file is read. `bot replay` still replays replay.candles.
        if overrides:
            problems.append("--candles: feed.source is ccxt, the daemon streams exchange.feed.symbols")
        return loaded, [], problems
    sources, source_problems = resolve_sources(partial, overrides)
    return loaded, sources, problems + source_problems


def _prepare(config: Path, candle_args: list[str], console: Console | None, daemon: bool = False) -> tuple[LoadedConfig, list[CandleSource]] | None:
    """The config and candle sources, or None with the problems printed to `console` (None: a stderr console made only then)."""
    loaded, sources, problems = _gather(config, candle_args, daemon)
    if problems or loaded is None:
        _print_problems(_stderr() if console is None else console, problems)
        return None
    return loaded, sources


def _short_time(text: str | None, open_end: str) -> str:
    """A range end for the summary title: the date alone at midnight, no seconds when they are zero."""
    if text is None:
        return open_end
    if text.endswith("T00:00:00Z"):
        return text.removesuffix("T00:00:00Z")
    return text.removesuffix(":00Z") + "Z" if text.endswith(":00Z") else text


def _summary(result: ReplayResult) -> Table:
    from rich.table import Table

    from bot.config.currency import group_label, money_decimals

    # Money is never added across currencies: one TOTAL row per quote currency, and amounts
    # shown with enough decimals for their scale (10 BTC is not 10,000 USD).
    played = result.report["replay"].get("range")
    when = "" if played is None else f" {_short_time(played['from'], 'start')} to {_short_time(played['to'], 'end')}"
    warm = "" if played is None else f" (+{played['warmup_candles']:,} warm-up)"
    table = Table(title=f"Replay{when}: {result.candles:,} candles{warm}, {result.events:,} events -> {result.out_dir}")
    for column in ("strategy", "state", "currency", "trades", "win rate", "realised", "fees", "max DD", "final equity", "return"):
        table.add_column(column, justify="left" if column in ("strategy", "state", "currency") else "right")
    strategies = result.report["strategies"]
    symbols = [s["symbol"] for s in strategies.values()]
    rows = [(sid, r["currency"], r) for sid, r in strategies.items()]
    rows += [(f"TOTAL {currency}", currency, r) for currency, r in result.report["totals"].items()]
    for label, currency, r in rows:
        places = money_decimals(min(s["starting_balance"] for s in strategies.values() if s["currency"] == currency))
        table.add_row(
            label,
            str(r.get("state", "")),
            group_label(currency, symbols),
            str(r["trades"]),
            f"{100 * r['win_rate']:.1f}%",
            f"{r['realised_pnl']:,.{places}f}",
            f"{r['fees']:,.{places}f}",
            f"{r['max_drawdown_pct']:.2f}%" if "max_drawdown_pct" in r else "",
            f"{r['final_equity']:,.{places}f}",
            f"{r['return_pct']:+.2f}%",
        )
    return table


def _replay(args: argparse.Namespace) -> int:
    import anyio

    from bot.kernel.jobs import LogSettings, build_jobs_replay
    from bot.log import BotLogger
    from bot.replay.timerange import TimeRange

    # rich is imported only when something is printed: a quiet replay that succeeds prints nothing.
    range_problem: str | None = None
    try:
        time_range = TimeRange.parse(args.start, args.end)
    except ValueError as exc:
        time_range, range_problem = None, str(exc)
        _error(_stderr(), range_problem)
    cluster_problem = _cluster_options_problem(args)
    if cluster_problem is not None:
        _error(_stderr(), cluster_problem)
    prepared = _prepare(args.config, args.candles, None)
    if prepared is None or range_problem is not None or cluster_problem is not None:
        return EXIT_INVALID
    loaded, sources = prepared
    logger = BotLogger.to_stderr(level=log_level(args), log_file=args.log_file)
    replay: Replay | ParallelReplay | ClusterReplay
    if args.cluster is not None:
        from bot.clock import WallClock
        from bot.cluster.commands import cluster_config
        from bot.cluster.replay import ClusterReplay
        from bot.kernel.replay import build_replay

        cluster = cluster_config(args.cluster, loaded.bot.cluster)

        def build(router: RouterFactory) -> Replay:
            return build_replay(loaded, sources, args.out, logger, WallClock(), time_range, router)

        replay = ClusterReplay(loaded, build, cluster, args.workers or 2, logger, log_level(args))
    else:
        settings = LogSettings(log_level(args), args.log_file)
        replay = build_jobs_replay(loaded, sources, args.out, args.jobs, settings, logger, time_range, lambda text: _note(_stderr(), text))
    if args.quiet:
        result = anyio.run(replay.run)
    else:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        from bot.candles.reader import count_candles

        err = _stderr()
        # A range plays an unknown part of each file: counting it would mean reading them twice.
        total = None if time_range is not None else sum(count_candles(s.path) for s in sources)
        columns = (TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
        bar = Progress(*columns, console=err, transient=False)
        task = bar.add_task("replay", total=total)

        def show(done: int) -> None:
            # Shown from the first report on, so a run refused before it starts prints only its error.
            if not bar.live.is_started:
                bar.start()
            bar.update(task, completed=done)

        try:
            result = anyio.run(replay.run, show)
            if total is None:
                bar.update(task, total=result.candles, completed=result.candles)
        finally:
            if bar.live.is_started:
                bar.stop()
        # Outside a terminal rich would wrap the table at 80 columns; logs and CI are wider.
        Console(width=None if sys.stdout.isatty() else 140).print(_summary(result))
    if args.report:
        _write_report(args.out, None, args.quiet)
    failed = [sid for sid, r in result.report["strategies"].items() if r["state"] == "failed"]
    if not failed:
        return EXIT_OK
    from rich.markup import escape

    err = _stderr()
    for sid in failed:
        err.print(
            f"[bold yellow]warning[/]: strategy {escape(sid)} failed: {escape(str(result.report['strategies'][sid]['last_error']))}",
            highlight=False,
            soft_wrap=True,
        )
    return EXIT_STRATEGY_FAILED


def _write_report(run_dir: Path, out: Path | None, quiet: bool) -> None:
    from rich.console import Console
    from rich.markup import escape

    from bot.report.build import write_report

    path = write_report(run_dir, out)
    if not quiet:
        Console().print(f"report: {escape(str(path))}", highlight=False, soft_wrap=True)


def _report(args: argparse.Namespace) -> int:
    _write_report(args.run_dir, args.out, quiet=False)
    return EXIT_OK


def _validate(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    from bot.clock import WallClock
    from bot.replay.sources import scan_source

    console = Console()
    err = _stderr()
    loaded, sources, problems = _gather(args.config, [], daemon=True)
    if loaded is not None:
        # `bot run` starts the others and this one fails alone at load; validate says so now.
        problems += loaded.unbuildable
    scans = []
    now = WallClock().now_ms()
    for source in sources:
        try:
            scans.append((source, scan_source(source.bounded(now))))
        except CandleFileError as exc:
            problems.append(str(exc))
    if problems or loaded is None:
        _print_problems(err, problems)
        return EXIT_INVALID
    for source, scan in scans:
        console.print(
            f"{escape(source.symbol)}: {escape(str(source.path))}: {scan.candles:,} candles of {source.timeframe}, {scan.gaps:,} gaps",
            highlight=False,
            soft_wrap=True,
        )
        _warn_jumps(err, source, scan)
    if (unusable := _cluster_unusable(loaded)) is not None:
        _error(err, f"{args.config}: {unusable}")
        return EXIT_INVALID
    if (use := _cluster_use(args.config, loaded)) is not None:
        _note(err, use)
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
    from rich.markup import escape

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
    import anyio

    from bot.kernel.daemon import Daemon
    from bot.log import BotLogger

    prepared = _prepare(args.config, args.candles, _stderr(), daemon=True)
    if prepared is None:
        return EXIT_INVALID
    loaded, sources = prepared
    if args.force and not args.fresh:
        _error(_stderr(), "--force only goes with --fresh (it lets --fresh start over in mode live with positions or orders open)")
        return EXIT_INVALID
    cluster_problem = _cluster_unusable(loaded, os.environ) or _http_unusable(loaded, os.environ)
    if cluster_problem is not None:
        # Before the journal is touched: a section the daemon cannot use is the operator's to fix.
        _error(_stderr(), f"{args.config}: {cluster_problem}")
        return EXIT_INVALID
    logger = BotLogger.to_stderr(level=log_level(args, loaded.bot.daemon.log_level), log_file=args.log_file)
    if (use := _cluster_use(args.config, loaded)) is not None:
        logger.logger.warning("%s", use)
    lock: JournalLock | None = None
    try:
        carried: dict[str, tuple[int, int]] = {}
        if args.fresh:
            lock, carried = _fresh(loaded, args.force, logger.logger)
        return anyio.run(Daemon(loaded, sources, logger, pacer, journal_lock=lock, carried_numbering=carried).run)
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
    finally:
        if lock is not None:
            lock.release()  # the daemon's journal released it already, unless it never opened
        logger.close()


def _fresh(loaded: LoadedConfig, force: bool, log: logging.Logger) -> tuple[JournalLock, dict[str, tuple[int, int]]]:
    """`run --fresh`: move the journal aside under its lock, and keep the lock for the daemon's new journal.

    What would stop the daemon right after (another daemon on the socket, no control token) is
    checked first, under the lock, and so, in mode live without `force`, is the journal's open
    business on the exchange: a refusal leaves the journal in place for a plain `bot run`. The
    order and position numbers the old journal used are returned, for the new one to go on from:
    its orders' client ids may be on the exchange, and must not be reused.
    """
    from bot.clock import WallClock
    from bot.control.server import claim_socket_path, control_token
    from bot.fmt import format_path
    from bot.journal.aside import move_aside, numbering
    from bot.journal.schema import JournalError
    from bot.kernel.daemon import socket_path_of

    journal = loaded.base_dir / loaded.bot.journal.path
    # What the old journal leaves open on the exchange (mode live with `force`): said once it is moved.
    left: list[str] = []

    def before_moving(real: Path) -> None:
        claim_socket_path(socket_path_of(loaded))
        control_token(loaded.bot.control)
        if loaded.bot.mode == "live":
            left.extend(_open_on_the_exchange(journal, real, force))

    done = move_aside(journal, WallClock().now_ms(), before_moving)
    if done.checkpoint_problem is not None:
        log.warning("journal %s: WAL not checkpointed (%s): it was moved aside with the journal", format_path(journal), done.checkpoint_problem)
    if done.moved:
        log.info("--fresh: moved %s aside to %s; starting a new journal", format_path(journal), ", ".join(format_path(new) for _, new in done.moved))
    else:
        log.info("--fresh: no journal at %s yet; starting a new one", format_path(journal))
    for what in left:
        log.warning("--fresh --force: %s", what)
    carried: dict[str, tuple[int, int]] = {}
    # In every mode: a paper run between two live ones must not bring the live client ids back to 1.
    if done.moved:
        old = done.moved[0][1]
        try:
            carried = numbering(old)
        except JournalError as exc:
            log.warning("--fresh: %s: client ids start again at <strategy id>-1 and may name orders of the old journal on the exchange", exc)
    return done.lock, carried


def _open_on_the_exchange(journal: Path, real: Path, force: bool) -> list[str]:
    """What the live journal still has on the exchange, as a warning to log (none: []); without `force`, a BotError instead.

    A new journal knows nothing of those positions and orders: their exchange-side stop orders
    would be left behind, unmanaged.
    """
    from bot.fmt import format_path
    from bot.journal.aside import open_work
    from bot.journal.schema import JournalError

    shown = format_path(journal)
    try:
        work = open_work(real)
    except JournalError as exc:
        if force:
            return [f"cannot tell what the journal moved aside holds ({exc}): whatever it had open stays open on the exchange, unknown to the new journal"]
        raise BotError(f"--fresh in mode live: cannot tell whether {shown} holds open positions or orders ({exc}); --force moves it aside all the same") from None
    if not work.positions and not work.orders:
        return []
    held = f"{work.positions} open position{'' if work.positions == 1 else 's'} and {work.orders} pending order{'' if work.orders == 1 else 's'}"
    if force:
        return [f"the journal moved aside holds {held}: they stay open on the exchange, with their stop orders, unknown to the new journal; close them there"]
    raise BotError(
        f"--fresh in mode live: {shown} holds {held} on the exchange; a new journal would leave them and their stop orders "
        "unmanaged: close them first (bot ctl), or add --force to start over all the same"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "replay":
            return _replay(args)
        if args.command == "run":
            return _run(args)
        if args.command == "version":
            print(_version_line())
            return EXIT_OK
        if args.command == "ctl":
            from bot.control.ctl_cli import run_ctl

            return run_ctl(args)
        if args.command == "record":
            from bot.live.record_cli import run_record
            from bot.strategy.config_load import load_config

            return run_record(args, lambda path: load_config(path).bot.exchange)
        if args.command == "report":
            return _report(args)
        if args.command == "worker":
            missing = needs_cluster_extra()
            if missing is not None:
                _error(_stderr(), missing)
                return EXIT_INVALID
            from bot.cluster.commands import run_worker

            return run_worker(args)
        if args.command == "sweep":
            from rich.console import Console

            from bot.sweep.command import run_sweep

            return run_sweep(args, _prepare, _stderr(), Console(width=None if sys.stdout.isatty() else 160))
        if args.command == "strategies":
            from rich.console import Console

            from bot.strategy.catalog_cli import run_strategies

            return run_strategies(args, Console(), _stderr())
        return _validate(args)
    except BotError as exc:
        _error(_stderr(), str(exc))
        return EXIT_INVALID


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
