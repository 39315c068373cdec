"""The command line of the cluster: `bot worker`, and `bot replay`'s --cluster and --workers (apart, so `bot --help` imports no NATS)."""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import Any

from bot.log_options import add_log_options


def worker_count(text: str) -> int:
    """--workers: a whole number of worker processes, at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of workers (a whole number, at least 1)")
    return int(text)


def add_replay_cluster_options(replay: argparse.ArgumentParser) -> None:
    """`bot replay --cluster URL --workers N`."""
    replay.add_argument(
        "--cluster",
        metavar="URL",
        help="replay through the NATS server at URL (nats://host:port): the strategies decide in worker processes this command starts, "
        "in lockstep, with the same outputs as in one process (needs the cluster extra: bash scripts/setup.sh --cluster)",
    )
    replay.add_argument("--workers", type=worker_count, metavar="N", help="with --cluster: how many worker processes (default: 2)")


def add_worker_parser(commands: Any) -> None:
    """Add the `worker` subcommand to the `bot` parser's subcommands."""
    worker = commands.add_parser("worker", help="run strategies' decisions for a hub over NATS (bot replay --cluster starts its own)")
    worker.add_argument("--config", default="config.json", type=Path, help="base configuration, the hub's (default: config.json)")
    worker.add_argument("--name", required=True, help="this worker's name in the cluster (letters, digits, '_', '-')")
    worker.add_argument("--cluster", metavar="URL", help="the NATS server (default: the config's cluster.url)")
    worker.add_argument(
        "--run",
        metavar="ID",
        help="the replay run to serve (bot replay --cluster names it when it starts the worker); without it, serve the daemon hub of the config's cluster "
        "(cluster.name) until SIGTERM",
    )
    # Set by the hub that starts the worker: it exits when that process is no longer its parent, even one gone before it started.
    worker.add_argument("--hub-pid", type=int, help=argparse.SUPPRESS)
    add_log_options(worker)


def needs_cluster_extra() -> str | None:
    """Why the cluster cannot run here (its extra not installed), or None; imports nothing of it."""
    if importlib.util.find_spec("nats") is None:
        return "the cluster needs the cluster extra (nats-py): run bash scripts/setup.sh --cluster"
    return None
