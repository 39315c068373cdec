"""After a restart, a failed strategy's protecting route drops the candles it had handled: its code does not run on
them (it could raise again, and a failure under the protect handler would leave its position without its stop).

Found by a review: the first version handed them to the strategy as history on every route."""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import anyio

from bot.config.models import BotConfig
from bot.daemon.delivery import InboxDelivery
from bot.daemon.turn_progress import TURN_PROGRESS, TurnProgress
from bot.events import PositionClosed, StrategyFault
from bot.journal import Journal
from bot.journal.turns import Turns
from bot.kernel import Seams, build_services
from bot.log import BotLogger
from bot.ohlcv import Candle
from bot.strategy.factory import OrchestratorFactory
from bot.strategy.manager import StrategyManager
from tests.support import strategy

M = 60_000
T0 = 1_640_995_200_000


def _scenario(tmp_path: Path, history_raises: bool) -> tuple[list[str], int, bool]:
    services = build_services(BotConfig(), BotLogger.to_stderr(level=60, name="bot.tests.rv"), Seams(isolate_subscribers=False))
    services.hub.add_feed("BTC/USD", "1m")
    events: list[str] = []
    services.bus.subscribe(lambda e: events.append(f"{e.type}:{getattr(e, 'note', '')}"), types=[PositionClosed, StrategyFault])
    history_calls = 0

    with Journal(tmp_path / "journal.sqlite") as journal:
        # What the strategy's last journalled turn before the crash recorded: it handled the candle at T0+1m.
        journal.set_meta(TURN_PROGRESS + "s", f'[["BTC/USD","1m",{T0 + M}]]')

        async def main() -> bool:
            nonlocal history_calls
            turns = Turns(journal, asyncio.get_running_loop().call_soon_threadsafe)
            progress = TurnProgress(journal, logging.getLogger("bot.tests.rv"))
            async with anyio.create_task_group() as tg:
                manager = StrategyManager(
                    services,
                    OrchestratorFactory(services),
                    delivery_for=lambda on_error: InboxDelivery(tg, 100, on_error, turn=turns.turn, progress=progress),
                )
                delivery = manager.delivery
                assert isinstance(delivery, InboxDelivery)
                orch = manager.load(strategy(id="s", exit_threshold=None, exits={"stop_loss_pct": 5}))
                # Its restored book: one long at 100, stop at 95 (opened here directly).
                orch.positions.submit_open("BTC/USD", "long", 1.0, "test", T0, 100.0)
                orch.positions.on_bar("BTC/USD", Candle(T0, 100, 100, 100, 100, 1.0), T0 + M)
                assert orch.positions.positions
                # Restart: journalled state "failed" -> protect route.
                manager.restore_state("s", "failed", None, "RuntimeError: strategy bug")

                def on_history(symbol: str, timeframe: str, candle: Candle) -> None:
                    nonlocal history_calls
                    history_calls += 1
                    if history_raises:
                        raise RuntimeError("strategy bug")  # the same bug that failed it

                orch.strategy.on_history = on_history  # type: ignore[method-assign]
                # The feed plays again the candle the strategy had handled (the crash window) ...
                services.hub.ingest("BTC/USD", Candle(T0 + M, 100, 100.5, 99.5, 100, 1.0))
                await delivery.drain()
                # ... then a candle through the stop.
                services.hub.ingest("BTC/USD", Candle(T0 + 2 * M, 90, 91, 80, 85, 1.0))
                await delivery.drain()
                still_open = bool(orch.positions.positions)
                delivery.close_all()
            return still_open

        still_open = anyio.run(main)
    return events, history_calls, still_open


def test_a_failed_strategys_code_is_not_run_for_a_replayed_candle(tmp_path: Path) -> None:
    _, history_calls, _ = _scenario(tmp_path, history_raises=False)
    assert history_calls == 0, "the failed strategy's on_history ran on the replayed candle"


def test_a_failed_strategy_keeps_its_stops_after_a_replayed_candle(tmp_path: Path) -> None:
    events, _, still_open = _scenario(tmp_path, history_raises=True)
    assert not still_open and any(e.startswith("position_closed") for e in events), events
