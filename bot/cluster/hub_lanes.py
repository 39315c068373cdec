"""The `bot run` hub's remote lanes, built from its config: a connection of their own to the cluster's server, the hub's minds, the lanes."""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from anyio.abc import TaskGroup

from bot.cluster.connection import ClusterConnection
from bot.cluster.hub_minds import HubMinds
from bot.cluster.lanes import LaneJournal, RemoteLanes
from bot.config.cluster import ClusterConfig
from bot.daemon.inbox import CandleWork
from bot.daemon.turn_progress import TurnProgress
from bot.journal.turns import Turns
from bot.services import BotServices
from bot.strategy.config_load import LoadedConfig
from bot.strategy.delivery import CandleOwner, HandlerErrorHook


def hub_lanes(
    cluster: ClusterConfig,
    loaded: LoadedConfig,
    services: BotServices,
    task_group: TaskGroup,
    on_error: HandlerErrorHook,
    journal: LaneJournal,
    turns: Turns,
    logger: logging.Logger,
    environ: Mapping[str, str],
    *,
    on_drained: Callable[[], None],
    queued: CandleWork,
    progress: TurnProgress,
    after_turn: Callable[[CandleOwner], None] | None = None,
) -> RemoteLanes:
    """The daemon's delivery when its strategies decide on workers; the hub's minds start connecting in `task_group` (in the background)."""
    connection = ClusterConnection(cluster, loaded.base_dir, logger, label=f"bot-run-{cluster.name}-minds", environ=environ)
    minds = HubMinds(connection, cluster.name, loaded.catalog, services.hub.history, cluster.lease_ttl_s, logger, sync_timeout_s=cluster.decision_timeout_s)
    task_group.start_soon(minds.run, name="cluster:minds")
    return RemoteLanes(
        task_group, loaded.bot.daemon.inbox_size, on_error, minds, journal, logger, turns.turn, cluster.decision_timeout_s,
        on_drained=on_drained, queued=queued, progress=progress, after_turn=after_turn,
    )
