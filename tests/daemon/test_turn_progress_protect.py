"""After a restart, a failed strategy's protecting route drops the candles it had handled: its code does not run on
them (it could raise again, and a failure under the protect handler would leave its position without its stop).

Found by a review: the first version handed them to the strategy as history on every route."""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import anyio

from bot.candles.reader import read_candles
from bot.config.models import BotConfig
from bot.daemon.delivery import InboxDelivery
from bot.daemon.startup import JournalRecorder
from bot.daemon.turn_progress import TURN_PROGRESS, TurnProgress
from bot.events import Event, PositionClosed, StrategyFault
from bot.journal import Journal, JournalError
from bot.journal.turns import Turns
from bot.kernel import Seams, build_services
from bot.log import BotLogger
from bot.ohlcv import Candle
from bot.strategy.factory import OrchestratorFactory
from bot.strategy.manager import StrategyManager
from bot.trading.actions import OpenPosition
from tests.support import BTC_1M, strategy

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


def _first_candles(n: int) -> list[Candle]:
    out: list[Candle] = []
    for c in read_candles(BTC_1M):
        out.append(c)
        if len(out) == n:
            break
    return out


def test_a_strategy_failing_on_a_replayed_candle_does_not_fill_its_entry_on_the_new_ones(tmp_path: Path) -> None:
    """Found by review: the new candles reached its positions before it was failed, filling its resting entry."""
    candles = _first_candles(10)
    path = tmp_path / "journal.sqlite"
    journal = Journal(path)
    logger = BotLogger.to_stderr(level=60, name="bot.tests.progress")
    # "Before the restart" it had handled candles[0..2].
    journal.set_meta(TURN_PROGRESS + "s", f'[["BTC/USD","1m",{candles[2].ts}]]')
    progress = TurnProgress(journal, logging.getLogger("bot.tests.progress"))

    async def main() -> tuple[str, int, int]:
        turns = Turns(journal, asyncio.get_running_loop().call_soon_threadsafe)
        seams = Seams(journal=lambda risk: JournalRecorder(journal, risk, logger.logger), turns=turns, isolate_subscribers=False)
        services = build_services(BotConfig(), logger, seams)
        services.hub.add_feed("BTC/USD", "1m")
        async with anyio.create_task_group() as tg:
            manager = StrategyManager(
                services,
                OrchestratorFactory(services),
                delivery_for=lambda on_error: InboxDelivery(tg, 1, on_error, turn=turns.turn, progress=progress),
            )
            delivery = manager.delivery
            assert isinstance(delivery, InboxDelivery)
            orch = manager.load(strategy(id="s", exit_threshold=None, analyzers=[{"type": "ema_trend", "params": {"period": 5}}]))
            manager.activate("s")
            services.hub.ingest("BTC/USD", candles[0])  # history to it (handled before the restart)
            await delivery.drain()
            await turns.idle()
            orch.positions.mark_to("BTC/USD", candles[0].close, candles[0].ts + 60_000)  # as a restore marks it
            # Its resting limit entry (restored from the journal, say), reached by candles[2].
            orch.actions.put(OpenPosition("BTC/USD", "long", 0.1, "dip", limit_price=min(c.low for c in candles[3:5])))
            orch.actions.drain()
            assert len(orch.positions.pending_orders()) == 1

            def broken_history(symbol: str, timeframe: str, candle: Candle, ts: int) -> None:
                raise RuntimeError("strategy bug in on_history")

            orch.on_history = broken_history  # type: ignore[method-assign]
            # Inbox of one: candles[1..4] coalesce into one item; 1 and 2 were handled before the restart, 3 and 4 are new.
            for c in candles[1:5]:
                services.hub.ingest("BTC/USD", c)
            await delivery.drain()
            await turns.idle()
            delivery.close_all()
        return orch.state, orch.positions.open_count(), len(orch.positions.pending_orders())

    try:
        state, opened, pending = anyio.run(main)
    finally:
        journal.close()
    assert state == "failed"
    # It failed on candles[1]: a failed strategy takes no entry (as restore_state and _fail ensure).
    assert opened == 0, f"a position was opened for strategy that failed on an earlier candle (pending left {pending})"


def test_a_journal_write_failing_while_a_strategy_fails_on_a_replayed_candle_is_handled_in_its_turn(tmp_path: Path) -> None:
    """Found by review: that failure was handled outside any turn and outside the lane's error handling, and one failed
    write (a disk full for a moment) ended the daemon's task group."""
    candles = _first_candles(10)
    journal = Journal(tmp_path / "journal.sqlite")
    logger = BotLogger.to_stderr(level=60, name="bot.tests.progress")
    journal.set_meta(TURN_PROGRESS + "s", f'[["BTC/USD","1m",{candles[2].ts}]]')
    progress = TurnProgress(journal, logging.getLogger("bot.tests.progress"))
    crashed: list[BaseException] = []
    states: list[str] = []
    caught: list[int] = []

    async def main() -> None:
        turns = Turns(journal, asyncio.get_running_loop().call_soon_threadsafe)
        seams = Seams(journal=lambda risk: JournalRecorder(journal, risk, logger.logger), turns=turns, isolate_subscribers=False)
        services = build_services(BotConfig(), logger, seams)
        services.hub.add_feed("BTC/USD", "1m")
        async with anyio.create_task_group() as tg:
            manager = StrategyManager(
                services,
                OrchestratorFactory(services),
                delivery_for=lambda on_error: InboxDelivery(tg, 1, on_error, turn=turns.turn, progress=progress),
            )
            delivery = manager.delivery
            assert isinstance(delivery, InboxDelivery)
            orch = manager.load(strategy(id="s", exit_threshold=None, analyzers=[{"type": "ema_trend", "params": {"period": 5}}]))
            manager.activate("s")
            services.hub.ingest("BTC/USD", candles[0])
            await delivery.drain()
            await turns.idle()
            record = services.bus.before_delivery
            assert record is not None
            failed_once = False

            def flaky(event: Event) -> None:  # one transient write failure (disk full for a moment)
                nonlocal failed_once
                if isinstance(event, StrategyFault) and not failed_once:
                    failed_once = True
                    raise JournalError("disk I/O error")
                record(event)

            services.bus.before_delivery = flaky

            def broken_history(symbol: str, timeframe: str, candle: Candle, ts: int) -> None:
                raise RuntimeError("strategy bug in on_history")

            orch.on_history = broken_history  # type: ignore[method-assign]
            catch_up = orch.catch_up

            def seen_by_positions(symbol: str, timeframe: str, candle: Candle, ts: int) -> None:
                caught.append(candle.ts)
                catch_up(symbol, timeframe, candle, ts)

            orch.catch_up = seen_by_positions  # type: ignore[method-assign]
            for c in candles[1:5]:
                services.hub.ingest("BTC/USD", c)
            await delivery.drain()
            await turns.idle()
            delivery.close_all()
            states.append(orch.state)

    try:
        anyio.run(main)
    except BaseException as exc:  # noqa: BLE001
        crashed.append(exc)
    finally:
        journal.close()
    # As for any turn: the write failure fails the turn, TurnNotJournalled goes to the manager, the lane goes on.
    assert not crashed, repr(crashed)
    assert states == ["failed"]
    # The new candles (after the two it had handled) reached its positions although the failure's report was lost.
    assert caught == [candles[3].ts, candles[4].ts]
