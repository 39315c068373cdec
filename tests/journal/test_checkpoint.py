"""The journal's WAL checkpoint thread: the WAL stays bounded, close stops the thread, a failing checkpoint loses nothing."""
from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import bot.journal.sqlite as journal_module
from bot.events import Event
from bot.journal import Journal
from bot.journal.checkpoint import CheckpointPacing, CheckpointPolicy
from bot.journal.writer import writes
from tests.journal.builders import JournalledRun, dump_tables, integrity
from tests.journal.pacing import ManualClock, Permits
from tests.journal.wal import wal_frames

# Recording every event of the journalled run with no checkpoint at all leaves a WAL of about
# 150 MB (measured): each bound below is far under that, and far over what a working thread leaves.
_MB = 1024 * 1024
# The thread alone (no writer fallback): every WAL a burst leaves is about 1.5 MB (measured).
_BURSTS_BOUND = 16 * _MB
_WAIT_S = 10.0
# For a ManualClock: binary fractions, so that the clock's sums are exact.
_BUSY_S = 1 / 64
_TAKES_OVER_S = 4.0
# Checkpoints by the thread only: the writer never does one.
_THREAD_ONLY = CheckpointPolicy(interval_s=0.02, busy_interval_s=0.005, writer_frames=10**9, writer_takes_over_s=3600)


@pytest.fixture
def events(journalled_run: JournalledRun) -> list[Event]:
    """The strategy events of the journalled run, in bus order (about 11,000)."""
    return [e for e in journalled_run.rig.events if e.strategy_id is not None]


@pytest.fixture
def writing(events: list[Event]) -> list[Event]:
    """Those of the events that the journal writes (each its own commit), in bus order."""
    return [e for e in events if writes(e)]


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> Iterator[logging.Logger]:
    """A logger for the journal under test whose records caplog keeps (from any thread)."""
    caplog.set_level(logging.INFO, logger="tests.journal.checkpoint")
    yield logging.getLogger("tests.journal.checkpoint")


def _wal_size(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def _checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("journal-checkpoint")]


def _reference(tmp_path: Path, events: list[Event]) -> dict[str, list[tuple[Any, ...]]]:
    path = tmp_path / "reference.sqlite"
    with Journal(path) as reference:
        for event in events:
            reference.record(event)
    return dump_tables(path)


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + _WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def _checkpoint_tried(journal: Journal) -> None:
    """Return once the journal's thread has tried a checkpoint that began after this call (as between two candles)."""
    # The thread's counters are the only outside view of its progress.
    checkpointer = journal._checkpointer

    def tried() -> int:
        return checkpointer.checkpoints + checkpointer.failures

    # The attempt under way now may have begun before the last write; the one after it cannot.
    start = tried()
    _wait_for(lambda: tried() >= start + 2, "the checkpoint thread to try again")


def _messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "tests.journal.checkpoint" and r.levelno == level]


def test_the_thread_keeps_the_wal_bounded_when_events_come_in_bursts(tmp_path: Path, events: list[Event], log: logging.Logger) -> None:
    path = tmp_path / "journal.sqlite"
    largest = 0
    with Journal(path, checkpoints=_THREAD_ONLY, log=log) as journal:
        for start in range(0, len(events), 100):
            for event in events[start : start + 100]:
                journal.record(event)
            largest = max(largest, _wal_size(path))
            # As between two candles: the thread's checkpoint catches the WAL's end, the next
            # write starts the WAL over.
            _checkpoint_tried(journal)
        assert journal.writer_checkpoints == 0
    assert 0 < largest < _BURSTS_BOUND
    assert dump_tables(path) == _reference(tmp_path, events)


def test_the_writer_bounds_the_wal_once_the_thread_has_not_run_for_writer_takes_over_s(
    tmp_path: Path, writing: list[Event], log: logging.Logger
) -> None:
    path = tmp_path / "journal.sqlite"
    clock = ManualClock()
    # The thread is held throughout (as when the loop and the writer thread keep the GIL from it):
    # it never checkpoints, nor tells the writer the WAL has passed writer_frames.
    policy = CheckpointPolicy(interval_s=0.01, busy_interval_s=_BUSY_S, writer_frames=300, writer_takes_over_s=_TAKES_OVER_S)
    written = writing[:4000]
    with Journal(path, checkpoints=policy, log=log, checkpoint_pacing=CheckpointPacing(clock, Permits())) as journal:
        clock.advance(policy.writer_takes_over_s - policy.busy_interval_s)
        for event in written[:1000]:
            journal.record(event)
        # Not yet writer_takes_over_s since the thread last ran: the writer leaves the WAL to it.
        assert journal.writer_checkpoints == 0
        assert wal_frames(path) > 3 * policy.writer_frames
        clock.advance(policy.busy_interval_s)
        # After its commit the writer copies every frame the thread has left: the next write starts the WAL over.
        journal.record(written[1000])
        assert journal.writer_checkpoints == 1
        largest = 0
        # Writes that never pause, eight to a busy_interval_s: the writer checkpoints after every eighth commit.
        for event in written[1001:]:
            clock.advance(policy.busy_interval_s / 8)
            journal.record(event)
            largest = max(largest, wal_frames(path))
        assert journal.writer_checkpoints == 1 + len(written[1001:]) // 8
        assert journal._checkpointer.checkpoints == 0
    assert 0 < largest < policy.writer_frames
    assert dump_tables(path) == _reference(tmp_path, written)


def test_the_writer_takes_over_at_most_once_per_busy_interval_and_until_the_thread_runs_again(
    tmp_path: Path, writing: list[Event], log: logging.Logger
) -> None:
    clock, permits = ManualClock(), Permits()
    policy = CheckpointPolicy(interval_s=0.01, busy_interval_s=_BUSY_S, writer_frames=10**9, writer_takes_over_s=_TAKES_OVER_S)
    with Journal(tmp_path / "journal.sqlite", checkpoints=policy, log=log, checkpoint_pacing=CheckpointPacing(clock, permits)) as journal:
        events = iter(writing)
        # The thread, held since the journal opened, has not run for writer_takes_over_s.
        clock.advance(policy.writer_takes_over_s)
        journal.record(next(events))
        assert journal.writer_checkpoints == 1
        for _ in range(20):  # the clock stands still: within busy_interval_s of the last
            journal.record(next(events))
        assert journal.writer_checkpoints == 1
        clock.advance(policy.busy_interval_s)
        journal.record(next(events))
        assert journal.writer_checkpoints == 2
        permits.let_one()  # the thread runs again, once
        assert journal._checkpointer.checkpoints == 1
        ran_at = clock.now
        # The thread is held again, but has run within writer_takes_over_s: not starved.
        while clock.now + policy.busy_interval_s < ran_at + policy.writer_takes_over_s:
            clock.advance(policy.busy_interval_s)
            journal.record(next(events))
        assert journal.writer_checkpoints == 2
        clock.advance(policy.busy_interval_s)
        journal.record(next(events))
        assert journal.writer_checkpoints == 3


def test_the_writer_checkpoints_once_when_the_thread_finds_the_wal_past_writer_frames(
    tmp_path: Path, writing: list[Event], log: logging.Logger
) -> None:
    path = tmp_path / "journal.sqlite"
    permits = Permits()
    # The clock stands still: the thread is never starved, and the writer steps in only when told.
    policy = CheckpointPolicy(interval_s=0.01, busy_interval_s=0.005, writer_frames=300)
    written = writing[:1000]
    with Journal(path, checkpoints=policy, log=log, checkpoint_pacing=CheckpointPacing(ManualClock(), permits)) as journal:
        with closing(sqlite3.connect(path, isolation_level=None)) as reader:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM meta").fetchone()
            for event in written[:500]:
                journal.record(event)
            assert wal_frames(path) > policy.writer_frames
            # The thread's checkpoint stops short (the reader's snapshot here; a commit under way when
            # writes never pause), so the next write cannot start the WAL over.
            permits.let_one()
            reader.execute("COMMIT")
        assert journal._checkpointer.checkpoints == 1 and journal.writer_checkpoints == 0
        # Its commit, then the writer's checkpoint of every frame; the next write starts the WAL over.
        journal.record(written[500])
        assert journal.writer_checkpoints == 1
        journal.record(written[501])
        assert 0 < wal_frames(path) < policy.writer_frames
        for event in written[502:]:
            journal.record(event)
        # Once per time the thread found the WAL past writer_frames: it has not run since.
        assert journal.writer_checkpoints == 1
        assert wal_frames(path) > policy.writer_frames
    assert dump_tables(path) == _reference(tmp_path, written)


def test_a_commit_never_carries_a_checkpoint(tmp_path: Path, events: list[Event]) -> None:
    path = tmp_path / "journal.sqlite"
    # Neither the thread (held) nor the writer (the thread is never starved on a clock that stands
    # still, and never tells it the WAL is too long) checkpoints here.
    held = CheckpointPacing(ManualClock(), Permits())
    with Journal(path, checkpoints=CheckpointPolicy(writer_frames=10**9), checkpoint_pacing=held) as journal:
        for event in events[:2000]:
            journal.record(event)
        # SQLite's automatic checkpoint would have started the WAL over after 1000 pages (4 MiB).
        assert _wal_size(path) > 4 * _MB
        assert journal.writer_checkpoints == 0


def test_close_stops_the_checkpoint_thread(tmp_path: Path, events: list[Event]) -> None:
    before = set(threading.enumerate())
    journal = Journal(tmp_path / "journal.sqlite", checkpoints=_THREAD_ONLY)
    assert journal.checkpointing and len(_checkpoint_threads()) == 1
    for event in events[:2000]:
        journal.record(event)
    journal.close()
    assert not journal.checkpointing
    assert set(threading.enumerate()) == before
    journal.close()  # idempotent, and still no thread
    assert set(threading.enumerate()) == before


def test_a_journal_dropped_without_close_stops_its_thread(tmp_path: Path, events: list[Event]) -> None:
    before = set(threading.enumerate())
    journal = Journal(tmp_path / "journal.sqlite", checkpoints=_THREAD_ONLY)
    for event in events[:500]:
        journal.record(event)
    assert len(_checkpoint_threads()) == 1
    del journal
    _wait_for(lambda: set(threading.enumerate()) == before, "the thread to stop")


def test_a_journal_that_fails_to_open_leaves_no_thread(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    with pytest.raises(ValueError, match="limit"):
        Journal(tmp_path / "journal.sqlite", strategy_event_limit=0)
    assert set(threading.enumerate()) == before


def test_close_checkpoints_every_event_into_the_file(tmp_path: Path, events: list[Event]) -> None:
    path = tmp_path / "journal.sqlite"
    # A connection still open (a `bot ctl` reader) keeps the journal's close from being the last
    # one, which would checkpoint by itself; the thread is held, and the writer never steps in.
    held = CheckpointPacing(ManualClock(), Permits())
    journal = Journal(path, checkpoints=CheckpointPolicy(writer_frames=10**9), checkpoint_pacing=held)
    with closing(sqlite3.connect(path)) as other:
        other.execute("SELECT count(*) FROM meta").fetchone()
        for event in events[:2000]:
            journal.record(event)
        journal.close()
        assert _wal_size(path) > 0  # the WAL is still there, so only the copy in the file counts
        alone = tmp_path / "alone.sqlite"
        shutil.copyfile(path, alone)  # the database file without its WAL
    assert integrity(alone) == "ok"
    assert dump_tables(alone) == _reference(tmp_path, events[:2000])


def test_a_reader_holding_an_old_snapshot_is_reported_and_events_keep_being_written(
    tmp_path: Path, events: list[Event], log: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "journal.sqlite"
    clock = ManualClock()
    policy = CheckpointPolicy(interval_s=0.01, busy_interval_s=0.005, writer_frames=200)
    written = events[:3000]
    with Journal(path, checkpoints=policy, log=log, checkpoint_pacing=CheckpointPacing(clock)) as journal:
        for event in written[:500]:
            journal.record(event)
        with closing(sqlite3.connect(path, isolation_level=None)) as reader:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM positions").fetchone()  # the snapshot is held from here on
            for start in range(500, 2000, 100):
                for event in written[start : start + 100]:
                    journal.record(event)
                _checkpoint_tried(journal)  # stopped short: the reader holds the WAL
            assert not any("holding an old snapshot" in m for m in _messages(caplog, logging.WARNING))
            clock.advance(policy.stuck_warning_s)
            _checkpoint_tried(journal)
            assert any("holding an old snapshot" in m for m in _messages(caplog, logging.WARNING))
            held = _wal_size(path)
            reader.execute("COMMIT")
        for start in range(2000, 3000, 100):
            for event in written[start : start + 100]:
                journal.record(event)
            _checkpoint_tried(journal)
        _wait_for(lambda: any("complete again" in m for m in _messages(caplog, logging.WARNING)), "checkpoints to complete again")
        assert journal.checkpointing
    assert held > 0
    assert integrity(path) == "ok"
    assert dump_tables(path) == _reference(tmp_path, written)


class _FailingCheckpoints(sqlite3.Connection):
    """A connection whose first `failures` checkpoints fail as a disk error would."""

    failures = 0

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql.startswith("PRAGMA wal_checkpoint") and self.failures > 0:
            self.failures -= 1
            raise sqlite3.OperationalError("disk I/O error")
        return super().execute(sql, *args)


def test_a_failing_checkpoint_is_logged_and_events_keep_being_written(
    tmp_path: Path, events: list[Event], log: logging.Logger, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[_FailingCheckpoints] = []

    def failing_connection(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, factory=_FailingCheckpoints)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.failures = 5
        opened.append(conn)
        return conn

    monkeypatch.setattr(journal_module, "open_checkpoint_connection", failing_connection)
    path = tmp_path / "journal.sqlite"
    policy = CheckpointPolicy(interval_s=0.01, busy_interval_s=0.005, writer_frames=10**9)
    # The clock stands still: all the failures come within a minute of the first, and the writer never steps in.
    with Journal(path, checkpoints=policy, log=log, checkpoint_pacing=CheckpointPacing(ManualClock())) as journal:
        for start in range(0, 3000, 100):
            for event in events[start : start + 100]:
                journal.record(event)
            _checkpoint_tried(journal)  # failed for the first five
        _wait_for(lambda: any("work again" in m for m in _messages(caplog, logging.WARNING)), "checkpoints to work again")
        assert journal.checkpointing
    assert len(opened) == 1 and opened[0].failures == 0
    errors = _messages(caplog, logging.ERROR)
    # Logged once for the run of failures (then at most once a minute), not once per failure.
    assert len(errors) == 1 and "disk I/O error" in errors[0] and "WAL checkpoint failed" in errors[0]
    assert "after 5 failed" in next(m for m in _messages(caplog, logging.WARNING) if "work again" in m)
    assert integrity(path) == "ok"
    assert dump_tables(path) == _reference(tmp_path, events[:3000])
