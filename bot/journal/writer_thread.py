"""The journal's writer thread: one thread runs every piece of the journal's SQL, in the order it was handed over.

The daemon's event loop hands work over instead of running the SQL itself, so a strategy's
turn no longer waits behind the other strategies' commits. sqlite3 releases the GIL while
SQLite works, so the loop runs meanwhile. A caller either waits for its work (`call`: the
result, or the exception re-raised on the caller's thread) or is told when it is done
(`submit` with `notify`, called on the writer thread: hand it to the loop, never block there).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Generic, ParamSpec, TypeVar

T = TypeVar("T")
P = ParamSpec("P")


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
            self._result = work()
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for it
            self._error = exc
        self._done.set()
        notify = self._notify
        if notify is not None:
            try:
                notify()
            except Exception as exc:  # noqa: BLE001 - the loop is gone (closed): nobody left to tell
                log.error("journal writer: could not report finished work: %s: %s", type(exc).__name__, exc)


_Item = tuple[Callable[[], object], Completion[object]]


def _serve(queue: SimpleQueue[_Item | None], log: logging.Logger) -> None:
    # A function, not a method: the thread holds only its queue, so a journal dropped without close is freed.
    while True:
        item = queue.get()
        if item is None:
            return
        item[1]._run(item[0], log)
        # Not kept while waiting for the next: the work may hold the journal, which must be freed when dropped.
        del item


class WriterThread:
    """One thread that runs work items one after another, in the order they were submitted (FIFO)."""

    def __init__(self, name: str, log: logging.Logger) -> None:
        self._queue: SimpleQueue[_Item | None] = SimpleQueue()
        # A daemon thread, as the checkpoint thread: a journal never closed must not keep the process
        # alive; what it had not committed is lost as in a kill -9, and no order of it was sent.
        self._thread = threading.Thread(target=_serve, args=(self._queue, log), name=name, daemon=True)
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
