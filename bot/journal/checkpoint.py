"""Checkpointing the journal's WAL from a thread of its own, so a commit on the event loop never carries it.

SQLite's automatic checkpoint runs inside the commit that makes the WAL reach 1000 pages, on the
committing thread: it copies the WAL into the database file and syncs both, which stalled the
daemon's event loop for milliseconds. The journal's writing connection turns it off, and a
WalCheckpointer checkpoints (PASSIVE: it never waits for a lock and never blocks the writer) on
a connection of its own, from a thread whose sqlite3 calls release the GIL. Durability does not
change: a commit is in the WAL when it returns, whoever copies it into the file later.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

# A failing checkpoint is logged on its first failure, then at most this often while it goes on.
_FAILURE_LOG_EVERY_S: Final[float] = 60.0


@dataclass(frozen=True, slots=True)
class CheckpointPolicy:
    """When the journal's checkpoint thread copies the WAL into the database file, and when the writer must."""

    # While nothing is written, a checkpoint this often (it finds nothing to copy: no I/O).
    interval_s: float = 1.0
    # Once a checkpoint finds the WAL changed, the next comes this soon: while events are written
    # each copies a few hundred frames, not thousands at once. As synchronous=NORMAL syncs the
    # WAL only at a checkpoint, this also bounds what an OS crash can take back to about a
    # second of commits (SQLite's automatic checkpoint synced only every 1000 pages).
    busy_interval_s: float = 0.05
    # The WAL starts over from its beginning only when a write begins after a checkpoint that
    # copied every frame; writes with no pause (a recorded feed played fast) never leave the
    # thread that moment. Past this many frames (4 KiB pages: 16 MiB) the writer checkpoints
    # once itself, right after a commit, copying only the few frames the thread has not yet
    # (SQLite's automatic checkpoint copied all, every 1000): the bound on the WAL in any case.
    writer_frames: int = 4000
    # When the WAL starts over, the writer truncates its file to this size if it grew past it
    # (a reader held it back): above writer_frames' size, so a busy WAL is not cut and regrown.
    wal_size_limit: int = 32 * 1024 * 1024
    # Warn when checkpoints have stopped short of the WAL's end for this long: a reader is
    # holding an old snapshot and the WAL grows until it lets go.
    stuck_warning_s: float = 60.0
    # The thread can go without the GIL while the event loop and the journal's writer thread hand
    # work back and forth (CPython lets a waiting thread take it only after 5 ms without a switch),
    # and starved mid-statement it holds the WAL from starting over: when it has not run for this
    # long (and at least two interval_s), the writer lets it run and checkpoints itself after a
    # commit, at most once per busy_interval_s, until the thread runs again.
    writer_takes_over_s: float = 3.0

    def __post_init__(self) -> None:
        if min(self.interval_s, self.busy_interval_s, self.stuck_warning_s, self.writer_takes_over_s) <= 0:
            raise ValueError(f"checkpoint intervals must be > 0: {self}")
        if self.writer_frames < 1 or self.wal_size_limit < 0:
            raise ValueError(f"need writer_frames >= 1 and wal_size_limit >= 0: {self}")


@dataclass(frozen=True, slots=True)
class CheckpointPacing:
    """What the checkpoint thread and the writer's take-over read the time from, and what lets the thread checkpoint."""

    # Every "has the thread run lately" and "for how long" is read from this clock.
    clock: Callable[[], float] = time.monotonic
    # When given, the thread takes one permit before each checkpoint: whoever holds them back
    # (a test) holds the thread, and each release lets it checkpoint once.
    permits: threading.Semaphore | None = None


@dataclass(frozen=True, slots=True)
class CheckpointResult:
    """One `PRAGMA wal_checkpoint` answer: another checkpoint was running, frames in the WAL, frames copied so far."""

    busy: bool
    wal_frames: int
    copied_frames: int

    @property
    def complete(self) -> bool:
        """Every frame is in the database file: the next write starts the WAL over."""
        return not self.busy and self.copied_frames >= self.wal_frames


def run_checkpoint(conn: sqlite3.Connection) -> CheckpointResult:
    """One PASSIVE checkpoint on `conn` (it never waits for a lock); raises sqlite3.Error."""
    busy, wal_frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    # -1 when the database is not in WAL mode (never a journal): nothing to copy.
    return CheckpointResult(bool(busy), max(wal_frames, 0), max(copied, 0))


class WalCheckpointer:
    """A thread, with its own connection, that checkpoints a WAL database by time and by WAL size."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        path: Path,
        policy: CheckpointPolicy,
        log: logging.Logger,
        pacing: CheckpointPacing = CheckpointPacing(),
    ) -> None:
        self._connect = connect
        self._path = path
        self._policy = policy
        self._log = log
        self._clock = pacing.clock
        self._permits = pacing.permits
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Set by the thread, read and cleared by the writer after its commits: one attribute read
        # on the hot path; a stale value only moves the writer's checkpoint by a commit.
        self.writer_should_checkpoint = False
        # Times (on the pacing clock) of the thread's last checkpoint and of the writer's last one in its stead.
        self._ticked_at = self._clock()
        self._writer_took_over_at = 0.0
        self.checkpoints = 0
        self.failures = 0
        self._last: CheckpointResult | None = None
        self._failing_since: float | None = None
        self._failure_logged = 0.0
        self._short_since: float | None = None
        self._stuck_warned = False

    def start(self) -> None:
        """Open the thread's connection (raises sqlite3.Error if it cannot) and start the thread."""
        if self._thread is not None:
            raise RuntimeError("the checkpoint thread was already started")
        conn = self._connect()
        # A daemon thread: a journal never closed (a script, a crash) must not keep the process
        # alive; stopped mid-checkpoint, SQLite still has every frame in the WAL.
        self._thread = threading.Thread(target=self._run, args=(conn,), name=f"journal-checkpoint {self._path.name}", daemon=True)
        try:
            self._thread.start()
        except BaseException:
            conn.close()
            raise

    def request_stop(self) -> None:
        """Tell the thread to stop after its current checkpoint, without waiting (safe from any thread)."""
        self._stop.set()
        self._release_held()

    def stop(self) -> None:
        """Stop the thread and wait until it has closed its connection; idempotent."""
        self._stop.set()
        self._release_held()
        if self._thread is not None:
            self._thread.join()

    @property
    def running(self) -> bool:
        """Whether the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def _run(self, conn: sqlite3.Connection) -> None:
        try:
            wait = self._policy.interval_s
            while not self._stop.wait(wait):
                if self._permits is not None:
                    self._permits.acquire()
                    if self._stop.is_set():
                        break
                wait = self.tick(conn)
        except BaseException as exc:  # noqa: BLE001 - a thread's exception would only reach stderr
            self._log.error("journal %s: the checkpoint thread stopped: %s: %s", self._path, type(exc).__name__, exc)
        finally:
            conn.close()

    def _release_held(self) -> None:
        # A thread held for a permit would never see the stop.
        if self._permits is not None:
            self._permits.release()

    def starved(self) -> bool:
        """Whether the writer should step in after its commit: the thread has not run for a while (see the policy)."""
        now = self._clock()
        policy = self._policy
        # A thread asleep for its idle interval is not starved: at least two of them.
        quiet = max(policy.writer_takes_over_s, 2 * policy.interval_s)
        if now - self._ticked_at < quiet or now - self._writer_took_over_at < policy.busy_interval_s:
            return False
        self._writer_took_over_at = now
        return True

    def tick(self, conn: sqlite3.Connection) -> float:
        """One checkpoint on `conn`, its outcome logged; returns the wait before the next."""
        self._ticked_at = self._clock()
        try:
            result = run_checkpoint(conn)
        except Exception as exc:  # noqa: BLE001 - nothing is lost: the frames stay in the WAL
            self.report_failure(exc)
            return self._policy.interval_s
        self.checkpoints += 1
        if self._failing_since is not None:
            self._log.warning("journal %s: WAL checkpoints work again, after %d failed", self._path, self.failures)
            self._failing_since = None
        if result.wal_frames >= self._policy.writer_frames:
            self.writer_should_checkpoint = True
        self._watch_stuck(result)
        changed = result != self._last
        self._last = result
        return self._policy.busy_interval_s if changed else self._policy.interval_s

    def report_failure(self, exc: Exception) -> None:
        """Log a failed checkpoint (the thread's or the writer's): the first of a run, then at most once a minute."""
        self.failures += 1
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
        elif now - self._failure_logged < _FAILURE_LOG_EVERY_S:
            return
        self._failure_logged = now
        self._log.error(
            "journal %s: WAL checkpoint failed (every event stays in the WAL; retrying): %s: %s", self._path, type(exc).__name__, exc
        )

    def _watch_stuck(self, result: CheckpointResult) -> None:
        # A checkpoint stops short now and then (the writer's read mark lags a commit): only a
        # long run of them means a reader is holding an old snapshot.
        if result.complete:
            if self._stuck_warned:
                self._log.warning("journal %s: WAL checkpoints complete again (%d frames)", self._path, result.wal_frames)
            self._short_since = None
            self._stuck_warned = False
            return
        now = self._clock()
        if self._short_since is None:
            self._short_since = now
        elif not self._stuck_warned and now - self._short_since >= self._policy.stuck_warning_s:
            self._stuck_warned = True
            self._log.warning(
                "journal %s: WAL checkpoints have stopped short for %.1f s (%d of %d frames copied): a reader is holding "
                "an old snapshot, and the WAL grows until it lets go",
                self._path,
                now - self._short_since,
                result.copied_frames,
                result.wal_frames,
            )
