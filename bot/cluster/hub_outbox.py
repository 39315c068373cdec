"""The `bot run` hub's outbox, built from its config: its connection to the cluster's server, stream names and identities."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from bot.cluster.connection import ClusterConnection
from bot.cluster.outbox import Outbox
from bot.cluster.streams import StreamNames
from bot.config.models import BotConfig

# Where a recorded feed's candles come from, in market-data subjects and msg-ids (a live feed names its exchange).
RECORDED_EXCHANGE = "paper"


def market_of(config: BotConfig) -> str:
    """The exchange token of this daemon's candles: the exchange its live feed reads, else `paper`."""
    if config.feed.source == "ccxt" and config.exchange is not None:
        return config.exchange.id
    return RECORDED_EXCHANGE


def hub_outbox(config: BotConfig, base_dir: Path, logger: logging.Logger, environ: Mapping[str, str], started_ns: int) -> Outbox:
    """The outbox of a daemon whose config has a cluster section; `started_ns` (its start, wall clock) names this run's events."""
    cluster = config.cluster
    if cluster is None:
        raise ValueError("the config has no cluster section")
    connection = ClusterConnection(cluster, base_dir, logger, label=f"bot-run-{cluster.name}", environ=environ)
    return Outbox(connection, StreamNames(cluster.name), market_of(config), str(started_ns // 1_000_000), config.replay.history_size, logger)
