"""Turns on a real journal file: one commit per turn, delivery after it in seq order, nothing out when the commit fails."""
from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from bot.bus import EventBus
from bot.clock import ReplayClock
from bot.events import Event, StrategyFault, StrategyStateChanged
from bot.journal import Journal, JournalError
from bot.journal.checkpoint import CheckpointPolicy
from bot.journal.turns import Turns
from tests.journal.wal import wal_commits

NO_CHECKPOINTS = CheckpointPolicy(interval_s=3600, busy_interval_s=3600, writer_frames=10**9)


class CommitRefused(Journal):
    """A journal whose turn commits fail (a disk gone bad at that moment): the turn's writes are rolled back."""

    def commit_turn(self) -> None:
        self.rollback_turn()
        raise JournalError("commit refused")


def _events(path: Path) -> list[tuple[str, int]]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT type, seq FROM strategy_events ORDER BY seq").fetchall()


def _bus(journal: Journal, turns: Turns) -> EventBus:
    return EventBus(ReplayClock(), before_delivery=journal.record, turns=turns)


def test_a_turn_is_one_commit_and_an_event_published_while_it_is_delivered_comes_after_it_in_seq_order(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path, checkpoints=NO_CHECKPOINTS) as journal:
        turns = Turns(journal)
        bus = _bus(journal, turns)
        heard: list[int] = []

        def hear(event: Event) -> None:
            heard.append(event.seq)
            if event.seq == 1:  # a subscriber reacting: published outside the turn, after its commit
                bus.publish(StrategyFault, 1, "a", "late", "", "reaction")

        bus.subscribe(hear)
        before = wal_commits(path)
        with turns.turn():
            bus.publish(StrategyFault, 1, "a", "boom", "x.py:1", "first")
            bus.publish(StrategyStateChanged, 1, "a", "failed", "failed", None, "boom")
            bus.publish(StrategyFault, 1, "b", "other", "", "third")
            assert heard == [] and _events(path) == []  # held, and not committed yet
        assert wal_commits(path) - before == 2  # the turn, then the reaction's own
        assert heard == [1, 2, 3, 4]
        assert _events(path) == [("strategy_error", 1), ("strategy_error", 3), ("strategy_error", 4)]
        assert turns.commits == 1


def test_a_turn_whose_commit_fails_delivers_nothing_sends_nothing_and_keeps_nothing(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with CommitRefused(path, checkpoints=NO_CHECKPOINTS) as journal:
        turns = Turns(journal)
        bus = _bus(journal, turns)
        heard: list[Event] = []
        bus.subscribe(heard.append)
        done: list[str] = []
        with pytest.raises(JournalError, match="commit refused"), turns.turn():
            bus.publish(StrategyFault, 1, "a", "boom", "", "")
            turns.after_commit(lambda: done.append("sent"), lambda: done.append("discarded"))
        assert heard == [] and done == ["discarded"] and _events(path) == []
        # Outside a turn an action runs at once, an event is committed and delivered when published.
        turns.after_commit(lambda: done.append("sent"), lambda: done.append("discarded"))
        bus.publish(StrategyFault, 2, "a", "next", "", "")
        assert done == ["discarded", "sent"] and [e.seq for e in heard] == [2] and _events(path) == [("strategy_error", 2)]


def test_an_event_that_cannot_be_journalled_mid_turn_is_undone_alone(tmp_path: Path) -> None:
    """The publisher gets the JournalError (the strategy's failure, as outside a turn); the turn's other events are kept."""
    path = tmp_path / "journal.sqlite"
    with Journal(path, checkpoints=NO_CHECKPOINTS) as journal:
        turns = Turns(journal)
        bus = _bus(journal, turns)
        heard: list[int] = []
        bus.subscribe(lambda event: heard.append(event.seq))
        with turns.turn():
            bus.publish(StrategyFault, 1, "a", "kept", "", "")
            with pytest.raises(JournalError):
                bus.publish(StrategyFault, 1, "a", "x" * 10, "", object())  # type: ignore[arg-type]  # not encodable
            bus.publish(StrategyFault, 1, "a", "kept too", "", "")
        assert _events(path) == [("strategy_error", 1), ("strategy_error", 3)]
        assert heard == [1, 3]
