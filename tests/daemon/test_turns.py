"""A strategy's turn on a candle in the daemon: one journal commit, its events delivered after it, in seq order."""
from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from anyio.abc import TaskGroup

from bot.config.models import BotConfig
from bot.daemon.delivery import InboxDelivery
from bot.daemon.recovery import restore_orchestrator
from bot.daemon.startup import JournalRecorder
from bot.events import Event, PositionClosed, StrategyFault, StrategyStateChanged
from bot.journal import Journal, JournalError
from bot.journal.checkpoint import CheckpointPolicy
from bot.journal.turns import Turns
from bot.kernel import Seams, build_services
from bot.log import BotLogger
from bot.ohlcv import Candle
from bot.services import BotServices
from bot.strategy.delivery import TurnNotJournalled
from bot.strategy.factory import OrchestratorFactory
from bot.strategy.manager import StrategyManager
from bot.trading.actions import ClosePercent, OpenPosition
from tests.journal.refusals import allow_inserts, refuse_inserts, writer_held
from tests.journal.wal import wal_commits
from tests.support import declarative, strategy

# No checkpoint while the test runs: the WAL keeps every commit frame, to be counted.
NO_CHECKPOINTS = CheckpointPolicy(interval_s=3600, busy_interval_s=3600, writer_frames=10**9, writer_takes_over_s=3600)

# Every seq a committed row of the journal records, whatever the event's table.
_COMMITTED_SEQS = """
    SELECT seq FROM strategy_events UNION SELECT seq FROM strategy_states UNION SELECT seq FROM fills
    UNION SELECT submitted_seq FROM orders UNION SELECT updated_seq FROM positions"""


def _committed(path: Path) -> set[int]:
    """The seqs whose rows another connection sees: committed ones only."""
    with closing(sqlite3.connect(path)) as db:
        return {seq for (seq,) in db.execute(_COMMITTED_SEQS)}


def _wired(journal: Journal, logger: BotLogger) -> tuple[Turns, BotServices]:
    """The daemon's wiring on a BTC/USD 1m feed: every event journalled first, each strategy candle one turn (call on the loop)."""
    turns = Turns(journal, asyncio.get_running_loop().call_soon_threadsafe)
    seams = Seams(journal=lambda risk: JournalRecorder(journal, risk, logger.logger), turns=turns, isolate_subscribers=False)
    services = build_services(BotConfig(), logger, seams)
    services.hub.add_feed("BTC/USD", "1m")
    return turns, services


def _inboxes(services: BotServices, tg: TaskGroup, turns: Turns) -> tuple[StrategyManager, InboxDelivery]:
    """A strategy manager delivering through the daemon's inboxes, each candle a strategy handles one turn."""
    manager = StrategyManager(services, OrchestratorFactory(services), delivery_for=lambda on_error: InboxDelivery(tg, 100, on_error, turn=turns.turn))
    delivery = manager.delivery
    assert isinstance(delivery, InboxDelivery)
    return manager, delivery


def test_a_turn_that_raises_mid_way_is_one_commit_delivered_after_it_in_seq_order_with_its_failure(tmp_path: Path, btc_candles: list[Candle]) -> None:
    """The fill booked before the strategy's code raised and the failure events are committed together, then delivered.

    Committed and delivered, not dropped: the fill happened (the position is held in memory and,
    live, on the exchange), so the journal must keep it, and the failure belongs with it.
    """
    path = tmp_path / "journal.sqlite"
    journal = Journal(path, checkpoints=NO_CHECKPOINTS)
    logger = BotLogger.to_stderr(level=60, name="bot.tests.turns")

    async def main() -> tuple[int, str]:
        turns, services = _wired(journal, logger)
        services.bus.subscribe(lambda event: heard.append((event, _committed(path))), strategy_id="s")
        async with anyio.create_task_group() as tg:
            manager, delivery = _inboxes(services, tg, turns)
            orchestrator = manager.load(strategy(id="s", exit_threshold=None, analyzers=[{"type": "ema_trend", "params": {"period": 5}}]))
            manager.activate("s")
            services.hub.ingest("BTC/USD", btc_candles[0])
            await delivery.drain()
            # Outside a turn (as a control operation): its own commit, delivered at once.
            orchestrator.actions.put(OpenPosition("BTC/USD", "long", 0.1, "test"))
            orchestrator.actions.drain()
            assert heard[-1][0].type == "order_submitted" and heard[-1][0].seq in heard[-1][1]

            def explode(candle: Candle) -> float:
                raise RuntimeError("strategy bug")

            # The next candle fills the order at its open, then the strategy's code raises.
            declarative(orchestrator).analyzers.score = explode
            heard.clear()
            before = wal_commits(path)
            services.hub.ingest("BTC/USD", btc_candles[1])
            await delivery.drain()
            await turns.idle()
            commits = wal_commits(path) - before
            delivery.close_all()
        return commits, orchestrator.state

    heard: list[tuple[Event, set[int]]] = []  # each event of the strategy as delivered, with the seqs committed by then
    try:
        commits, state = anyio.run(main)
    finally:
        journal.close()
    types = [event.type for event, _ in heard]
    assert state == "failed"
    assert "position_opened" in types and types[-2:] == ["strategy_error", "strategy_state"], types
    assert commits == 1, f"{commits} commits for one turn"
    seqs = [event.seq for event, _ in heard]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    # The first event was delivered only once the whole turn, its failure included, was committed.
    last = heard[-1][0].seq
    assert all(last in committed for _, committed in heard)
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT state FROM strategy_states WHERE strategy_id = 's'").fetchall() == [("failed",)]
        assert db.execute("SELECT status FROM positions WHERE strategy_id = 's'").fetchall() == [("open",)]


def test_a_disk_full_mid_turn_still_fails_the_strategy_completely_its_positions_protected_and_its_failure_journalled(
    tmp_path: Path, btc_candles: list[Candle]
) -> None:
    """SQLite rolls a whole transaction back on SQLITE_FULL: the turn cannot be journalled, nothing of it is kept.

    The disk is full for one write only (a transient disk-full, for a note too big for the room
    left): the turn fails as a whole, and the strategy's failure must still be handled
    completely (its positions stay protected), journalled and announced, after it.
    """
    path = tmp_path / "journal.sqlite"
    journal = Journal(path, checkpoints=NO_CHECKPOINTS)
    logger = BotLogger.to_stderr(level=60, name="bot.tests.turns")
    heard: list[Event] = []

    async def main() -> tuple[str, bool]:
        turns, services = _wired(journal, logger)
        services.bus.subscribe(heard.append, strategy_id="s")

        def long_note(candle: Candle) -> float:
            services.bus.publish(StrategyFault, None, "s", "x" * 200_000, "", "a long note")
            return 0.0

        async with anyio.create_task_group() as tg:
            manager, delivery = _inboxes(services, tg, turns)
            orchestrator = manager.load(strategy(id="s", exit_threshold=None, exits={"stop_loss_pct": 2.0}, analyzers=[{"type": "ema_trend", "params": {"period": 5}}]))
            manager.activate("s")
            services.hub.ingest("BTC/USD", btc_candles[0])
            await delivery.drain()
            orchestrator.actions.put(OpenPosition("BTC/USD", "long", 0.1, "test"))
            orchestrator.actions.drain()
            services.hub.ingest("BTC/USD", btc_candles[1])  # fills the order at its open: a position to protect
            await delivery.drain()
            assert orchestrator.positions.open_count() == 1
            declarative(orchestrator).analyzers.score = long_note
            refuse_inserts(path, "strategy_events", "length(NEW.payload) > 100000")
            heard.clear()
            services.hub.ingest("BTC/USD", btc_candles[2])
            await delivery.drain()
            allow_inserts(path, "strategy_events")
            protected = any(o is orchestrator for routes in manager._protect.values() for o, _ in routes)
            delivery.close_all()
        return orchestrator.state, protected

    try:
        state, protected = anyio.run(main)
    finally:
        journal.close()
    assert state == "failed"
    assert protected, "the failed strategy's open position is no longer protected (no stop enforced from the feed)"
    assert [e.state for e in heard if isinstance(e, StrategyStateChanged)] == ["failed"], [e.type for e in heard]
    # The turn's own events (the long note) were neither kept nor announced; its failure was, after it.
    (fault,) = [e for e in heard if isinstance(e, StrategyFault)]
    assert "TurnNotJournalled" in fault.error and "database or disk is full" in fault.error, fault
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT state FROM strategy_states WHERE strategy_id = 's'").fetchall() == [("failed",)]
        assert db.execute("SELECT count(*) FROM strategy_events WHERE strategy_id = 's' AND length(payload) > 100000").fetchone() == (0,)


def test_a_turn_that_cannot_be_journalled_fails_the_strategy_even_when_it_was_deactivated_while_its_commit_was_pending(
    tmp_path: Path, btc_candles: list[Candle]
) -> None:
    """The commit runs on the writer thread: a control command can change the strategy before the failure comes back.

    Its position is open in memory and not in the journal: that must never go unreported.
    """
    path = tmp_path / "journal.sqlite"
    journal = Journal(path, checkpoints=NO_CHECKPOINTS)
    logger = BotLogger.to_stderr(level=60, name="bot.tests.turns")
    heard: list[Event] = []

    async def main() -> tuple[str, int]:
        turns, services = _wired(journal, logger)
        services.bus.subscribe(heard.append, strategy_id="s")
        async with anyio.create_task_group() as tg:
            manager, delivery = _inboxes(services, tg, turns)
            orchestrator = manager.load(strategy(id="s", exit_threshold=None, exits={"stop_loss_pct": 2.0}, analyzers=[{"type": "ema_trend", "params": {"period": 5}}]))
            manager.activate("s")
            services.hub.ingest("BTC/USD", btc_candles[0])
            await delivery.drain()
            orchestrator.actions.put(OpenPosition("BTC/USD", "long", 0.1, "test"))
            orchestrator.actions.drain()  # outside a turn: the order is journalled
            refuse_inserts(path, "positions")  # the next candle's turn fills it: its position row is refused
            with writer_held(journal) as release:  # a slow disk: the commit's failure comes back late
                services.hub.ingest("BTC/USD", btc_candles[1])
                while turns.pending == 0:  # the turn ran and waits for its commit
                    await anyio.lowlevel.checkpoint()
                assert orchestrator.positions.open_count() == 1
                # bot ctl deactivate s, meanwhile: its own writes wait behind the failing commit on the writer
                # thread, and the loop hears of the failure only after it returns (no await in between).
                release()
                manager.deactivate("s", "manage")
                await delivery.drain()
                await turns.idle()
            allow_inserts(path, "positions")
            delivery.close_all()
        return orchestrator.state, orchestrator.positions.open_count()

    try:
        state, held = anyio.run(main)
    finally:
        journal.close()
    assert (state, held) == ("failed", 1)  # failed, its position (in memory only) protected by the failed role's routes
    faults = [event for event in heard if isinstance(event, StrategyFault)]
    assert faults and "TurnNotJournalled" in faults[-1].error, heard
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT state FROM strategy_states WHERE strategy_id = 's'").fetchall() == [("failed",)]


def test_a_protecting_turn_that_cannot_be_journalled_fails_the_strategy_even_when_it_was_activated_meanwhile(
    tmp_path: Path, btc_candles: list[Candle]
) -> None:
    """Found by review: the failure came back with the protect handler, took the protect stage, and left it active on a memory ahead of the journal."""
    path = tmp_path / "journal.sqlite"
    journal = Journal(path, checkpoints=NO_CHECKPOINTS)
    logger = BotLogger.to_stderr(level=60, name="bot.tests.turns")
    heard: list[Event] = []

    async def main() -> tuple[str, int, int, float | None]:
        turns, services = _wired(journal, logger)
        services.bus.subscribe(heard.append, strategy_id="s")
        async with anyio.create_task_group() as tg:
            manager, delivery = _inboxes(services, tg, turns)
            orchestrator = manager.load(strategy(id="s", exit_threshold=None, exits={"stop_loss_pct": 50.0}, analyzers=[{"type": "ema_trend", "params": {"period": 5}}]))
            manager.activate("s")
            services.hub.ingest("BTC/USD", btc_candles[0])
            await delivery.drain()
            orchestrator.actions.put(OpenPosition("BTC/USD", "long", 0.1, "test"))
            orchestrator.actions.drain()
            services.hub.ingest("BTC/USD", btc_candles[1])  # fills the entry
            await delivery.drain()
            await turns.idle()
            assert orchestrator.positions.open_count() == 1
            manager.deactivate("s", "manage")  # its position protected by the dormant role's route
            (position,) = orchestrator.positions.positions.values()
            orchestrator.actions.put(ClosePercent(position.id, 100.0, "by hand"))
            orchestrator.actions.drain()  # outside a turn: the close order is journalled, fills on the next candle
            refuse_inserts(path, "fills")  # the protect turn's fill is refused
            candles_before = orchestrator.metrics.candles
            with writer_held(journal) as release:
                services.hub.ingest("BTC/USD", btc_candles[2])
                while turns.pending == 0:
                    await anyio.lowlevel.checkpoint()
                release()
                manager.activate("s")  # bot ctl activate s, meanwhile
                services.hub.ingest("BTC/USD", btc_candles[3])  # queued for its active role behind the pending turn
                await delivery.drain()
                await turns.idle()
            allow_inserts(path, "fills")
            delivery.close_all()
        return orchestrator.state, orchestrator.positions.open_count(), orchestrator.metrics.candles - candles_before, orchestrator.positions.last_price("BTC/USD")

    try:
        state, open_count, decided, last_price = anyio.run(main)
    finally:
        journal.close()
    assert (state, open_count, decided) == ("failed", 0, 0)  # its close booked in memory only; failed, it decides nothing
    # The candle queued for its active role was not dropped silently: its position saw it.
    assert last_price == btc_candles[3].close
    assert any(isinstance(e, StrategyFault) and "TurnNotJournalled" in e.error for e in heard), heard


def test_a_committed_protecting_turn_that_fails_once_the_strategy_was_activated_is_a_trading_failure_and_loses_no_candle(
    tmp_path: Path, btc_candles: list[Candle]
) -> None:
    """Found by review: it took the protect stage (reset the now active lane, "no longer routed") and the queued candle vanished."""
    path = tmp_path / "journal.sqlite"
    journal = Journal(path, checkpoints=NO_CHECKPOINTS)
    logger = BotLogger.to_stderr(level=60, name="bot.tests.turns")
    armed = False

    def flaky(event: Event) -> None:  # a subscriber failing on the protect turn's close (a send failing would do the same)
        nonlocal armed
        if armed and isinstance(event, PositionClosed):
            armed = False
            raise RuntimeError("subscriber failed")

    async def main() -> tuple[str, int, float | None]:
        nonlocal armed
        turns, services = _wired(journal, logger)
        services.bus.subscribe(flaky, strategy_id="s")
        async with anyio.create_task_group() as tg:
            manager, delivery = _inboxes(services, tg, turns)
            orchestrator = manager.load(strategy(id="s", exit_threshold=None, exits={"stop_loss_pct": 50.0}, analyzers=[{"type": "ema_trend", "params": {"period": 5}}]))
            manager.activate("s")
            services.hub.ingest("BTC/USD", btc_candles[0])
            await delivery.drain()
            orchestrator.actions.put(OpenPosition("BTC/USD", "long", 0.1, "test"))
            orchestrator.actions.drain()
            services.hub.ingest("BTC/USD", btc_candles[1])
            await delivery.drain()
            await turns.idle()
            manager.deactivate("s", "manage")
            (position,) = orchestrator.positions.positions.values()
            orchestrator.actions.put(ClosePercent(position.id, 100.0, "by hand"))
            orchestrator.actions.drain()
            armed = True
            candles_before = orchestrator.metrics.candles
            with writer_held(journal) as release:
                services.hub.ingest("BTC/USD", btc_candles[2])  # the protect turn: the close fills
                while turns.pending == 0:
                    await anyio.lowlevel.checkpoint()
                release()
                manager.activate("s")
                services.hub.ingest("BTC/USD", btc_candles[3])  # queued for its active role
                await delivery.drain()
                await turns.idle()
            delivery.close_all()
        return orchestrator.state, orchestrator.metrics.candles - candles_before, orchestrator.positions.last_price("BTC/USD")

    try:
        state, decided, last_price = anyio.run(main)
    finally:
        journal.close()
    # Its turn went out but did not finish (a subscriber here; a send failing alike): the strategy's failure, as
    # when active; the candle queued for its active role is shown to its positions, not dropped.
    assert (state, decided, last_price) == ("failed", 0, btc_candles[3].close)


def _fail_in_a_lost_turn_with_a_resting_paper_entry(tmp_path: Path, btc_candles: list[Candle]) -> None:
    """A paper strategy fails in a turn that cannot be journalled while its limit entry rests: memory drops the entry, the journal keeps it."""
    path = tmp_path / "journal.sqlite"
    journal = Journal(path)
    logger = BotLogger.to_stderr(level=60, name="bot.tests.turns")

    async def main() -> tuple[str, int]:
        turns, services = _wired(journal, logger)
        async with anyio.create_task_group() as tg:
            manager, delivery = _inboxes(services, tg, turns)
            orch = manager.load(strategy(id="s", exit_threshold=None, analyzers=[{"type": "ema_trend", "params": {"period": 5}}]))
            manager.activate("s")
            services.hub.ingest("BTC/USD", btc_candles[0])
            await delivery.drain()
            await turns.idle()
            orch.actions.put(OpenPosition("BTC/USD", "long", 0.1, "dip", limit_price=min(c.low for c in btc_candles[1:200])))  # outside a turn
            orch.actions.drain()
            assert len(orch.positions.pending_orders()) == 1
            refuse_inserts(path, "strategy_states", "NEW.state = 'failed'")
            with turns.turn() as outcome:
                manager.on_handler_error(orch, orch.on_candle, RuntimeError("bug"))
            with pytest.raises(JournalError) as caught:
                await outcome.settled()
            allow_inserts(path, "strategy_states")
            manager.on_handler_error(orch, orch.on_candle, TurnNotJournalled(str(caught.value)))
            await turns.idle()
            delivery.close_all()
        return orch.state, len(orch.positions.pending_orders())

    try:
        state, pending = anyio.run(main)
    finally:
        journal.close()
    assert (state, pending) == ("failed", 0)  # memory: failed, no entry
    with closing(sqlite3.connect(path)) as db:
        # The journal still has the entry: its cancel went with the lost turn (a paper account drops it at once).
        assert db.execute("SELECT client_id, status FROM orders WHERE strategy_id='s' AND intent='open'").fetchall() == [("s-1", "submitted")]


def test_a_failed_strategy_restored_with_an_entry_still_pending_in_the_journal_cancels_it_instead_of_filling_it(
    tmp_path: Path, btc_candles: list[Candle]
) -> None:
    """Found by review: its protecting route filled the entry after the restart, opening a position for a failed strategy."""
    _fail_in_a_lost_turn_with_a_resting_paper_entry(tmp_path, btc_candles)
    path = tmp_path / "journal.sqlite"
    with closing(sqlite3.connect(path)) as db:
        (row,) = db.execute("SELECT state, policy, last_error FROM strategy_states WHERE strategy_id='s'").fetchall()
    journal = Journal(path)
    logger = BotLogger.to_stderr(level=60, name="bot.tests.turns")

    async def main() -> tuple[str, int, int]:
        turns, services = _wired(journal, logger)
        async with anyio.create_task_group() as tg:
            manager, delivery = _inboxes(services, tg, turns)
            orch = manager.load(strategy(id="s", exit_threshold=None, analyzers=[{"type": "ema_trend", "params": {"period": 5}}]))
            restore_orchestrator(journal, orch)
            manager.restore_state("s", *row)
            pending = len(orch.positions.pending_orders())
            for candle in btc_candles[1:200]:
                services.hub.ingest("BTC/USD", candle)
                await delivery.drain()
            await turns.idle()
            delivery.close_all()
        return orch.state, pending, orch.positions.open_count()

    try:
        state, pending, opened = anyio.run(main)
    finally:
        journal.close()
    assert state == "failed"
    assert (pending, opened) == (0, 0), (pending, opened)
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT client_id, status FROM orders WHERE strategy_id='s' AND intent='open'").fetchall() == [("s-1", "cancelled")]
