"""The `bot strategies` arguments, apart from the catalog so that `bot --help` imports none of it."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_strategies_parser(commands: Any) -> None:
    """Register `strategies` on the top-level subcommands."""
    parser = commands.add_parser("strategies", help="list the strategies found by discovery, or show one's parameters")
    parser.add_argument("--config", default="config.json", type=Path, help="configuration naming extra strategy folders (default: config.json)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="strategies_command", metavar="SUBCOMMAND")
    info = sub.add_parser("info", help="a strategy's description, default parameters and parameter schema")
    info.add_argument("name", metavar="ID", help="strategy name (or module, or module:Class)")
    info.add_argument("--config", default=argparse.SUPPRESS, type=Path, help="as above")
    info.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="as above")
