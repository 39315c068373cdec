"""The journal's writer thread: one thread runs every piece of the journal's SQL, in the order it was handed over.

The daemon's event loop hands work over instead of running the SQL itself, so a strategy's
turn no longer waits behind the other strategies' commits. sqlite3 releases the GIL while
SQLite works, so the loop runs meanwhile. A caller either waits for its work (`call`: the
result, or the exception re-raised on the caller's thread) or is told when it is done
(`submit` with `notify`, called on the writer thread: hand it to the loop, never block there).
Members of a batch (`submit_member`: the journal's strategy turns) that are queued one behind
another when the thread comes to them are handed over together, so one transaction can commit
them all (group commit); none waits for members not queued yet.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import Any, Generic, ParamSpec, TypeVar

T = TypeVar("T")
M = TypeVar("M")
P = ParamSpec("P")
# Given the members queued one behind another, each one's failure (None: done), in their order.
Batch = Callable[[list[M]], list[BaseException | None]]


class Completion(Generic[T]):
    """The outcome of one piece of work handed to the writer thread: its result or its exception, once done."""

    __slots__ = ("_done", "_result", "_error", "_notify")

    def __init__(self, notify: Callable[[], object] | None = None) -> None:
        self._done = threading.Event()
        self._result: T | None = None
        self._error: BaseException | None = None
        self._notify = notify

    @classmethod
    def finished(cls, result: T) -> Completion[T]:
        """A completion already done with `result` (work that needed no thread)."""
        completion: Completion[T] = cls()
        completion._result = result
        completion._done.set()
        return completion

    @classmethod
    def failed(cls, error: BaseException) -> Completion[T]:
        """A completion already done with `error` (work refused before it reached the thread)."""
        completion: Completion[T] = cls()
        completion._error = error
        completion._done.set()
        return completion

    @property
    def done(self) -> bool:
        """Whether the work has run (safe from any thread)."""
        return self._done.is_set()

    @property
    def error(self) -> BaseException | None:
        """What the work raised (None while not done, or when it succeeded)."""
        return self._error

    def result(self) -> T:
        """Wait until the work has run; its result, or what it raised raised here."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]  # set when no error

    def _run(self, work: Callable[[], T], log: logging.Logger) -> None:
        try:
            result = work()
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for it
            self._finish(None, exc, log)
        else:
            self._finish(result, None, log)

    def _finish(self, result: T | None, error: BaseException | None, log: logging.Logger) -> None:
        self._result = result
        self._error = error
        self._done.set()
        notify = self._notify
        if notify is not None:
            try:
                notify()
            except Exception as exc:  # noqa: BLE001 - the loop is gone (closed): nobody left to tell
                log.error("journal writer: could not report finished work: %s: %s", type(exc).__name__, exc)


class _Member:
    """One member of a batch waiting in the queue."""

    __slots__ = ("payload", "batch", "completion")

    def __init__(self, payload: Any, batch: Batch[Any], completion: Completion[None]) -> None:
        self.payload = payload
        self.batch = batch
        self.completion = completion


_Item = tuple[Callable[[], object], Completion[object]] | _Member


def _serve(queue: SimpleQueue[_Item | None], log: logging.Logger, batch_limit: int) -> None:
    # A function, not a method: the thread holds only its queue, so a journal dropped without close is freed.
    ahead: list[_Item | None] = []  # what a batch took from the queue that is not its own (None: the stop)
    while True:
        item = ahead.pop() if ahead else queue.get()
        if item is None:
            return
        if isinstance(item, _Member):
            _run_batch(_batch_from(item, queue, batch_limit, ahead), log)
        else:
            item[1]._run(item[0], log)
        # Not kept while waiting for the next: the work may hold the journal, which must be freed when dropped.
        del item


def _batch_from(first: _Member, queue: SimpleQueue[_Item | None], batch_limit: int, ahead: list[_Item | None]) -> list[_Member]:
    """`first` and the members of its batch queued right behind it, `batch_limit` at most; the item after them goes to `ahead`."""
    members = [first]
    while len(members) < batch_limit:
        try:
            following = queue.get_nowait()
        except Empty:
            break
        # == not is: each `journal._method` is a new bound method object.
        if isinstance(following, _Member) and following.batch == first.batch:
            members.append(following)
        else:
            ahead.append(following)
            break
    return members


def _run_batch(members: list[_Member], log: logging.Logger) -> None:
    try:
        errors = members[0].batch([member.payload for member in members])
        if len(errors) != len(members):
            raise RuntimeError(f"a batch of {len(members)} members reported {len(errors)} outcomes")
    except BaseException as exc:  # noqa: BLE001 - every member fails with it
        errors = [exc] * len(members)
    for member, error in zip(members, errors):
        member.completion._finish(None, error, log)


class WriterThread:
    """One thread that runs work items one after another, in the order they were submitted (FIFO); at most `batch_limit` members per batch."""

    def __init__(self, name: str, log: logging.Logger, batch_limit: int = 1) -> None:
        if batch_limit < 1:
            raise ValueError(f"batch_limit must be >= 1, got {batch_limit}")
        self._queue: SimpleQueue[_Item | None] = SimpleQueue()
        # A daemon thread, as the checkpoint thread: a journal never closed must not keep the process
        # alive; what it had not committed is lost as in a kill -9, and no order of it was sent.
        self._thread = threading.Thread(target=_serve, args=(self._queue, log, batch_limit), name=name, daemon=True)
        self._stopping = False

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def submit(self, work: Callable[[], T], notify: Callable[[], object] | None = None) -> Completion[T]:
        """Queue `work` behind everything submitted before; `notify` is called on the writer thread once it has run."""
        if self._stopping:
            raise RuntimeError(f"{self._thread.name}: stopped, no more work is taken")
        completion: Completion[T] = Completion(notify)
        self._queue.put((work, completion))  # type: ignore[arg-type]  # the item's result type is the completion's
        return completion

    def submit_member(self, payload: M, batch: Batch[M], notify: Callable[[], object] | None = None) -> Completion[None]:
        """Queue `payload` as a member of `batch`: run with the members of the same batch right behind it; `notify` as in `submit`.

        Its completion is done, with the member's own failure if any, only once `batch` has returned.
        """
        if self._stopping:
            raise RuntimeError(f"{self._thread.name}: stopped, no more work is taken")
        completion: Completion[None] = Completion(notify)
        self._queue.put(_Member(payload, batch, completion))
        return completion

    def call(self, work: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `work(*args)` on the thread after everything submitted before, and wait: its result, or what it raised."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("the journal's writer thread cannot wait for itself")
        return self.submit(lambda: work(*args, **kwargs)).result()

    def request_stop(self) -> None:
        """Let the thread end once it has run what was submitted, without waiting (a finalizer; safe from any thread)."""
        if not self._stopping:
            self._stopping = True
            self._queue.put(None)

    def close(self) -> None:
        """Run what was submitted, then stop the thread and wait for it; idempotent."""
        self.request_stop()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()

    @property
    def running(self) -> bool:
        """Whether the thread is alive."""
        return self._thread.is_alive()
