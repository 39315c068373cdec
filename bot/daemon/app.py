"""The daemon: one task group running the feed, a task per strategy and the control server."""
from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import anyio

from bot.config.loader import LoadedConfig
from bot.control.commands import DaemonState
from bot.control.server import ControlServer, claim_socket_path
from bot.daemon.delivery import InboxDelivery
from bot.daemon.event_lines import LOGGED_EVENTS, EventLines
from bot.daemon import heap
from bot.daemon.feed import RecordedFeed
from bot.errors import BotError
from bot.log import BotLogger
from bot.replay.sources import CandleSource
from bot.services import BotServices
from bot.strategy.factory import OrchestratorFactory
from bot.strategy.manager import StrategyManager


class Daemon:
    """`bot run`: trades every enabled strategy on a clock-driven feed until told to stop.

    Start: claim the control socket (a second daemon refuses here), start services, load the
    strategies, backfill the feed, activate the strategies (they warm up from the backfill),
    then play the feed. Stop (SIGTERM, SIGINT or `shutdown`): stop the feed, let every
    strategy finish its queued candles, stop services, close the socket and remove its file.
    """

    def __init__(self, loaded: LoadedConfig, sources: list[CandleSource], logger: BotLogger) -> None:
        self.loaded = loaded
        self.sources = sources
        self.logger = logger
        self._stop = anyio.Event()
        self.socket_path = (loaded.base_dir / loaded.bot.control.socket).resolve()

    def request_stop(self) -> None:
        """Begin a graceful stop."""
        self._stop.set()

    async def run(self) -> int:
        """Run until stopped; return the process exit code."""
        config = self.loaded.bot
        # Before anything else, so a second daemon on the same socket refuses at once and cleanly.
        claim_socket_path(self.socket_path)
        services = BotServices.for_replay(config, self.logger)
        services.bus.subscribe(EventLines(self.logger.logger), types=LOGGED_EVENTS)
        async with anyio.create_task_group() as tg:
            manager: StrategyManager | None = None

            def on_error(owner: object, handler: object, exc: Exception) -> None:
                assert manager is not None
                manager.on_handler_error(owner, handler, exc)  # type: ignore[arg-type]

            delivery = InboxDelivery(tg, config.daemon.inbox_size, on_error)
            manager = StrategyManager(services, OrchestratorFactory(services), delivery)
            for source in self.sources:
                services.hub.add_feed(source.symbol, source.timeframe)
            def announce_feed(feed_state: str, info: dict[str, Any]) -> None:
                services.bus.publish("feed_state", {"state": feed_state, **info})

            feed = RecordedFeed(self.sources, services.hub, config.feed.speed, config.feed.loop, config.feed.backfill, announce_feed)
            state = DaemonState(self.loaded, services, manager, feed, self.request_stop)
            server = ControlServer(state, config.control, self.socket_path, self.logger.logger)
            async with server.serving():
                self.logger.logger.info("control socket %s", self.socket_path)
                await services.start()
                try:
                    for spec in self.loaded.enabled_strategies():
                        manager.load(spec)
                    await tg.start(feed.run)
                    for spec in self.loaded.enabled_strategies():
                        try:
                            manager.activate(spec.id)
                        except BotError as exc:  # one strategy's failure stays its own
                            self.logger.logger.error("%s", exc)
                    heap.settle()
                    tg.start_soon(self._watch_signals)
                    await self._stop.wait()
                    self.logger.logger.info("stopping: feed, then queued candles")
                    feed.stop()
                    with anyio.move_on_after(10):
                        await delivery.drain()
                    delivery.close_all()
                finally:
                    with anyio.CancelScope(shield=True):
                        await services.stop()
            tg.cancel_scope.cancel()
        self.logger.logger.info("stopped")
        return 0

    async def _watch_signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                self.logger.logger.info("received %s", signal.Signals(signum).name)
                self.request_stop()
                return


def socket_path_of(loaded: LoadedConfig) -> Path:
    """Where the daemon of this config listens."""
    return (loaded.base_dir / loaded.bot.control.socket).resolve()
