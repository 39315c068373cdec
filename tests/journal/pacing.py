"""A journal's checkpointing in the test's hands: a clock that moves only when told, a thread that checkpoints only when let."""
from __future__ import annotations

import threading

# Bounds a hang only: a checkpoint let through takes milliseconds.
_WAIT_S = 30.0


class ManualClock:
    """A monotonic clock that stands still until the test advances it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock on by `seconds`."""
        self.now += seconds


class Permits(threading.Semaphore):
    """The checkpoint thread's permits, none until the test lets it checkpoint, one checkpoint at a time."""

    def __init__(self) -> None:
        super().__init__(0)
        self._asked = threading.Condition()
        self._asks = 0
        self._given = 0

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        # The thread asks before each checkpoint: asking for the next means the last one is done.
        with self._asked:
            self._asks += 1
            self._asked.notify_all()
        return super().acquire(blocking, timeout)

    def let_one(self) -> None:
        """Let the thread checkpoint once; return when that checkpoint is done (the thread asks for the next permit)."""
        self._given += 1
        self.release()
        # The n-th ask takes the n-th permit, whichever of the two came first.
        with self._asked:
            assert self._asked.wait_for(lambda: self._asks > self._given, timeout=_WAIT_S), "the checkpoint thread did not checkpoint"

