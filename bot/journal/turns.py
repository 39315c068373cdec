"""Strategy turns: all of one candle's decision journalled in one transaction, announced and sent only after its commit."""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Protocol

import anyio

from bot.bus import Handler
from bot.events import Event
from bot.journal.writer_thread import Completion

_Send = tuple[Callable[[], object], Callable[[], object]]


class TurnJournal(Protocol):
    """The journal's side of a turn (bot.journal.Journal): one transaction for every write between begin and commit."""

    def begin_turn(self) -> None: ...

    def commit_turn(self, notify: Callable[[], object] | None = None) -> Completion[None]: ...


class TurnOutcome:
    """What the task that ran a turn awaits before its next one: the turn delivered and sent, or failed."""

    __slots__ = ("done", "error", "_event")

    def __init__(self) -> None:
        self.done = False
        self.error: BaseException | None = None
        self._event: anyio.Event | None = None

    async def settled(self) -> None:
        """Wait until the turn's events are delivered and its orders sent; raise what failed it.

        JournalError: the turn could not be journalled, and nothing of it was kept, delivered or
        sent. Another exception: a subscriber's, raised while the committed turn was delivered.
        """
        if not self.done:
            if self._event is None:
                self._event = anyio.Event()
            await self._event.wait()
        if self.error is not None:
            raise self.error

    def _settle(self, error: BaseException | None) -> None:
        self.done = True
        self.error = error
        if self._event is not None:
            self._event.set()


class _Entry:
    """A turn waiting for its commit, or an event or send from outside any turn waiting behind such turns."""

    __slots__ = ("commit", "held", "sends", "outcome")

    def __init__(self, held: list[tuple[Event, Handler]], sends: list[_Send], outcome: TurnOutcome | None) -> None:
        # None: nothing to wait for (outside any turn: committed already, or never journalled).
        self.commit: Completion[None] | None = None
        self.held = held
        self.sends = sends
        self.outcome = outcome


class Turns:
    """Opens strategy turns: a turn's writes are one journal commit; its events and its orders go out only after it.

    The daemon opens a turn around each candle a strategy handles (bot.daemon.delivery), its
    failure handling included. Inside it the bus queues each event's journal write and hands
    the event here (`hold`) instead of to subscribers, and the live gateway hands its sends here
    (`after_commit`). When the turn's body ends its writes go to the journal's writer thread
    to be committed (with other turns queued beside it, in one commit: bot.journal.sqlite), and
    the body's task gets a TurnOutcome to await: nothing waits for SQL on
    the event loop, so the other strategies' tasks run meanwhile. Once committed, the turn's
    events are delivered in seq order, then its sends start. If the turn cannot be journalled
    (a write of it or its commit fails: the turn is atomic, one bad event fails it all) nothing
    of it is delivered or sent (each send's `discard` runs instead) and the outcome raises the
    JournalError. A turn whose body raises still commits and delivers what it published, as
    every event outside a turn is committed and delivered when published.

    Several turns (one per strategy at most) can wait for their commits at once; they are
    settled in the order their commits were queued, which is the writer thread's order, so
    subscribers see every event in seq order and no two turns' events interleaved. An event
    published, or a send asked for, outside any turn while turns are pending waits behind them
    (a journalled event's own write waited on the writer thread for their commits already).
    Only one turn's body runs at a time (bodies are synchronous); one opened inside another is
    part of it.

    `call_soon_threadsafe` runs a callable on the event loop from the writer thread without
    waiting (asyncio's loop.call_soon_threadsafe): how a commit's end reaches the loop.
    """

    def __init__(
        self,
        journal: TurnJournal,
        call_soon_threadsafe: Callable[[Callable[[], object]], object],
        on_error: Callable[[BaseException], object] | None = None,
    ) -> None:
        self._journal = journal
        # A failure of an event or send from outside any turn, settled when no publisher waits for
        # it (a commit reported by the writer thread, another turn's end): handed here, never raised
        # into whoever happens to be running (without it, raised: tests).
        self._on_error = on_error
        self._wake = partial(call_soon_threadsafe, self._settle_elsewhere)
        self._current: _Entry | None = None
        # Turns committed or being committed, and what waits behind them, in commit order.
        self._pending: deque[_Entry] = deque()
        self._delivering = False
        self._idle: anyio.Event | None = None
        # Read by the bus on every journalled publish: a turn is open, pending, or being delivered.
        self.holding = False
        # Turns that published something and were journalled (each one transaction; several may share a commit).
        self.commits = 0

    @property
    def open(self) -> bool:
        """Whether a turn's body is running (its writes not handed over yet)."""
        return self._current is not None

    @property
    def pending(self) -> int:
        """Turns, and what waits behind them, not settled yet."""
        return len(self._pending)

    @contextmanager
    def turn(self) -> Iterator[TurnOutcome]:
        """One strategy turn: its journal writes are one transaction, delivered and sent after it commits; await the outcome."""
        current = self._current
        if current is not None:
            assert current.outcome is not None  # an open turn always has one
            yield current.outcome
            return
        outcome = TurnOutcome()
        entry = _Entry([], [], outcome)
        self._current = entry
        self.holding = True
        self._journal.begin_turn()
        try:
            yield outcome
        finally:
            self._current = None
            entry.commit = self._journal.commit_turn(self._wake)
            self._pending.append(entry)
            # A turn that wrote nothing is committed already: delivered now if nothing waits before it.
            self._settle_elsewhere()

    def hold(self, event: Event, deliver: Handler) -> None:
        """Deliver `event` with `deliver` once the turn it belongs to, and every turn before, has committed (the bus)."""
        current = self._current
        if current is not None:
            current.held.append((event, deliver))
        else:
            self._pending.append(_Entry([(event, deliver)], [], None))
            self._settle()

    def after_commit(self, send: Callable[[], object], discard: Callable[[], object]) -> None:
        """Run `send` once the open turn has committed (behind the turns pending, else at once); `discard` instead if it cannot be."""
        current = self._current
        if current is not None:
            current.sends.append((send, discard))
        elif self.holding:
            self._pending.append(_Entry([], [(send, discard)], None))
            self._settle()
        else:
            send()

    async def idle(self) -> None:
        """Wait until every turn pending is settled: committed and delivered and sent, or failed (a graceful stop)."""
        while self._pending:
            if self._idle is None:
                self._idle = anyio.Event()
            await self._idle.wait()

    def _settle_elsewhere(self) -> None:
        """`_settle` where no publisher waits for an outside entry's failure: it goes to `on_error`."""
        try:
            self._settle()
        except Exception as exc:
            if self._on_error is None:
                raise
            self._on_error(exc)

    def _settle(self) -> None:
        """Deliver and send, from the head, every pending turn whose commit is done (on the loop)."""
        if self._delivering:
            return  # a subscriber published while a turn is delivered: the loop below goes on to it
        pending = self._pending
        self._delivering = True
        failure: BaseException | None = None
        try:
            while pending:
                head = pending[0]
                commit = head.commit
                if commit is not None and not commit.done:
                    break
                pending.popleft()
                error = self._run(head, None if commit is None else commit.error)
                if error is not None and failure is None:
                    failure = error
        finally:
            self._delivering = False
            self.holding = self._current is not None or bool(pending)
            if not pending and self._idle is not None:
                self._idle.set()
                self._idle = None
        if failure is not None:
            raise failure  # a subscriber's or a send's, outside any turn: the publisher's, as outside turns

    def _run(self, entry: _Entry, not_journalled: BaseException | None) -> BaseException | None:
        """Deliver then send one settled entry; a failure goes to its turn's outcome (returned when it has none)."""
        outcome = entry.outcome
        failure: BaseException | None = not_journalled
        if not_journalled is not None:
            # Not on disk: nothing of the turn may be announced or reach the exchange.
            for _, discard in entry.sends:
                try:
                    discard()
                except BaseException as exc:  # noqa: BLE001 - the next discards must still run
                    failure = exc if failure is None else failure
        else:
            held = entry.held
            if held and outcome is not None:
                self.commits += 1
            try:
                for event, deliver in held:
                    deliver(event)
            except BaseException as exc:  # noqa: BLE001 - handed to the turn's task, or raised to the publisher
                failure = exc
            # Committed: a subscriber's failure must not keep the turn's orders from the exchange.
            for send, _ in entry.sends:
                try:
                    send()
                except BaseException as exc:  # noqa: BLE001 - as above
                    failure = exc if failure is None else failure
        if outcome is not None:
            outcome._settle(failure)
            return None
        return failure
