"""`bot record`: record an exchange's candles to CSV files in the format replay reads (its arguments: bot.live.record_args)."""
from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskStatus

from bot.config.exchange import ExchangeConfig
from bot.errors import BotError, ConfigError
from bot.log import BotLogger
from bot.log_options import log_level

EXIT_OK = 0
EXIT_INVALID = 2


def parse_time(text: str, option: str) -> int:
    """UTC epoch ms of an ISO 8601 time (a time without zone is UTC); ValueError naming the option."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))  # noqa: FURB162  also takes a date with Z (2024-01-01Z), which fromisoformat refuses
    except ValueError:
        raise ValueError(f"{option}: not an ISO 8601 time: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


# A config file's exchange section (None when it has none), the whole config validated: the
# caller's, since loading a config with its strategies belongs to a layer above this one.
ExchangeSection = Callable[[Path], ExchangeConfig | None]


def exchange_config(args: argparse.Namespace, read_section: ExchangeSection) -> ExchangeConfig:
    """The exchange settings: the config's exchange section (if any) with --exchange and --timeframe applied."""
    base: dict[str, Any] = {}
    if args.config is not None:
        section = read_section(args.config)
        if section is None and args.exchange is None:
            raise ValueError(f"{args.config}: no exchange section; give --exchange")
        if section is not None:
            if args.exchange is not None and args.exchange != section.id:
                raise ValueError(f"--exchange {args.exchange} differs from {args.config}'s exchange.id {section.id}")
            base = section.model_dump()
    elif args.exchange is None:
        raise ValueError("give --exchange ID (or --config with an exchange section)")
    if args.exchange is not None:
        base["id"] = args.exchange
    if args.timeframe is not None:
        base["feed"] = {**base.get("feed", {}), "timeframe": args.timeframe}
    return ExchangeConfig.model_validate(base)


def run_record(args: argparse.Namespace, read_section: ExchangeSection) -> int:
    """Run `bot record` (the config's exchange section read by `read_section`); return the exit code."""
    try:
        logger = BotLogger.to_stderr(level=log_level(args), name="bot.record", log_file=args.log_file).logger
    except BotError as exc:  # the log file cannot be opened
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    try:
        config = exchange_config(args, read_section)
        symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
        if not symbols:
            raise ValueError("--symbols: no symbol given")
        since = parse_time(args.since, "--since") if args.since else None
        until = parse_time(args.until, "--until") if args.until else None
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_INVALID
    except ValueError as exc:  # pydantic's ValidationError is one: it names the field
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    from bot.live.recorder import Recorder  # here: ccxt is slow to import, other commands need none

    recorder = Recorder(config, symbols, args.out, logger, os.environ, since, until)

    async def on_signals(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            task_status.started()
            stopping = False
            # Kept until the end: a second signal during the stop must not fall back to the
            # default handler (a KeyboardInterrupt traceback, the exchange left open).
            async for signum in signals:
                logger.info("received %s%s", signal.Signals(signum).name, " (already stopping)" if stopping else "; stopping: what was recorded is on disk")
                stopping = True
                recorder.stop()

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            await tg.start(on_signals)
            result = await recorder.run()
            for symbol, path in result.files.items():
                logger.info("%s: %d candles written to %s", symbol, result.rows[symbol], path)
            tg.cancel_scope.cancel()

    try:
        anyio.run(main)
    except BaseExceptionGroup as group:
        # An operator's error (unknown symbol, missing key variable) is one line, not a traceback.
        errors, others = group.split(BotError)
        if others is not None or errors is None:
            raise
        for error in errors.exceptions:
            print(f"error: {error}", file=sys.stderr)
        return EXIT_INVALID
    except BotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    return EXIT_OK
