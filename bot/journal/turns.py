"""Strategy turns: all of one candle's decision journalled in one transaction, announced and sent only after its commit."""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from bot.bus import Handler
from bot.events import Event


class TurnJournal(Protocol):
    """The journal's side of a turn (bot.journal.Journal): one transaction for every write between begin and commit."""

    def begin_turn(self) -> None: ...

    def commit_turn(self) -> None: ...

    def rollback_turn(self) -> None: ...


class Turns:
    """Opens strategy turns: a turn's writes are one journal commit; its events and its orders go out only after it.

    The daemon opens a turn around each candle a strategy handles (bot.daemon.delivery), its
    failure handling included. Inside it the bus journals each event as it is published but
    hands it here (`hold`) instead of to subscribers, and the live gateway hands its sends here
    (`after_commit`). When the turn ends: commit, then deliver the events in seq order, then
    start the sends. If the commit fails nothing of the turn is delivered or sent (each send's
    `discard` runs instead) and the JournalError propagates. A turn whose body raises still
    commits and delivers what it published, as every event outside a turn is committed and
    delivered when published, then the exception propagates.

    While the held events are delivered, an event a subscriber publishes (journalled in its own
    transaction) is queued behind them, so subscribers still see every event in seq order.
    Turns do not nest: one opened inside another is part of it.
    """

    def __init__(self, journal: TurnJournal) -> None:
        self._journal = journal
        self._open = False
        # Read by the bus on every journalled publish: a turn is open, or its events are being delivered.
        self.holding = False
        self._held: deque[tuple[Event, Handler]] = deque()
        self._sends: list[tuple[Callable[[], object], Callable[[], object]]] = []
        # Turns that published something: each one journal commit.
        self.commits = 0

    @property
    def open(self) -> bool:
        """Whether a turn is open (its writes not committed yet)."""
        return self._open

    @contextmanager
    def turn(self) -> Iterator[None]:
        """One strategy turn: its journal writes are one transaction, delivered and sent after it commits."""
        if self._open:
            yield
            return
        self._open = self.holding = True
        self._journal.begin_turn()
        try:
            yield
        finally:
            self._open = False
            self._end()

    def hold(self, event: Event, deliver: Handler) -> None:
        """Deliver `event` with `deliver` once the turn has committed (the bus, for an event it journalled)."""
        self._held.append((event, deliver))

    def after_commit(self, send: Callable[[], object], discard: Callable[[], object]) -> None:
        """Run `send` once the open turn has committed (at once when none is open); `discard` instead if it cannot be."""
        if self._open:
            self._sends.append((send, discard))
        else:
            send()

    def _end(self) -> None:
        sends, self._sends = self._sends, []
        try:
            self._journal.commit_turn()
        except BaseException:
            # Not on disk: nothing of the turn may be announced or reach the exchange.
            self._held.clear()
            self.holding = False
            self._journal.rollback_turn()
            for _, discard in sends:
                discard()
            raise
        held = self._held
        if held:
            self.commits += 1
        try:
            while held:
                event, deliver = held.popleft()
                deliver(event)
        finally:
            held.clear()
            self.holding = False
            # Committed: a subscriber's failure must not keep the turn's orders from the exchange.
            for send, _ in sends:
                send()
