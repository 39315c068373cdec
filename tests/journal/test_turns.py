"""Turns on a real journal file and a real loop: one commit per turn on the writer thread, delivery after it in seq
order, several turns pending at once settled in commit order, nothing out when a turn cannot be journalled."""
from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from functools import partial
from pathlib import Path

import pytest

from bot.bus import EventBus
from bot.clock import ReplayClock
from bot.events import Event, FeedState, StrategyFault, StrategyStateChanged
from bot.journal import Journal, JournalError
from bot.journal.checkpoint import CheckpointPolicy
from bot.journal.turns import Turns
from tests.journal.refusals import DISK_FULL, allow_inserts, refuse_inserts, writer_held
from tests.journal.wal import wal_commits

NO_CHECKPOINTS = CheckpointPolicy(interval_s=3600, busy_interval_s=3600, writer_frames=10**9, writer_takes_over_s=3600)


def _events(path: Path) -> list[tuple[str, int]]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT type, seq FROM strategy_events ORDER BY seq").fetchall()


def _bus(journal: Journal, turns: Turns) -> EventBus:
    return EventBus(ReplayClock(), before_delivery=journal.record, turns=turns)


def _turns(journal: Journal) -> Turns:
    return Turns(journal, asyncio.get_running_loop().call_soon_threadsafe)


@pytest.mark.asyncio
async def test_a_turn_is_one_commit_and_an_event_published_while_it_is_delivered_comes_after_it_in_seq_order(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path, checkpoints=NO_CHECKPOINTS) as journal:
        turns = _turns(journal)
        bus = _bus(journal, turns)
        heard: list[int] = []

        def hear(event: Event) -> None:
            heard.append(event.seq)
            if event.seq == 1:  # a subscriber reacting: published outside the turn, after its commit
                bus.publish(StrategyFault, 1, "a", "late", "", "reaction")

        bus.subscribe(hear)
        before = wal_commits(path)
        with turns.turn() as outcome:
            bus.publish(StrategyFault, 1, "a", "boom", "x.py:1", "first")
            bus.publish(StrategyStateChanged, 1, "a", "failed", "failed", None, "boom")
            bus.publish(StrategyFault, 1, "b", "other", "", "third")
            assert heard == [] and _events(path) == []  # held, and not even handed to the writer thread yet
        await outcome.settled()
        assert wal_commits(path) - before == 2  # the turn, then the reaction's own
        assert heard == [1, 2, 3, 4]
        assert _events(path) == [("strategy_error", 1), ("strategy_error", 3), ("strategy_error", 4)]
        assert turns.commits == 1 and turns.pending == 0 and not turns.holding


@pytest.mark.asyncio
async def test_a_turn_that_cannot_be_journalled_delivers_nothing_sends_nothing_and_keeps_nothing(tmp_path: Path) -> None:
    """Its second event meets a full disk: the whole turn fails (its first event is not kept either), with the event named."""
    path = tmp_path / "journal.sqlite"
    with Journal(path, checkpoints=NO_CHECKPOINTS) as journal:
        turns = _turns(journal)
        bus = _bus(journal, turns)
        heard: list[Event] = []
        bus.subscribe(heard.append)
        done: list[str] = []
        refuse_inserts(path, "strategy_events", "NEW.payload LIKE '%no room%'")
        with turns.turn() as outcome:
            bus.publish(StrategyFault, 1, "a", "fits", "", "")
            bus.publish(StrategyFault, 1, "a", "no room", "", "")
            turns.after_commit(lambda: done.append("sent"), lambda: done.append("discarded"))
        with pytest.raises(JournalError, match=rf"could not journal event seq 2 \(strategy_error of 'a'\).*{DISK_FULL}"):
            await outcome.settled()
        assert heard == [] and done == ["discarded"] and _events(path) == []
        allow_inserts(path, "strategy_events")
        # Outside a turn an action runs at once, an event is committed and delivered when published.
        turns.after_commit(lambda: done.append("sent"), lambda: done.append("discarded"))
        bus.publish(StrategyFault, 2, "a", "next", "", "")
        assert done == ["discarded", "sent"] and [e.seq for e in heard] == [3] and _events(path) == [("strategy_error", 3)]


@pytest.mark.asyncio
async def test_an_event_that_cannot_be_journalled_mid_turn_fails_the_whole_turn(tmp_path: Path) -> None:
    """The publisher cannot get the error (its write runs later, on the writer thread): the turn is atomic instead.

    Nothing of it is kept or delivered, and the turn's outcome names the event; the next turn is not touched.
    """
    path = tmp_path / "journal.sqlite"
    with Journal(path, checkpoints=NO_CHECKPOINTS) as journal:
        turns = _turns(journal)
        bus = _bus(journal, turns)
        heard: list[int] = []
        bus.subscribe(lambda event: heard.append(event.seq))
        with turns.turn() as outcome:
            bus.publish(StrategyFault, 1, "a", "not kept", "", "")
            bus.publish(StrategyFault, 1, "a", "x" * 10, "", object())  # type: ignore[arg-type]  # not encodable
            bus.publish(StrategyFault, 1, "a", "not kept either", "", "")
        with pytest.raises(JournalError, match=r"seq 2 \(strategy_error of 'a'\)"):
            await outcome.settled()
        assert _events(path) == [] and heard == []
        with turns.turn() as outcome:
            bus.publish(StrategyFault, 1, "a", "kept", "", "")
        await outcome.settled()
        assert _events(path) == [("strategy_error", 4)] and heard == [4]


@pytest.mark.asyncio
async def test_turns_pending_at_once_are_delivered_and_sent_in_commit_order_and_what_comes_outside_any_turn_after_them(tmp_path: Path) -> None:
    """Two strategies' turns wait for their commits at once (the writer thread is held meanwhile): nothing goes out before
    its turn's commit, the second turn not before the first, and a market event and a send from outside any turn wait
    behind both; a journalled event published outside any turn is delivered after them the moment its own write returns."""
    path = tmp_path / "journal.sqlite"
    with Journal(path, checkpoints=NO_CHECKPOINTS) as journal:
        turns = _turns(journal)
        bus = _bus(journal, turns)
        heard: list[int] = []
        bus.subscribe(lambda event: heard.append(event.seq))
        done: list[str] = []
        with writer_held(journal):
            with turns.turn() as first:
                bus.publish(StrategyFault, 1, "a", "a1", "", "")
                bus.publish(StrategyFault, 1, "a", "a2", "", "")
                turns.after_commit(lambda: done.append("a"), lambda: done.append("a discarded"))
            with turns.turn() as second:
                bus.publish(StrategyFault, 1, "b", "b1", "", "")
                turns.after_commit(lambda: done.append("b"), lambda: done.append("b discarded"))
            bus.publish(FeedState, 1, "connected", {}, None)  # market-wide: not journalled, so nothing to wait for
            turns.after_commit(lambda: done.append("outside"), lambda: done.append("outside discarded"))
            assert turns.pending == 4 and heard == [] and done == [] and _events(path) == []
        # Its write waits on the writer thread behind both turns' commits: on return they are done, and delivered first.
        bus.publish(StrategyFault, 2, "c", "c1", "", "")
        assert heard == [1, 2, 3, 4, 5] and done == ["a", "b", "outside"]
        assert first.done and second.done and turns.pending == 0 and not turns.holding
        await first.settled()
        await second.settled()
        assert _events(path) == [("strategy_error", 1), ("strategy_error", 2), ("strategy_error", 3), ("strategy_error", 5)]


@pytest.mark.asyncio
async def test_a_turn_behind_one_that_cannot_be_journalled_still_goes_out_after_it(tmp_path: Path) -> None:
    """Settled in commit order from the loop (no publish to wake it): the failed turn discards its send, the next delivers."""
    path = tmp_path / "journal.sqlite"
    with Journal(path, checkpoints=NO_CHECKPOINTS) as journal:
        turns = _turns(journal)
        bus = _bus(journal, turns)
        heard: list[int] = []
        bus.subscribe(lambda event: heard.append(event.seq))
        done: list[str] = []
        refuse_inserts(path, "strategy_events", "NEW.strategy_id = 'a'")
        with writer_held(journal):
            with turns.turn() as first:
                bus.publish(StrategyFault, 1, "a", "a1", "", "")
                turns.after_commit(lambda: done.append("a"), lambda: done.append("a discarded"))
            with turns.turn() as second:
                bus.publish(StrategyFault, 1, "b", "b1", "", "")
                turns.after_commit(lambda: done.append("b"), lambda: done.append("b discarded"))
        await second.settled()
        assert first.done and isinstance(first.error, JournalError)
        assert heard == [2] and done == ["a discarded", "b"] and _events(path) == [("strategy_error", 2)]
        await turns.idle()


@pytest.mark.asyncio
async def test_idle_returns_once_every_pending_turn_is_delivered_and_sent(tmp_path: Path) -> None:
    """What the daemon's graceful stop awaits before it closes the journal."""
    path = tmp_path / "journal.sqlite"
    with Journal(path, checkpoints=NO_CHECKPOINTS) as journal:
        turns = _turns(journal)
        bus = _bus(journal, turns)
        heard: list[int] = []
        bus.subscribe(lambda event: heard.append(event.seq))
        done: list[str] = []
        with writer_held(journal):
            for strategy_id in ("a", "b"):
                with turns.turn():
                    bus.publish(StrategyFault, 1, strategy_id, "boom", "", "")
                    turns.after_commit(partial(done.append, strategy_id), lambda: done.append("discarded"))
        # Nothing has run on the loop since: only idle's wait lets the commits' reports in.
        assert heard == [] and done == [] and turns.pending == 2
        await turns.idle()
        assert heard == [1, 2] and done == ["a", "b"] and turns.pending == 0
        await turns.idle()  # nothing pending: returns at once


@pytest.mark.asyncio
async def test_a_send_from_outside_any_turn_that_fails_when_the_turns_before_it_settle_goes_to_on_error_not_into_another_turn(tmp_path: Path) -> None:
    """Its publisher returned long ago: the failure must not surface in whichever turn happens to end, nor in a loop callback."""
    path = tmp_path / "journal.sqlite"
    failures: list[BaseException] = []
    with Journal(path, checkpoints=NO_CHECKPOINTS) as journal:
        turns = Turns(journal, asyncio.get_running_loop().call_soon_threadsafe, on_error=failures.append)
        bus = _bus(journal, turns)
        with writer_held(journal) as release:
            with turns.turn() as first:
                bus.publish(StrategyFault, 1, "a", "boom", "", "first")

            def gone() -> None:
                raise RuntimeError("the gateway's task group has ended")

            turns.after_commit(gone, lambda: None)  # outside any turn: waits behind the first
            release()
            await first.settled()  # settled by the writer thread's report: the send's failure is not the turn's
        with turns.turn() as second:
            bus.publish(StrategyFault, 1, "b", "ok", "", "second")
        await second.settled()
    assert [str(exc) for exc in failures] == ["the gateway's task group has ended"]
