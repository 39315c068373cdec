"""`bot replay`'s bot: the kernel's services in mode replay, handed to the replay run."""
from __future__ import annotations

from pathlib import Path

from bot.candles.sources import CandleSource
from bot.clock import Clock
from bot.kernel.assembly import RouterFactory, Seams, build_bot
from bot.log import BotLogger
from bot.replay.runner import Replay
from bot.replay.timerange import TimeRange
from bot.strategy.config_load import LoadedConfig


def build_replay(
    loaded: LoadedConfig,
    sources: list[CandleSource],
    out_dir: Path,
    logger: BotLogger | None = None,
    wall_clock: Clock | None = None,
    time_range: TimeRange | None = None,
    router: RouterFactory | None = None,
) -> Replay:
    """A data-driven replay of `sources` into `out_dir`: candle clock, paper exchange, direct delivery, no journal.

    `wall_clock` only bounds the latest candle time a source accepts by default (now + one timeframe).
    `router`: what hands each stream's candle to the strategies (None: in process; bot.cluster.lockstep).
    """
    bot = build_bot(loaded.bot, "replay", Seams(router=router), logger=logger, catalog=loaded.catalog)
    return Replay(bot.services, bot.manager, loaded, sources, out_dir, wall_clock, time_range)
