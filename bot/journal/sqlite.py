"""The SQLite journal: every strategy event is on disk before the bus delivers it, and recovery reads it back."""
from __future__ import annotations

import logging
import os
import sqlite3
import time
import weakref
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self, TypeVar

import orjson

from bot.events import Event, PortfolioSnapshot
from bot.journal.checkpoint import CheckpointPacing, CheckpointPolicy, WalCheckpointer, run_checkpoint
from bot.journal.lock import JournalLock
from bot.journal.records import (
    JOURNAL_EXTRAS,
    JournalledState,
    JournalledTrade,
    pending_order_record,
    portfolio_record,
    position_record,
    trade_record,
)
from bot.journal.schema import JournalError, open_checkpoint_connection, open_database
from bot.journal.writer import JournalWriter, writes
from bot.journal.writer_thread import Completion, WriterThread
from bot.trading.journalled import JournalledPosition, PendingOrder

STRATEGY_EVENT_LIMIT: Final[int] = 1000
T = TypeVar("T")

_ORDER_COLUMNS: Final[tuple[str, ...]] = (
    "client_id",
    "symbol",
    "side",
    "quantity",
    "intent",
    "position_id",
    "reason",
    "ref_price",
    "submitted_ts",
    "filled_quantity",
    "pair_group",
    "order_type",
    "limit_price",
    "stop_price",
    "rung",
)


class _TurnWrites:
    """An open turn's writes: queued on the loop, run on the writer thread at the commit (or before a read in the turn).

    A write may run twice (its group's transaction was lost, so the turn is written again alone):
    each is SQL on the journal's connection and nothing else.
    """

    __slots__ = ("queued", "handed_over", "began", "error")

    def __init__(self) -> None:
        # Loop side: writes not handed to the thread yet, and whether some were.
        self.queued: list[Callable[[], object]] = []
        self.handed_over = False
        # Writer-thread side: whether the turn's transaction was begun, and what failed it.
        self.began = False
        self.error: BaseException | None = None


_NOTHING_TO_COMMIT: Final[Completion[None]] = Completion.finished(None)
_LET_THE_CHECKPOINTER_RUN_S: Final[float] = 0.001
# Meta keys (+ strategy id) of the numbers a journal moved aside by `run --fresh` had used: carry_numbering.
CARRIED_ORDERS: Final[str] = "numbering.orders:"
CARRIED_POSITIONS: Final[str] = "numbering.positions:"
# Strategy turns one commit may take, of those queued when the writer thread comes to them: a
# commit costs about as much as a turn's writes. Every turn of a group, the first included, waits
# for the writes of the whole group (16 turns: about 1-2 ms on this host) and for a checkpoint the
# commit may carry; those queued behind it no longer wait for a commit each.
TURNS_PER_COMMIT: Final[int] = 16


class Journal:
    """An SQLite journal (one file, WAL) of strategy state, written before the event bus delivers.

    Subscribe `record` to the bus before any other subscriber: the bus calls subscribers in
    order, so each change is committed to disk before anything else hears the event. Each
    strategy's rows are keyed by its id and never mix with another's.

    All of the SQL runs on the journal's writer thread (bot/journal/writer_thread.py), which
    owns the connection, in the order it was asked for. Outside a turn every write and read
    waits for it: committed (or read) on return, a JournalError raised on the caller's thread.
    Inside a turn (`begin_turn` .. `commit_turn`) writes only queue up; the commit hands them
    over and returns at once with a Completion, done once they are committed, or failed (an
    error of any of them fails the whole turn: nothing of it kept). Turns the writer thread finds
    queued one behind another (up to `turns_per_commit`) share one commit, each a savepoint in
    it: one SQLite commit costs about what a turn's writes cost, and a thousand strategies trading
    on one candle would otherwise queue a thousand of them. A thread of the journal's
    own checkpoints the WAL into the file (bot/journal/checkpoint.py), so a commit carries a
    checkpoint only when writes never pause long enough for the WAL to start over; `close`
    runs what is queued, stops both threads and checkpoints once more. `lock`: the journal's
    lock already held by the caller (taken over, released on close), instead of taking it here.
    `checkpoint_pacing`: the clock and permits the checkpointing goes by (real time, unheld by default).
    """

    def __init__(
        self,
        path: Path | str,
        strategy_event_limit: int = STRATEGY_EVENT_LIMIT,
        checkpoints: CheckpointPolicy | None = None,
        log: logging.Logger | None = None,
        lock: JournalLock | None = None,
        turns_per_commit: int = TURNS_PER_COMMIT,
        checkpoint_pacing: CheckpointPacing | None = None,
    ) -> None:
        if turns_per_commit < 1:
            raise ValueError(f"turns_per_commit must be >= 1, got {turns_per_commit}")
        self.path = Path(path)
        self._log = log if log is not None else logging.getLogger("bot.journal")
        policy = checkpoints if checkpoints is not None else CheckpointPolicy()
        # One writer per journal: a second process (another daemon on the same path) is refused
        # here, before it reads or writes anything. Held until close; the kernel drops it on kill -9.
        # Locked by its real path: a symlinked name must not get a lock file of its own.
        real = Path(os.path.realpath(self.path))
        if lock is None:
            self._lock = JournalLock(real)
            self._lock.acquire()
        elif not lock.held or lock.journal != real:
            # A lock handed over (bot run --fresh held it while moving the old journal aside) must be this journal's.
            raise ValueError(f"journal {self.path}: the lock handed over is {'not held' if not lock.held else 'for ' + str(lock.journal)}")
        else:
            self._lock = lock
        try:
            self._conn = open_database(self.path, wal_size_limit=policy.wal_size_limit)
        except BaseException:
            self._lock.release()
            raise
        try:
            self._writer = JournalWriter(self._conn, self.path, strategy_event_limit)
            # Nothing the threads hold refers back to the journal, so a journal dropped without
            # close is still freed, and its finalizers stop them.
            self._checkpointer = WalCheckpointer(
                partial(open_checkpoint_connection, self.path),
                self.path,
                policy,
                self._log,
                checkpoint_pacing if checkpoint_pacing is not None else CheckpointPacing(),
            )
            self._checkpointer.start()
            weakref.finalize(self, self._checkpointer.request_stop)
            # From here on the connection is the writer thread's alone.
            self._thread = WriterThread(f"journal-writer {self.path.name}", self._log, batch_limit=turns_per_commit)
            self._thread.start()
            weakref.finalize(self, self._thread.request_stop)
        except sqlite3.Error as exc:
            self._conn.close()
            self._lock.release()
            raise JournalError(f"{self.path}: cannot open the journal's checkpoint connection: {exc}") from exc
        except BaseException:
            self._conn.close()
            self._lock.release()
            raise
        self._closed = False
        # The open turn's writes (loop side), or None outside a turn.
        self._turn: _TurnWrites | None = None
        # Checkpoints the WAL's size forced onto the writer thread: 0 while writes pause now and then.
        self.writer_checkpoints = 0
        # Commits that kept several strategy turns (queued together), and the turns they kept.
        self.group_commits = 0
        self.grouped_turns = 0

    # -- writing --------------------------------------------------------------------------------
    def record(self, event: Event) -> None:
        """Journal one event in its own transaction, committed before returning (a bus subscriber), or queue it in the open turn."""
        if not writes(event):  # a market event, or one journalled with another: no SQL, no wait
            return
        turn = self._turn
        if turn is not None:
            turn.queued.append(partial(self._writer.record, event))
        else:
            self._call(self._record_now, event)

    # -- turns: one transaction for all of a strategy turn's writes (bot.journal.turns) -------------
    def begin_turn(self) -> None:
        """Queue every write (events, daemon facts, snapshots) until `commit_turn`: one transaction for them all."""
        if self._turn is not None:
            raise RuntimeError("a journal turn is already open")
        self._turn = _TurnWrites()

    @property
    def turn_writes(self) -> bool:
        """Whether the open turn has written anything yet (False outside a turn)."""
        turn = self._turn
        return turn is not None and (bool(turn.queued) or turn.handed_over)

    def commit_turn(self, notify: Callable[[], object] | None = None) -> Completion[None]:
        """Hand the turn's writes over to be committed as one transaction, without waiting.

        The Completion fails with the JournalError of the first write that could not be made, or
        of the commit: then nothing of the turn is kept. `notify` is called on the writer thread
        once it is done; a turn that wrote nothing is done at once (no thread, no notify).
        """
        turn = self._turn
        if turn is None:
            raise RuntimeError("no journal turn is open")
        self._turn = None
        if not turn.queued and not turn.handed_over:
            return _NOTHING_TO_COMMIT
        if self._closed:
            return Completion.failed(self._closed_error())
        part, turn.queued = turn.queued, []
        return self._thread.submit_member((turn, part), self._commit_turns_now, notify)

    def snapshot_equity(self, strategy_id: str, ts: int, portfolio: PortfolioSnapshot) -> None:
        """Store a strategy's end-of-day equity snapshot without a trade (the latest of a UTC day wins)."""
        self.snapshot_equities(ts, [(strategy_id, portfolio)])

    def snapshot_equities(self, ts: int, portfolios: list[tuple[str, PortfolioSnapshot]]) -> None:
        """`snapshot_equity` of many strategies in one transaction (all or none), committed on return (or with the open turn).

        A thousand strategies' snapshots are one wait for the writer thread, not a thousand.
        """
        if portfolios:
            self._write(partial(self._snapshots_now, ts, portfolios))

    # -- recovery reads -------------------------------------------------------------------------
    def strategy_states(self) -> dict[str, JournalledState]:
        """Every journalled strategy's last lifecycle state, by strategy id."""
        rows = self._query("SELECT strategy_id, state, change, policy, last_error, ts FROM strategy_states ORDER BY strategy_id")
        return {sid: JournalledState(state, change, policy, last_error, ts) for sid, state, change, policy, last_error, ts in rows}

    def open_positions(self, strategy_id: str) -> list[dict[str, Any]]:
        """A strategy's open and partially closed positions, oldest first: the journalled PositionState plus JOURNAL_EXTRAS, as dicts."""
        rows = self._query(
            "SELECT state, trail_anchor, closed_quantity, exit_value FROM positions "
            "WHERE strategy_id = ? AND status != 'closed' ORDER BY opened_ts, number, position_id",
            (strategy_id,),
        )
        positions = []
        for state_text, *extras in rows:
            state: dict[str, Any] = orjson.loads(state_text)
            state.update(zip(JOURNAL_EXTRAS, extras))
            positions.append(state)
        return positions

    def position_records(self, strategy_id: str) -> list[JournalledPosition]:
        """A strategy's open and partially closed positions as the typed records recovery restores, oldest first."""
        where = f"{self.path}: table positions, strategy {strategy_id!r}, column state"
        return [position_record(row, where) for row in self.open_positions(strategy_id)]

    def order_records(self, strategy_id: str) -> list[PendingOrder]:
        """A strategy's pending orders as the typed records recovery restores, in submission order."""
        return [pending_order_record(row, strategy_id) for row in self.pending_orders(strategy_id)]

    def portfolio_record(self, strategy_id: str) -> PortfolioSnapshot | None:
        """The strategy's latest journalled portfolio snapshot as a typed record, or None."""
        snapshot = self.portfolio(strategy_id)
        return None if snapshot is None else portfolio_record(snapshot)

    def pending_orders(self, strategy_id: str) -> list[dict[str, Any]]:
        """A strategy's submitted, not yet (fully) filled or cancelled orders, in submission order."""
        rows = self._query(
            "SELECT " + ", ".join(_ORDER_COLUMNS) + " FROM orders WHERE strategy_id = ? AND status = 'submitted' ORDER BY submitted_ts, number, client_id",
            (strategy_id,),
        )
        return [dict(zip(_ORDER_COLUMNS, row)) for row in rows]

    def portfolio(self, strategy_id: str) -> dict[str, Any] | None:
        """The latest portfolio snapshot carried by one of the strategy's events, or None."""
        rows = self._query("SELECT snapshot FROM portfolio WHERE strategy_id = ?", (strategy_id,))
        return orjson.loads(rows[0][0]) if rows else None

    def closed_trades(self, strategy_id: str) -> list[JournalledTrade]:
        """The strategy's closed trades, each with its closing fill, in closing order."""
        rows = self._query("SELECT id, record FROM trades WHERE strategy_id = ? ORDER BY id", (strategy_id,))
        return [trade_record(record, f"{self.path}: table trades, row {id_} of {strategy_id!r}, column record") for id_, record in rows]

    def last_order_number(self, strategy_id: str) -> int:
        """The largest n of the strategy's client ids `<strategy_id>-<n>` (0 if none), to continue numbering.

        Numbers carried over from a journal moved aside (`carry_numbering`) count as used.
        """
        rows = self._query(
            "SELECT max(coalesce((SELECT max(number) FROM orders WHERE strategy_id = ?), 0),"
            " coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?), 0))",
            (strategy_id, CARRIED_ORDERS + strategy_id),
        )
        return int(rows[0][0])

    def last_position_number(self, strategy_id: str) -> int:
        """The largest n of the strategy's position ids `<strategy_id>-p<n>` (0 if none), to continue numbering (see `last_order_number`)."""
        rows = self._query(
            "SELECT max(coalesce((SELECT max(number) FROM positions WHERE strategy_id = ?), 0),"
            " coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?), 0))",
            (strategy_id, CARRIED_POSITIONS + strategy_id),
        )
        return int(rows[0][0])

    def carry_numbering(self, numbering: Mapping[str, tuple[int, int]]) -> None:
        """Count each strategy's (last order number, last position number) of a journal moved aside as used, in one commit.

        On an exchange a client id is the order's name: a new journal numbering from 1 again would
        reuse the ids of the orders the old one placed, and a lookup by id could find one of those.
        """
        if numbering:
            self._write(partial(self._carry_now, dict(numbering)))

    def _carry_now(self, numbering: dict[str, tuple[int, int]]) -> None:
        def carry() -> None:
            for sid, numbers in numbering.items():
                for prefix, number in zip((CARRIED_ORDERS, CARRIED_POSITIONS), numbers):
                    self._meta_now("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (prefix + sid, str(number)), "write")

        self._all_or_none(carry)

    def strategy_events(self, strategy_id: str) -> list[dict[str, Any]]:
        """The bounded log of the strategy's other events (signals, rejections, errors), oldest first."""
        rows = self._query("SELECT type, ts, seq, payload FROM strategy_events WHERE strategy_id = ? ORDER BY n", (strategy_id,))
        return [{"type": type_, "ts": ts, "seq": seq, "payload": orjson.loads(payload)} for type_, ts, seq, payload in rows]

    # -- daemon facts -------------------------------------------------------------------------
    def set_meta(self, key: str, value: str) -> None:
        """Store one daemon fact (feed position, a strategy's file), committed on return (or with the open turn)."""
        self._write(partial(self._meta_now, "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value), "write"))

    def delete_meta(self, key: str) -> None:
        """Forget one daemon fact (no error when it is not there), committed on return (or with the open turn)."""
        self._write(partial(self._meta_now, "DELETE FROM meta WHERE key = ?", (key,), "delete"))

    def meta_with_prefix(self, prefix: str) -> dict[str, str]:
        """Every daemon fact whose key starts with `prefix`, keyed by the rest of the key."""
        rows = self._query("SELECT key, value FROM meta WHERE substr(key, 1, ?) = ?", (len(prefix), prefix))
        return {key[len(prefix):]: value for key, value in rows}

    def get_meta(self, key: str) -> str | None:
        """A stored daemon fact, or None."""
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        """Run the writes handed over, stop the checkpoint thread, checkpoint the WAL into the file, close it (idempotent).

        A turn still open is dropped, as a kill -9 would drop it: nothing of it was delivered or sent.
        """
        if not self._closed:
            self._closed = True
            self._turn = None
            try:
                self._checkpointer.stop()
                # Behind every write handed over before: they are committed first.
                self._thread.call(self._close_now)
            finally:
                self._thread.close()
                self._lock.release()

    @property
    def checkpointing(self) -> bool:
        """Whether the journal's checkpoint thread is running (it stops on close)."""
        return self._checkpointer.running

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- on the writer thread ---------------------------------------------------------------------
    def _call(self, work: Callable[..., T], *args: Any) -> T:
        """Run `work(*args)` on the writer thread and wait; inside a turn, the turn's queued writes run first."""
        if self._closed:
            raise self._closed_error()
        turn = self._turn
        if turn is not None and turn.queued:
            part, turn.queued = turn.queued, []
            turn.handed_over = True
            self._thread.submit(partial(self._turn_part_now, turn, part))
        return self._thread.call(work, *args)

    def _closed_error(self) -> JournalError:
        return JournalError(f"{self.path}: the journal is closed")

    def _write(self, write: Callable[[], object]) -> None:
        """One write: queued in the open turn, else committed on the writer thread before returning."""
        turn = self._turn
        if turn is not None:
            turn.queued.append(write)
        else:
            self._call(self._write_now, write)

    def _record_now(self, event: Event) -> None:
        self._writer.record(event)
        self._after_commit()

    def _write_now(self, write: Callable[[], object]) -> None:
        write()
        self._after_commit()

    def _meta_now(self, sql: str, params: tuple[str, ...], verb: str) -> None:
        try:
            self._writer.statement(sql, params)
        except sqlite3.Error as exc:
            raise JournalError(f"{self.path}: could not {verb} {params[0]!r}: {exc}") from exc

    def _snapshots_now(self, ts: int, portfolios: list[tuple[str, PortfolioSnapshot]]) -> None:
        def snapshot() -> None:
            for strategy_id, portfolio in portfolios:
                self._writer.snapshot_equity(strategy_id, ts, portfolio)

        self._all_or_none(snapshot)

    def _all_or_none(self, writes: Callable[[], None]) -> None:
        """Run `writes` in the open turn's transaction, else in one of their own: all of them kept, or none."""
        writer = self._writer
        if writer.in_turn:
            writes()
            return
        writer.begin_turn()
        try:
            writes()
        except BaseException:
            writer.rollback_turn()
            raise
        writer.commit_turn()

    def _turn_part_now(self, turn: _TurnWrites, part: list[Callable[[], object]]) -> None:
        """Run some of a turn's writes in its transaction; the first that fails ends the turn (rolled back, the rest skipped)."""
        if turn.error is not None:
            return
        writer = self._writer
        try:
            if not turn.began:
                writer.begin_turn()
                turn.began = True
            for write in part:
                write()
        except BaseException as exc:  # noqa: BLE001 - the turn's commit reports it
            turn.error = exc
            writer.rollback_turn()

    def _commit_turns_now(self, turns: list[tuple[_TurnWrites, list[Callable[[], object]]]]) -> list[BaseException | None]:
        """Commit the turns queued one behind another in one transaction, each a savepoint in it; each turn's failure.

        A turn whose write fails is rolled back alone. If SQLite drops the whole transaction (some
        errors do: a full disk, an I/O error) or its commit fails, each turn is written again in its
        own transaction, as it would have been without the group, so one turn's failure is never another's.
        """
        first = turns[0][0]
        if first.began or first.error is not None:
            # It read the journal mid-turn, so its transaction is open already: it commits alone. Only
            # the first can have: its early writes went over as a plain item, which ends a batch.
            return [self._commit_alone(*turns[0]), *(self._commit_turns_now(turns[1:]) if len(turns) > 1 else [])]
        if len(turns) == 1 or any(turn.began or turn.error is not None for turn, _ in turns):
            return [self._commit_alone(turn, part) for turn, part in turns]
        writer = self._writer
        errors: list[BaseException | None] = [None] * len(turns)
        writer.begin_group()
        try:
            for index, (_, part) in enumerate(turns):
                writer.begin_turn()
                try:
                    for write in part:
                        write()
                    writer.commit_turn()
                except BaseException as exc:  # noqa: BLE001 - the turn's own failure, unless it took the group with it
                    writer.rollback_turn()
                    if writer.group_lost:
                        writer.abandon_group()
                        return [self._commit_alone(turn, part) for turn, part in turns]
                    errors[index] = exc
            writer.commit_group()
        except JournalError:
            writer.abandon_group()
            return [self._commit_alone(turn, part) for turn, part in turns]
        except BaseException:
            writer.abandon_group()
            raise
        kept = errors.count(None)
        if kept > 1:
            self.group_commits += 1
            self.grouped_turns += kept
        self._after_commit()
        return errors

    def _commit_alone(self, turn: _TurnWrites, part: list[Callable[[], object]]) -> BaseException | None:
        try:
            self._commit_turn_now(turn, part)
        except BaseException as exc:  # noqa: BLE001 - the turn's completion reports it
            return exc
        return None

    def _commit_turn_now(self, turn: _TurnWrites, part: list[Callable[[], object]]) -> None:
        self._turn_part_now(turn, part)
        if turn.error is not None:
            raise turn.error
        if turn.began:
            self._writer.commit_turn()  # JournalError, and nothing kept, when it cannot be
            self._after_commit()

    def _after_commit(self) -> None:
        # Never raises: what called it has committed, and its callers must hear so.
        try:
            self._checkpoint_after_commit()
        except Exception:  # noqa: BLE001 - logged: the commit stands
            self._log.exception("journal %s: checkpoint after a commit failed (the WAL keeps every commit)", self.path)

    def _checkpoint_after_commit(self) -> None:
        if self._writer.in_turn:
            return
        checkpointer = self._checkpointer
        if checkpointer.writer_should_checkpoint:
            self._checkpoint_here()
        elif checkpointer.starved():
            # Asleep, the writer leaves the GIL to the starved thread (whoever waits on the writer is
            # blocked), which finishes the statement that holds the WAL; then it checkpoints itself.
            time.sleep(_LET_THE_CHECKPOINTER_RUN_S)
            self._checkpoint_here()

    def _close_now(self) -> None:
        try:
            run_checkpoint(self._conn)
        except sqlite3.Error as exc:
            # Every commit is in the WAL, which the next open replays: log and close anyway.
            self._log.error("journal %s: final WAL checkpoint failed (the WAL keeps every event): %s", self.path, exc)
        finally:
            self._conn.close()

    def _checkpoint_here(self) -> None:
        """The WAL has outgrown the thread's checkpoints: checkpoint once on the writing connection, right after a commit."""
        try:
            result = run_checkpoint(self._conn)
        except sqlite3.Error as exc:
            # The event is committed; a failed checkpoint only leaves the frames in the WAL.
            self._checkpointer.writer_should_checkpoint = False
            self._checkpointer.report_failure(exc)
            return
        # Busy: the thread is checkpointing (PASSIVE does not wait for it); try after the next commit.
        if not result.busy:
            # Cleared once tried: the thread sets it again, at most once per checkpoint of its own.
            self._checkpointer.writer_should_checkpoint = False
            self.writer_checkpoints += 1

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        return self._call(self._query_now, sql, params)

    def _query_now(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise JournalError(f"{self.path}: journal read failed: {exc}") from exc
