"""Group commit on a real journal file and a real loop: strategy turns queued together are one SQLite commit,
each still all or nothing on its own, delivered and sent in order only after the commit that holds it."""
from __future__ import annotations

import asyncio
import json
import sqlite3
from contextlib import ExitStack, closing
from pathlib import Path

import pytest

from bot.bus import EventBus
from bot.clock import ReplayClock
from bot.events import Event, StrategyFault
from bot.journal import Journal, JournalError
from bot.journal.checkpoint import CheckpointPolicy
from bot.journal.turns import TurnOutcome, Turns
from tests.journal.refusals import DISK_FULL, refuse_inserts, writer_held
from tests.journal.wal import wal_commits

NO_CHECKPOINTS = CheckpointPolicy(interval_s=3600, busy_interval_s=3600, writer_frames=10**9, writer_takes_over_s=3600)


def _events(path: Path) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT strategy_id, payload FROM strategy_events ORDER BY seq").fetchall()


class _Rig:
    """A journal with turns on the running loop, a bus that journals through them, and what subscribers and sends saw."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.turns = Turns(journal, asyncio.get_running_loop().call_soon_threadsafe)
        self.bus = EventBus(ReplayClock(), before_delivery=journal.record, turns=self.turns)
        self.heard: list[tuple[str | None, str]] = []
        self.bus.subscribe(lambda event: self.heard.append((event.strategy_id, _message(event))))
        self.done: list[str] = []

    def turn(self, strategy_id: str, *messages: object) -> TurnOutcome:
        """One turn of `strategy_id` publishing a fault per message (its error field) and asking for one send."""
        with self.turns.turn() as outcome:
            for message in messages:
                self.bus.publish(StrategyFault, 1, strategy_id, message, "", "")  # type: ignore[arg-type]  # a test sends what cannot be encoded
            self.turns.after_commit(lambda: self.done.append(strategy_id), lambda: self.done.append(f"{strategy_id} discarded"))
        return outcome


def _message(event: Event) -> str:
    assert isinstance(event, StrategyFault)
    return str(event.error)


def _payload_messages(path: Path) -> list[tuple[str, str]]:
    return [(sid, json.loads(payload)["error"]) for sid, payload in _events(path)]


@pytest.mark.asyncio
async def test_turns_queued_together_are_one_commit_and_each_goes_out_after_it_in_order(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path, checkpoints=NO_CHECKPOINTS) as journal:
        rig = _Rig(journal)
        before = wal_commits(path)
        with writer_held(journal):
            outcomes = [rig.turn(sid, f"{sid}1", f"{sid}2") for sid in ("a", "b", "c")]
            assert rig.heard == [] and rig.done == []
        for outcome in outcomes:
            await outcome.settled()
        assert wal_commits(path) - before == 1
        assert journal.group_commits == 1 and journal.grouped_turns == 3
        expected = [(sid, f"{sid}{n}") for sid in ("a", "b", "c") for n in (1, 2)]
        assert rig.heard == expected and rig.done == ["a", "b", "c"]
        assert _payload_messages(path) == expected
        # A turn with nothing queued behind it is committed at once, alone.
        await rig.turn("a", "a3").settled()
        assert wal_commits(path) - before == 2 and journal.group_commits == 1


@pytest.mark.asyncio
async def test_a_turn_that_cannot_be_journalled_fails_alone_in_its_group(tmp_path: Path) -> None:
    """b's second event cannot be encoded: b is rolled back to its savepoint, a and c are kept in the same commit."""
    path = tmp_path / "journal.sqlite"
    with Journal(path, checkpoints=NO_CHECKPOINTS) as journal:
        rig = _Rig(journal)
        before = wal_commits(path)
        with writer_held(journal):
            a = rig.turn("a", "a1")
            b = rig.turn("b", "b1", object())
            c = rig.turn("c", "c1")
        await c.settled()
        await a.settled()
        with pytest.raises(JournalError, match=r"seq 3 \(strategy_error of 'b'\)"):
            await b.settled()
        assert wal_commits(path) - before == 1 and journal.group_commits == 1
        assert _payload_messages(path) == [("a", "a1"), ("c", "c1")]
        assert rig.heard == [("a", "a1"), ("c", "c1")] and rig.done == ["a", "b discarded", "c"]


@pytest.mark.asyncio
async def test_when_sqlite_drops_the_groups_transaction_every_other_turn_is_kept_in_a_commit_of_its_own(tmp_path: Path) -> None:
    """b's insert makes SQLite roll the whole transaction back (as a full disk does), a's released writes with it:
    each turn is then written alone, so a and c are kept and only b fails."""
    path = tmp_path / "journal.sqlite"
    with Journal(path, checkpoints=NO_CHECKPOINTS) as journal:
        rig = _Rig(journal)
        refuse_inserts(path, "strategy_events", "NEW.strategy_id = 'b'")
        before = wal_commits(path)
        with writer_held(journal):
            a = rig.turn("a", "a1", "a2")
            b = rig.turn("b", "b1")
            c = rig.turn("c", "c1")
        await a.settled()
        with pytest.raises(JournalError, match=DISK_FULL):
            await b.settled()
        await c.settled()
        assert wal_commits(path) - before == 2 and journal.group_commits == 0
        assert _payload_messages(path) == [("a", "a1"), ("a", "a2"), ("c", "c1")]
        assert rig.heard == [("a", "a1"), ("a", "a2"), ("c", "c1")] and rig.done == ["a", "b discarded", "c"]


@pytest.mark.asyncio
async def test_a_commit_takes_at_most_turns_per_commit_turns(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path, checkpoints=NO_CHECKPOINTS, turns_per_commit=4) as journal:
        rig = _Rig(journal)
        before = wal_commits(path)
        with writer_held(journal):
            outcomes = [rig.turn(f"s{n}", f"m{n}") for n in range(10)]
        for outcome in outcomes:
            await outcome.settled()
        assert wal_commits(path) - before == 3  # 4 + 4 + 2
        assert journal.group_commits == 3 and journal.grouped_turns == 10
        assert _payload_messages(path) == [(f"s{n}", f"m{n}") for n in range(10)]
        assert rig.done == [f"s{n}" for n in range(10)]


@pytest.mark.asyncio
async def test_a_turn_that_read_the_journal_commits_alone_and_the_turns_behind_it_share_a_commit(tmp_path: Path) -> None:
    """A read inside a turn hands its writes over early (its transaction is open when its commit comes): it commits alone."""
    path = tmp_path / "journal.sqlite"
    with Journal(path, checkpoints=NO_CHECKPOINTS) as journal:
        rig = _Rig(journal)
        before = wal_commits(path)
        with ExitStack() as held:
            with rig.turns.turn() as reader:
                rig.bus.publish(StrategyFault, 1, "r", "r1", "", "")
                assert journal.pending_orders("r") == []  # a read in the turn: r1's write runs first, in r's transaction
                held.enter_context(writer_held(journal))  # r's commit and the two turns behind it are queued together
                rig.bus.publish(StrategyFault, 1, "r", "r2", "", "")
            others = [rig.turn(sid, f"{sid}1") for sid in ("a", "b")]
        await reader.settled()
        for outcome in others:
            await outcome.settled()
        assert wal_commits(path) - before == 2 and journal.group_commits == 1 and journal.grouped_turns == 2
        assert _payload_messages(path) == [("r", "r1"), ("r", "r2"), ("a", "a1"), ("b", "b1")]
        assert rig.heard == [("r", "r1"), ("r", "r2"), ("a", "a1"), ("b", "b1")] and rig.done == ["a", "b"]


def _numbers(path: Path) -> list[tuple[str, int, str]]:
    """(strategy, n, error) of each row of the bounded strategy event log, in n order per strategy."""
    with closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT strategy_id, n, payload FROM strategy_events ORDER BY strategy_id, n").fetchall()
    return [(sid, n, json.loads(payload)["error"]) for sid, n, payload in rows]


def _commit_fails_for(journal: Journal, path: Path, when: str) -> None:
    """From now on COMMIT (not the insert, not the RELEASE of a savepoint) fails for a transaction with an event matching `when`.

    An insert of such an event adds a row breaking a deferred foreign key, which SQLite checks at COMMIT only.
    """
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("CREATE TABLE parent (id TEXT PRIMARY KEY)")
        db.execute("CREATE TABLE child (p TEXT REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)")
        db.execute(f"CREATE TRIGGER to_child AFTER INSERT ON strategy_events WHEN {when} BEGIN INSERT INTO child VALUES ('none'); END")
    journal._thread.call(lambda: journal._conn.execute("PRAGMA foreign_keys=ON"))  # the writer thread owns the connection


@pytest.mark.asyncio
async def test_when_the_groups_commit_fails_every_turn_is_written_again_alone_and_only_the_one_at_fault_fails(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path, checkpoints=NO_CHECKPOINTS) as journal:
        rig = _Rig(journal)
        _commit_fails_for(journal, path, "NEW.strategy_id = 'b'")
        before = wal_commits(path)
        with writer_held(journal):
            a = rig.turn("a", "a1", "a2")
            b = rig.turn("b", "b1")
            c = rig.turn("c", "c1")
        await a.settled()
        with pytest.raises(JournalError, match="FOREIGN KEY"):
            await b.settled()
        await c.settled()
        assert wal_commits(path) - before == 2 and journal.group_commits == 0
        assert _payload_messages(path) == [("a", "a1"), ("a", "a2"), ("c", "c1")]
        assert rig.heard == [("a", "a1"), ("a", "a2"), ("c", "c1")] and rig.done == ["a", "b discarded", "c"]
        assert not journal._thread.call(lambda: journal._conn.in_transaction)


@pytest.mark.asyncio
async def test_a_statement_sqlite_refuses_rolls_its_turn_back_to_its_savepoint_only(tmp_path: Path) -> None:
    """RAISE(ABORT) undoes the statement and leaves the transaction open (unlike a full disk): a and c share the commit."""
    path = tmp_path / "journal.sqlite"
    with Journal(path, checkpoints=NO_CHECKPOINTS) as journal:
        rig = _Rig(journal)
        with closing(sqlite3.connect(path, isolation_level=None)) as db:
            db.execute("CREATE TRIGGER refuse_b2 BEFORE INSERT ON strategy_events WHEN NEW.payload LIKE '%b2%' BEGIN SELECT RAISE(ABORT, 'refused'); END")
        before = wal_commits(path)
        with writer_held(journal):
            a = rig.turn("a", "a1")
            b = rig.turn("b", "b1", "b2")
            c = rig.turn("c", "c1")
        await a.settled()
        with pytest.raises(JournalError, match="refused"):
            await b.settled()
        await c.settled()
        assert wal_commits(path) - before == 1 and journal.group_commits == 1 and journal.grouped_turns == 2
        assert _payload_messages(path) == [("a", "a1"), ("c", "c1")]


@pytest.mark.asyncio
@pytest.mark.parametrize("failure", ["savepoint", "group lost"])
async def test_turns_of_one_strategy_in_one_group_number_its_events_without_a_gap_after_one_fails(tmp_path: Path, failure: str) -> None:
    """The event log's next n per strategy is cached on the writer: a rolled-back turn must not leave it ahead."""
    path = tmp_path / "journal.sqlite"
    with Journal(path, checkpoints=NO_CHECKPOINTS) as journal:
        rig = _Rig(journal)
        if failure == "group lost":
            refuse_inserts(path, "strategy_events", "NEW.payload LIKE '%x2%'")
        with writer_held(journal):
            first = rig.turn("x", "x1")
            failing = rig.turn("x", "x2", object()) if failure == "savepoint" else rig.turn("x", "x2")
            third = rig.turn("x", "x3")
        await first.settled()
        with pytest.raises(JournalError):
            await failing.settled()
        await third.settled()
        await rig.turn("x", "x4").settled()
        assert _numbers(path) == [("x", 0, "x1"), ("x", 1, "x3"), ("x", 2, "x4")]
        assert journal.group_commits == (1 if failure == "savepoint" else 0)


@pytest.mark.asyncio
async def test_daemon_facts_written_in_turns_are_kept_with_their_turns_when_the_group_is_written_again(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path, checkpoints=NO_CHECKPOINTS) as journal:
        rig = _Rig(journal)
        refuse_inserts(path, "strategy_events", "NEW.strategy_id = 'b'")
        outcomes = []
        with writer_held(journal):
            for sid in ("a", "b", "c"):
                with rig.turns.turn() as outcome:
                    rig.bus.publish(StrategyFault, 1, sid, f"{sid}1", "", "")
                    journal.set_meta(f"fact.{sid}", sid)
                outcomes.append(outcome)
        await outcomes[0].settled()
        with pytest.raises(JournalError, match=DISK_FULL):
            await outcomes[1].settled()
        await outcomes[2].settled()
        assert journal.meta_with_prefix("fact.") == {"a": "a", "c": "c"}
