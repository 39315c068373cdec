"""The journal's writer thread: work runs in submission order on one thread, waits give results or re-raise, close drains."""
from __future__ import annotations

import logging
import threading
import weakref
from functools import partial
from pathlib import Path

import pytest

from bot.events import StrategyFault
from bot.journal import Journal, JournalError
from bot.journal.writer_thread import Completion, WriterThread

_LOG = logging.getLogger("tests.journal.writer_thread")


def _writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("journal-writer")]


def test_work_runs_in_submission_order_on_one_thread_and_a_call_returns_its_result() -> None:
    writer = WriterThread("journal-writer test", _LOG)
    writer.start()
    try:
        ran: list[tuple[int, str]] = []
        release = threading.Event()
        writer.submit(release.wait)  # everything below queues up behind it

        def run(n: int) -> None:
            ran.append((n, threading.current_thread().name))

        completions = [writer.submit(partial(run, n)) for n in range(200)]
        assert not any(c.done for c in completions)
        release.set()
        assert writer.call(lambda a, b: a + b, 2, b=3) == 5
        assert all(c.done for c in completions)  # the call waited behind every earlier submission
        assert ran == [(n, "journal-writer test") for n in range(200)]
    finally:
        writer.close()


def test_a_call_re_raises_on_the_callers_thread_and_the_thread_goes_on() -> None:
    writer = WriterThread("journal-writer test", _LOG)
    writer.start()
    try:

        def fail() -> None:
            raise JournalError("journal.sqlite: could not journal event seq 7")

        with pytest.raises(JournalError, match="seq 7"):
            writer.call(fail)
        failed = writer.submit(fail)
        assert writer.call(threading.current_thread) is not threading.current_thread()
        assert failed.done and isinstance(failed.error, JournalError)
        with pytest.raises(JournalError, match="seq 7"):
            failed.result()
    finally:
        writer.close()


def test_notify_runs_on_the_writer_thread_once_the_work_is_done() -> None:
    writer = WriterThread("journal-writer test", _LOG)
    writer.start()
    try:
        seen: list[tuple[bool, str]] = []
        completion: Completion[int] | None = None

        def notify() -> None:
            assert completion is not None
            seen.append((completion.done, threading.current_thread().name))

        release = threading.Event()
        writer.submit(release.wait)
        completion = writer.submit(lambda: 42, notify)
        release.set()
        assert completion.result() == 42
        writer.call(lambda: None)  # notify ran before the next item
        assert seen == [(True, "journal-writer test")]
    finally:
        writer.close()


def test_close_runs_everything_submitted_first_then_stops_the_thread_even_after_a_failed_item() -> None:
    writer = WriterThread("journal-writer test", _LOG)
    writer.start()
    ran: list[int] = []
    release = threading.Event()
    writer.submit(release.wait)

    def fail() -> None:
        raise ValueError("bad item")

    failed = writer.submit(fail)
    later = [writer.submit(partial(ran.append, n)) for n in range(50)]
    release.set()
    writer.close()
    assert not writer.running
    assert isinstance(failed.error, ValueError) and all(c.done for c in later) and ran == list(range(50))
    writer.close()  # idempotent
    with pytest.raises(RuntimeError, match="stopped"):
        writer.submit(lambda: None)


class _Batches:
    """A batch function that records each call's members and fails the members named in `failing`."""

    def __init__(self, failing: frozenset[str] = frozenset()) -> None:
        self.calls: list[list[str]] = []
        self.failing = failing

    def __call__(self, members: list[str]) -> list[BaseException | None]:
        self.calls.append(members)
        return [ValueError(f"{m} failed") if m in self.failing else None for m in members]


def test_members_queued_one_behind_another_are_one_batch_up_to_the_limit_in_order() -> None:
    writer = WriterThread("journal-writer test", _LOG, batch_limit=4)
    writer.start()
    try:
        batches, others = _Batches(frozenset({"m2"})), _Batches()
        ran: list[str] = []
        release = threading.Event()
        writer.submit(release.wait)  # everything below queues up behind it
        first = [writer.submit_member(f"m{n}", batches) for n in range(6)]  # 4, then 2: the limit
        writer.submit(lambda: ran.append("plain"))  # a plain item ends a batch
        second = [writer.submit_member(f"m{n}", batches) for n in range(6, 8)]
        third = [writer.submit_member(f"o{n}", others) for n in range(2)]  # another batch's members are not this one's
        fourth = writer.submit_member("m8", batches)
        assert not any(c.done for c in [*first, *second, *third, fourth])
        release.set()
        assert writer.call(lambda: "after") == "after"
        assert batches.calls == [["m0", "m1", "m2", "m3"], ["m4", "m5"], ["m6", "m7"], ["m8"]]
        assert others.calls == [["o0", "o1"]] and ran == ["plain"]
        # Each member done with its own outcome.
        assert [str(c.error) if c.error else None for c in first] == [None, None, "m2 failed", None, None, None]
        with pytest.raises(ValueError, match="m2 failed"):
            first[2].result()
        assert all(c.done and c.error is None for c in [*second, *third, fourth])
    finally:
        writer.close()


def test_a_member_is_not_held_back_for_members_not_queued_yet_and_a_failing_batch_fails_each_of_its_members() -> None:
    writer = WriterThread("journal-writer test", _LOG, batch_limit=16)
    writer.start()
    try:
        batches = _Batches()
        assert writer.submit_member("alone", batches).result() is None  # nothing behind it: run at once, a batch of one
        assert batches.calls == [["alone"]]

        def broken(members: list[str]) -> list[BaseException | None]:
            raise RuntimeError("the batch itself failed")

        def short(members: list[str]) -> list[BaseException | None]:
            return [None]

        release = threading.Event()
        writer.submit(release.wait)
        failed = [writer.submit_member(n, broken) for n in ("a", "b")]
        miscounted = [writer.submit_member(n, short) for n in ("c", "d")]
        release.set()
        writer.call(lambda: None)
        assert [str(c.error) for c in failed] == ["the batch itself failed"] * 2
        assert [type(c.error) for c in miscounted] == [RuntimeError] * 2 and "2 members reported 1 outcomes" in str(miscounted[0].error)
    finally:
        writer.close()
    with pytest.raises(ValueError, match="batch_limit"):
        WriterThread("journal-writer test", _LOG, batch_limit=0)


def test_a_journal_runs_its_sql_on_its_writer_thread_and_close_stops_it(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    journal = Journal(tmp_path / "journal.sqlite")
    (thread,) = _writer_threads()
    journal.record(StrategyFault(1, 1, 1, "a", "boom", "", ""))  # committed on return, on that thread
    assert journal.strategy_events("a")[0]["seq"] == 1
    journal.close()
    assert not thread.is_alive() and set(threading.enumerate()) == before


def test_a_journal_dropped_without_close_stops_its_writer_thread(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    journal.record(StrategyFault(1, 1, 1, "a", "boom", "", ""))
    (thread,) = _writer_threads()
    gone = weakref.ref(journal)
    del journal
    assert gone() is None  # nothing the thread holds keeps the journal alive
    thread.join(timeout=10)
    assert not thread.is_alive()
