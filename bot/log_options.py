"""The logging options of `bot run`, `bot replay` and `bot record`: -v/-q, --log-level and --log-file."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Final

LEVELS: Final[tuple[str, ...]] = ("DEBUG", "INFO", "WARNING", "ERROR")


def add_log_options(parser: argparse.ArgumentParser, quiet: bool = True) -> None:
    """Add -v/--verbose, -q/--quiet (unless the command has its own --quiet), --log-level and --log-file."""
    group = parser.add_argument_group("logging")
    levels = group.add_mutually_exclusive_group()
    levels.add_argument("-v", "--verbose", action="store_true", help="log DEBUG lines too")
    if quiet:
        levels.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    group.add_argument(
        "--log-level",
        type=str.upper,
        choices=LEVELS,
        metavar="LEVEL",
        help=f"log from this level up: {', '.join(LEVELS)} (overrides -v/-q and the config's daemon.log_level)",
    )
    group.add_argument("--log-file", type=Path, metavar="PATH", help="append the log to PATH as well as stderr (created 0600 if missing)")


def log_level(args: argparse.Namespace, default: str = "INFO") -> int:
    """The level the options ask for: --log-level, else -v (DEBUG) or -q (WARNING), else `default`."""
    name = args.log_level or ("DEBUG" if args.verbose else "WARNING" if getattr(args, "quiet", False) else default)
    level: int = getattr(logging, name)
    return level
