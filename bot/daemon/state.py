"""What the daemon's operations act on: the running bot's services, manager, feed, journal and config."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.daemon.chart_series import ChartSeries
from bot.daemon.equity_curves import EquityCurves
from bot.daemon.inbox import CandleWork
from bot.daemon.live_feed import DaemonFeed
from bot.daemon.trade_counts import TradeCounts
from bot.journal import Journal
from bot.journal.reader import JournalReader
from bot.services import BotServices
from bot.strategy.config_load import LoadedConfig
from bot.strategy.manager import StrategyManager


def _no_problems() -> list[str]:
    return []


@dataclass
class DaemonState:
    """The running daemon as its operations see it: services, manager, feed, config, and what was added at runtime."""

    loaded: LoadedConfig
    services: BotServices
    manager: StrategyManager
    feed: DaemonFeed
    request_stop: Callable[[], None]
    journal: Journal | None = None
    # What keeps the daemon from starting, in words (the exchange not answering): health degraded meanwhile.
    start_problems: Callable[[], list[str]] = field(default=_no_problems)
    started_monotonic: float = field(default_factory=time.monotonic)
    # With a cluster section: the outbox's state for status (its health, backlog and drops); None without.
    cluster_status: Callable[[], dict[str, Any]] | None = None
    strategy_files: dict[str, Path] = field(default_factory=dict)
    # Symbols added at runtime: {"file", "timeframe"} each, as journalled.
    added_symbols: dict[str, dict[str, str]] = field(default_factory=dict)

    # Closed trades and daily equity, read beside the journal's writer (None: the history commands answer empty).
    history: JournalReader | None = None
    # Each strategy's closed trades, all and today's (None: counted as none).
    trade_counts: TradeCounts | None = None
    # Each strategy's equity over time, and its charts (None: those commands refuse).
    equity_curves: EquityCurves | None = None
    charts: ChartSeries | None = None
    # The strategies' candles queued and in hand: long reads pause while there are any (None: they only yield).
    candle_work: CandleWork | None = None

    def __post_init__(self) -> None:
        self.strategy_files.update(self.loaded.strategy_files)
