"""What `bot worker` and `bot replay --cluster` do before and after the cluster's own code: the settings checked, errors as one line."""
from __future__ import annotations

import argparse
import asyncio
import os
import sys

from pydantic import ValidationError

from bot.cluster.subjects import check_token
from bot.config.cluster import ClusterConfig
from bot.errors import BotError

EXIT_OK = 0
EXIT_INVALID = 2


class ClusterArgumentError(BotError):
    """A cluster option on the command line that cannot be used: the message names it."""


def cluster_config(url: str | None, section: ClusterConfig | None, option: str = "--cluster") -> ClusterConfig:
    """The config's cluster section (or the defaults) with `url` from the command line in its place, checked as the file's would be."""
    if url is None:
        return section if section is not None else ClusterConfig()
    given = section.model_dump(exclude_unset=True) if section is not None else {}
    try:
        return ClusterConfig.model_validate({**given, "url": url})
    except ValidationError as exc:
        reasons = "; ".join(
            ".".join(map(str, e["loc"])) + ": " + str(e["msg"]).removeprefix("Value error, ") if e["loc"] else str(e["msg"]) for e in exc.errors()
        )
        raise ClusterArgumentError(f"{option} {url if '@' not in url else '(a url with credentials)'}: {reasons}") from None


def run_worker(args: argparse.Namespace) -> int:
    """Run `bot worker`: a replay's worker with --run, else a worker of the daemon hub of the config's cluster; return the exit code."""
    from bot.cluster.connection import ClusterConnection
    from bot.cluster.daemon_worker import HUB_NAME, DaemonWorker
    from bot.cluster.fingerprint import fingerprint
    from bot.cluster.worker import ReplayWorker, WorkerRefused
    from bot.log import BotLogger
    from bot.log_options import log_level
    from bot.strategy.config_load import load_config

    logger = BotLogger.to_stderr(level=log_level(args), name="bot.worker", log_file=args.log_file).logger
    try:
        name = check_token("--name", args.name)
        if args.run is None and name == HUB_NAME:
            raise ValueError(f"--name {HUB_NAME!r} is the hub's own name in the cluster: give this worker another")
        run = check_token("--run", args.run) if args.run is not None else None
        loaded = load_config(args.config)
        cluster = cluster_config(args.cluster, loaded.bot.cluster)
        cid = run if run is not None else check_token("cluster.name", cluster.name)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    connection = ClusterConnection(cluster, loaded.base_dir, logger, label=f"bot worker {name}", environ=os.environ)
    worker: ReplayWorker | DaemonWorker
    if run is None:
        worker = DaemonWorker(connection, cid, name, loaded.catalog, logger, cluster.lease_ttl_s, decide_timeout_s=cluster.decision_timeout_s)
    else:
        worker = ReplayWorker(connection, cid, name, loaded.catalog, fingerprint(loaded), logger, parent_pid=args.hub_pid if args.hub_pid is not None else os.getppid())
    try:
        asyncio.run(worker.run())
    except (WorkerRefused, BotError) as exc:
        print(f"error: worker {name}: {exc}", file=sys.stderr)
        return EXIT_INVALID
    return EXIT_OK
