"""Applies each strategy event to the journal tables: one committed transaction per event, or per turn while one is open."""
from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, Final

from msgspec.structs import replace

from bot.event_codec import payload_json, record_json
from bot.events import (
    Event,
    FillRecord,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    PortfolioSnapshot,
    PositionClosed,
    PositionOpened,
    PositionReduced,
    PositionState,
    StopUpdated,
    StrategyStateChanged,
    TrailingActivated,
)
from bot.journal.records import JournalledTrade, json_object, stored_position, stored_position_text
from bot.journal.schema import JournalError

# date.fromordinal(_EPOCH_ORDINAL) is 1970-01-01: day n after the epoch is ordinal + n.
_EPOCH_ORDINAL: Final[int] = date(1970, 1, 1).toordinal()
_DAY_MS: Final[int] = 86_400_000

_INSERT_ORDER: Final[str] = """
    INSERT OR REPLACE INTO orders (strategy_id, client_id, number, symbol, side, quantity, intent, position_id,
        reason, ref_price, status, submitted_ts, submitted_seq, pair_group, order_type, limit_price, stop_price, rung)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'submitted', ?, ?, ?, ?, ?, ?, ?)"""
# A fill completes its order (an exchange's partial fills are summed into one fill, which is
# short of the order's quantity only when the rest was cancelled).
_FILL_ORDER: Final[str] = """
    UPDATE orders SET filled_quantity = filled_quantity + ?1, status = 'filled', done_ts = ?2, done_seq = ?3
    WHERE strategy_id = ?4 AND client_id = ?5"""
_INSERT_FILL: Final[str] = """
    INSERT INTO fills (strategy_id, client_id, symbol, side, price, quantity, fee, liquidity, reason, fill_ts, ts, seq)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
_CANCEL_ORDER: Final[str] = """
    UPDATE orders SET status = 'cancelled', done_ts = ?, done_seq = ?
    WHERE strategy_id = ? AND client_id = ? AND status = 'submitted'"""
# REPLACE (not an upsert): a reused id (a restart that did not continue numbering) starts afresh.
_INSERT_POSITION: Final[str] = """
    INSERT OR REPLACE INTO positions (strategy_id, position_id, number, symbol, status, state, client_id,
        opened_ts, opened_seq, updated_ts, updated_seq)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?8, ?9)"""
# An upsert, so a position the journal never saw open (journal attached mid-run) is still kept.
_REDUCE_POSITION: Final[str] = """
    INSERT INTO positions (strategy_id, position_id, number, symbol, status, state, closed_quantity, exit_value,
        opened_ts, opened_seq, updated_ts, updated_seq)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?9, ?10)
    ON CONFLICT (strategy_id, position_id) DO UPDATE SET
        status = excluded.status, state = excluded.state,
        closed_quantity = closed_quantity + excluded.closed_quantity, exit_value = exit_value + excluded.exit_value,
        updated_ts = excluded.updated_ts, updated_seq = excluded.updated_seq"""
_SELECT_POSITION_STATE: Final[str] = "SELECT state, trail_anchor FROM positions WHERE strategy_id = ? AND position_id = ?"
_PATCH_POSITION: Final[str] = """
    UPDATE positions SET state = ?, trail_anchor = ?, updated_ts = ?, updated_seq = ?
    WHERE strategy_id = ? AND position_id = ?"""
# json_set keeps the other numbers' text as stored, so no float is re-rendered (and rounded).
_CLOSE_POSITION: Final[str] = """
    UPDATE positions SET status = 'closed', state = json_set(state, '$.status', 'closed', '$.quantity', 0.0),
        updated_ts = ?, updated_seq = ?
    WHERE strategy_id = ? AND position_id = ?"""
_INSERT_TRADE: Final[str] = "INSERT INTO trades (strategy_id, position_id, exit_ts, ts, seq, record) VALUES (?, ?, ?, ?, ?, ?)"
_UPSERT_STATE: Final[str] = """
    INSERT OR REPLACE INTO strategy_states (strategy_id, state, change, policy, last_error, ts, seq)
    VALUES (?, ?, ?, ?, ?, ?, ?)"""
_UPSERT_PORTFOLIO: Final[str] = "INSERT OR REPLACE INTO portfolio (strategy_id, snapshot, ts) VALUES (?, ?, ?)"
# The latest snapshot of the day wins, even if snapshots arrive out of order.
_UPSERT_EQUITY: Final[str] = """
    INSERT INTO equity_daily (strategy_id, day, snapshot, ts) VALUES (?, ?, ?, ?)
    ON CONFLICT (strategy_id, day) DO UPDATE SET snapshot = excluded.snapshot, ts = excluded.ts
    WHERE excluded.ts >= equity_daily.ts"""
_NEXT_EVENT_N: Final[str] = "SELECT coalesce(max(n), -1) + 1 FROM strategy_events WHERE strategy_id = ?"
_INSERT_EVENT: Final[str] = "INSERT INTO strategy_events (strategy_id, n, type, ts, seq, payload) VALUES (?, ?, ?, ?, ?, ?)"
_TRIM_EVENTS: Final[str] = "DELETE FROM strategy_events WHERE strategy_id = ? AND n <= ?"
# At open: a window made smaller since the last run applies to every strategy at once.
_TRIM_ALL_EVENTS: Final[str] = """
    DELETE FROM strategy_events AS e
    WHERE n <= (SELECT max(n) FROM strategy_events WHERE strategy_id = e.strategy_id) - ?"""


# Nothing to write, no transaction: a fill is journalled from the position event that carries it
# (`fill`), in the same transaction as the position change, so a crash can never keep one without
# the other; the order_filled event that follows only repeats it.
_NOT_WRITTEN: Final[frozenset[type[Event]]] = frozenset({OrderFilled})


def writes(event: Event) -> bool:
    """Whether `JournalWriter.record` writes anything for `event`: a strategy's event other than order_filled."""
    return event.strategy_id is not None and type(event) not in _NOT_WRITTEN


def trailing_number(identifier: str, prefix: str) -> int | None:
    """n of an id shaped `<prefix><n>`, or None for another shape."""
    if identifier.startswith(prefix):
        tail = identifier[len(prefix) :]
        if tail.isascii() and tail.isdigit():
            return int(tail)
    return None


class JournalWriter:
    """Writes strategy events into the journal tables; `record` commits before it returns, unless a turn is open.

    Between `begin_turn` and `commit_turn` every write joins one transaction (begun at the
    first write, so a turn that writes nothing costs nothing); a write that fails fails the turn,
    which its owner (bot.journal.sqlite.Journal) rolls back as a whole.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, event_limit: int) -> None:
        if event_limit < 1:
            raise ValueError(f"strategy event limit must be >= 1, got {event_limit}")
        self._conn = conn
        self._execute = conn.execute
        self._path = path
        self._event_limit = event_limit
        # Next n of the bounded event log per strategy; read from the table on first use and
        # dropped on a rollback, so it never runs ahead of what is committed.
        self._next_n: dict[str, int] = {}
        # The last UTC day computed, as (day number, 'YYYY-MM-DD'): consecutive events share it.
        self._day: tuple[int, str] = (-(2**62), "")
        # Inside a turn: whether it began its transaction. A transaction SQLite rolled back on its
        # own (some I/O errors do) must fail the turn's commit, not be started afresh mid-turn.
        self._turn = False
        self._turn_began = False
        # Inside a group (several turns, one commit): whether its transaction was begun. Each
        # turn of it is then a savepoint, released at the turn's commit, dropped at its rollback.
        self._group = False
        self._group_began = False
        # A turn of the group could not be undone on its own (its RELEASE or ROLLBACK TO failed): the
        # group must not commit, even if SQLite left the transaction open.
        self._group_broken = False
        self._handlers: dict[type[Event], Callable[[Any, str], None]] = {
            OrderSubmitted: self._order_submitted,
            OrderCancelled: self._order_cancelled,
            OrderRejected: self._order_rejected,
            PositionOpened: self._position_opened,
            PositionReduced: self._position_reduced,
            PositionClosed: self._position_closed,
            StopUpdated: self._stop_updated,
            TrailingActivated: self._trailing_activated,
            StrategyStateChanged: self._strategy_state,
        }
        try:
            conn.execute(_TRIM_ALL_EVENTS, (event_limit,))
        except sqlite3.Error as exc:
            raise JournalError(f"{path}: could not trim the strategy event log: {exc}") from exc

    def record(self, event: Event) -> None:
        """Journal one event: committed on return, or part of the open turn's transaction; market events are ignored."""
        strategy_id = event.strategy_id
        cls = type(event)
        if strategy_id is None or cls in _NOT_WRITTEN:
            return
        handler = self._handlers.get(cls, self._log_event)
        execute = self._execute
        turn = self._turn
        try:
            if turn:
                self._join_turn()
            else:
                execute("BEGIN")
            handler(event, strategy_id)
            if isinstance(event, (PositionOpened, PositionReduced, PositionClosed)):
                self._portfolio(strategy_id, event.ts, record_json(event.portfolio).decode())
            if not turn:
                execute("COMMIT")
        except BaseException as exc:
            if not turn:  # inside a turn: the whole turn is rolled back (rollback_turn)
                self._rollback()
            if isinstance(exc, (sqlite3.Error, TypeError, KeyError, ValueError)):
                raise JournalError(
                    f"{self._path}: could not journal event seq {event.seq} ({event.type} of {strategy_id!r}): "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            raise

    def statement(self, sql: str, params: tuple[Any, ...]) -> None:
        """Run one write statement: its own transaction, or part of the open turn's (a failure fails the turn)."""
        if self._turn:
            self._join_turn()
        self._execute(sql, params)

    # -- turns ----------------------------------------------------------------------------------
    def begin_turn(self) -> None:
        """Hold every write until `commit_turn`: one transaction for them all."""
        if self._turn:
            raise RuntimeError("a journal turn is already open")
        self._turn = True
        self._turn_began = False

    def commit_turn(self) -> None:
        """Commit the turn's writes (nothing to do when it wrote nothing); on failure nothing of it is kept.

        In a group the turn is only released into the group's transaction: kept once `commit_group` commits.
        """
        if not self._turn:
            raise RuntimeError("no journal turn is open")
        began = self._turn_began
        self._turn = self._turn_began = False
        if not began:
            return
        try:
            if not self._conn.in_transaction:
                raise sqlite3.OperationalError("SQLite rolled the turn's transaction back after an error")
            self._execute("RELEASE turn" if self._group else "COMMIT")
        except sqlite3.Error as exc:
            self._group_broken = self._group
            self._rollback()
            raise JournalError(f"{self._path}: could not commit the turn's events: {exc}") from exc

    def rollback_turn(self) -> None:
        """Drop the turn's writes (idempotent: also after a failed commit); in a group, only the turn's (see `group_lost`)."""
        began = self._turn_began
        self._turn = self._turn_began = False
        if not self._group:
            self._rollback()
            return
        self._next_n.clear()
        conn = self._conn
        if began and conn.in_transaction:
            try:
                conn.execute("ROLLBACK TO turn")
                conn.execute("RELEASE turn")
            except sqlite3.Error:
                self._group_broken = True  # the group is lost with it
                self._rollback()

    # -- groups: several turns in one transaction (bot.journal.sqlite.Journal's group commit) -------
    def begin_group(self) -> None:
        """Turns from now until `commit_group` share one transaction, each a savepoint of it."""
        if self._group or self._turn:
            raise RuntimeError("a journal group or turn is already open")
        self._group = True
        self._group_began = self._group_broken = False

    @property
    def group_lost(self) -> bool:
        """Whether the open group's transaction is gone (SQLite rolled it back after an error, or a turn could not be undone alone)."""
        return self._group and (self._group_broken or (self._group_began and not self._conn.in_transaction))

    def commit_group(self) -> None:
        """Commit every turn released into the group; JournalError, and none of them kept, when it cannot be."""
        if not self._group:
            raise RuntimeError("no journal group is open")
        began, broken = self._group_began, self._group_broken
        self._group = self._group_began = self._group_broken = False
        if not began:
            return
        try:
            if broken:
                raise sqlite3.OperationalError("a turn of the group could not be rolled back on its own")
            if not self._conn.in_transaction:
                raise sqlite3.OperationalError("SQLite rolled the group's transaction back after an error")
            self._execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise JournalError(f"{self._path}: could not commit the turns' events: {exc}") from exc

    def abandon_group(self) -> None:
        """Drop the group and every turn in it (idempotent)."""
        self._group = self._group_began = self._group_broken = self._turn = self._turn_began = False
        self._rollback()

    @property
    def in_turn(self) -> bool:
        """Whether a turn is open (its writes not committed yet)."""
        return self._turn

    def _join_turn(self) -> None:
        if not self._turn_began:
            if not self._group:
                self._execute("BEGIN")
            else:
                if not self._group_began:
                    self._execute("BEGIN")
                    self._group_began = True
                elif not self._conn.in_transaction:
                    raise sqlite3.OperationalError("SQLite rolled the group's transaction back after an error")
                self._execute("SAVEPOINT turn")
            self._turn_began = True
        elif not self._conn.in_transaction:
            raise sqlite3.OperationalError("SQLite rolled the turn's transaction back after an error")

    def snapshot_equity(self, strategy_id: str, ts: int, portfolio: PortfolioSnapshot) -> None:
        """Upsert the day's equity snapshot of a strategy (one statement, so its own transaction)."""
        try:
            self.statement(_UPSERT_EQUITY, (strategy_id, self._utc_day(ts), record_json(portfolio).decode(), ts))
        except (sqlite3.Error, TypeError, ValueError) as exc:
            raise JournalError(f"{self._path}: could not journal the equity snapshot of {strategy_id!r}: {exc}") from exc

    # -- handlers -------------------------------------------------------------------------------
    def _order_submitted(self, event: OrderSubmitted, sid: str) -> None:
        client_id = event.client_id
        self._execute(
            _INSERT_ORDER,
            (
                sid,
                client_id,
                trailing_number(client_id, sid + "-"),
                event.symbol,
                event.side,
                event.quantity,
                event.intent,
                event.position_id,
                event.reason,
                event.ref_price,
                event.ts,
                event.seq,
                event.group,
                # NULL for a market order, as every journal before typed events stored it.
                None if event.order_type == "market" else event.order_type,
                event.limit_price,
                event.stop_price,
                event.rung,
            ),
        )

    def _fill(self, event: Event, sid: str, fill: FillRecord) -> None:
        client_id = fill.client_id
        quantity = fill.quantity
        execute = self._execute
        execute(
            _INSERT_FILL,
            (
                sid,
                client_id,
                fill.symbol,
                fill.side,
                fill.price,
                quantity,
                fill.fee,
                fill.liquidity,
                fill.reason,
                fill.fill_ts,
                event.ts,
                event.seq,
            ),
        )
        execute(_FILL_ORDER, (quantity, event.ts, event.seq, sid, client_id))

    def _order_cancelled(self, event: OrderCancelled | OrderRejected, sid: str) -> None:
        self._execute(_CANCEL_ORDER, (event.ts, event.seq, sid, event.client_id))

    def _order_rejected(self, event: OrderRejected, sid: str) -> None:
        # The order is done, and why the exchange refused it is kept in the strategy's event log.
        self._order_cancelled(event, sid)
        self._log_event(event, sid)

    def _position_opened(self, event: PositionOpened, sid: str) -> None:
        self._fill(event, sid, event.fill)
        position = event.position
        position_id = position.position_id
        self._execute(
            _INSERT_POSITION,
            (
                sid,
                position_id,
                trailing_number(position_id, sid + "-p"),
                position.symbol,
                position.status,
                record_json(position).decode(),
                event.client_id,
                event.ts,
                event.seq,
            ),
        )

    def _position_reduced(self, event: PositionReduced, sid: str) -> None:
        self._fill(event, sid, event.fill)
        position = event.position
        position_id = position.position_id
        closed = event.closed_quantity
        self._execute(
            _REDUCE_POSITION,
            (
                sid,
                position_id,
                trailing_number(position_id, sid + "-p"),
                position.symbol,
                position.status,
                record_json(position).decode(),
                closed,
                # The same float operation as Position.exit_value += fill.price * qty.
                event.price * closed,
                event.ts,
                event.seq,
            ),
        )

    def _position_closed(self, event: PositionClosed, sid: str) -> None:
        self._fill(event, sid, event.fill)
        trade = event.trade
        record = record_json(JournalledTrade(trade, event.fill)).decode()
        execute = self._execute
        execute(_INSERT_TRADE, (sid, trade.position_id, trade.exit_ts, event.ts, event.seq, record))
        execute(_CLOSE_POSITION, (event.ts, event.seq, sid, trade.position_id))

    def _stop_updated(self, event: StopUpdated, sid: str) -> None:
        stop_loss, trailing_stop = event.stop_loss, event.trailing_stop

        def moved(state: PositionState) -> PositionState:
            # The event carries only the stops that moved.
            return replace(
                state,
                stop_loss=state.stop_loss if stop_loss is None else stop_loss,
                trailing_stop=state.trailing_stop if trailing_stop is None else trailing_stop,
            )

        self._patch_position(event, sid, event.position_id, moved, event.anchor)

    def _trailing_activated(self, event: TrailingActivated, sid: str) -> None:
        def activated(state: PositionState) -> PositionState:
            return replace(state, trailing_distance_pct=event.distance_pct, trailing_stop=event.trailing_stop, trailing_active=True)

        self._patch_position(event, sid, event.position_id, activated, event.anchor)

    def _patch_position(
        self, event: Event, sid: str, position_id: str, change: Callable[[PositionState], PositionState], anchor: float | None
    ) -> None:
        # stop_updated and trailing_activated carry only the fields they change: read the stored
        # state, change those fields, write it back (both events are rare next to fills).
        row = self._execute(_SELECT_POSITION_STATE, (sid, position_id)).fetchone()
        if row is None:
            # Nothing journalled to patch (journal attached mid-run): the event alone is not a
            # position; keep it in the event log rather than drop it.
            self._log_event(event, sid)
            return
        where = f"{self._path}: table positions, position {position_id!r} of {sid!r}, column state"
        stored = stored_position(json_object(row[0], where), where)
        text = stored_position_text(replace(stored, state=change(stored.state)))
        self._execute(_PATCH_POSITION, (text, row[1] if anchor is None else anchor, event.ts, event.seq, sid, position_id))

    def _strategy_state(self, event: StrategyStateChanged, sid: str) -> None:
        self._execute(_UPSERT_STATE, (sid, event.state, event.change, event.policy, event.error, event.ts, event.seq))

    def _log_event(self, event: Event, sid: str) -> None:
        n = self._next_n.get(sid)
        if n is None:
            n = self._execute(_NEXT_EVENT_N, (sid,)).fetchone()[0]
        execute = self._execute
        execute(_INSERT_EVENT, (sid, n, event.type, event.ts, event.seq, payload_json(event).decode()))
        # A range delete by primary key: normally the one row that just fell out of the window.
        execute(_TRIM_EVENTS, (sid, n - self._event_limit))
        self._next_n[sid] = n + 1

    def _portfolio(self, sid: str, ts: int, snapshot: str) -> None:
        self._execute(_UPSERT_PORTFOLIO, (sid, snapshot, ts))
        self._execute(_UPSERT_EQUITY, (sid, self._utc_day(ts), snapshot, ts))

    # -- helpers --------------------------------------------------------------------------------
    def _utc_day(self, ts: int) -> str:
        number = ts // _DAY_MS
        cached = self._day
        if cached[0] == number:
            return cached[1]
        day = date.fromordinal(_EPOCH_ORDINAL + number).isoformat()
        self._day = (number, day)
        return day

    def _rollback(self) -> None:
        self._next_n.clear()
        conn = self._conn
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            # The connection is unusable (closed, disk gone): the original error says why.
            pass
