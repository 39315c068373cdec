"""Live-mode delivery: each orchestrator consumes its own bounded inbox in its own task."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field

import anyio
from anyio.abc import TaskGroup

from bot.daemon.inbox import CandleInbox, CandleWork
from bot.daemon.turn_progress import Stream, TurnProgress
from bot.journal import JournalError
from bot.journal.turns import TurnOutcome
from bot.ohlcv import Candle, timeframe_ms
from bot.strategy.delivery import CandleHandler, CandleOwner, HandlerErrorHook, TurnNotJournalled
from bot.strategy.guard import attempt

# handler, symbol, timeframe, candle, ts, and the older candles of the stream coalesced into it
QueuedCandle = tuple[CandleHandler, str, str, Candle, int, tuple[Candle, ...]]
_TIME_SLICE_S = 0.001
ErrorHook = HandlerErrorHook


@dataclass(slots=True)
class InboxLane:
    inbox: CandleInbox[QueuedCandle]
    processed: int = 0
    # From taking a candle until its turn is settled (committed, delivered, sent; or its failure handled).
    busy: bool = False
    # The newest candle per stream it has handled (journalled with its turns: bot.daemon.turn_progress).
    seen: dict[Stream, int] = field(default_factory=dict)
    # After a restart: the newest candle per stream it had handled in a journalled turn before; the feed
    # may play those again (a crash before the feed position's write), and they are history to it.
    replayed: dict[Stream, int] | None = None


def _coalesce(older: QueuedCandle, newer: QueuedCandle) -> QueuedCandle:
    """Keep the newer candle of a stream; remember the older ones it replaces, in order."""
    return (*newer[:5], older[5] + (older[3],) + newer[5])


def _dropped(symbol: str, timeframe: str, candle: Candle, ts: int) -> None:
    """Stopping: not taken, so never reported processed (a restart plays it again)."""


def _run(owner: CandleOwner, item: QueuedCandle) -> None:
    handler, symbol, timeframe, candle, ts, skipped = item
    if skipped:
        # Coalesced: decisions skip to the newest candle, but positions see every
        # skipped one, in order (stops, gaps, take-profits, trailing).
        length = timeframe_ms(timeframe)
        for old in skipped:
            owner.catch_up(symbol, timeframe, old, old.ts + length)
    handler(symbol, timeframe, candle, ts)


class InboxDelivery:
    """Routes each candle into the owner's inbox; a task per owner, in the daemon's task group, runs it.

    A slow strategy delays nobody else: the feed only appends to inboxes, and each owner's task
    yields to the others after every candle. Each candle is handled through the strategy guard
    (bot.strategy.guard.attempt); what it raises goes to `on_error` (the manager), never out of the task.

    With `turn` (the daemon's bot.journal.turns.Turns.turn), each candle a strategy handles, and
    the manager's handling of what it raised, is one turn: one journal commit, its events
    delivered and its orders sent after it. The commit runs on the journal's writer thread: the
    owner's task awaits it before the owner's next candle (so one strategy's turns never
    overlap), while the other owners' tasks run. A turn that cannot be committed is the
    strategy's failure too, handed to `on_error` outside any turn.
    """

    def __init__(
        self,
        task_group: TaskGroup,
        inbox_size: int,
        on_error: ErrorHook,
        on_drained: Callable[[], None] | None = None,
        queued: CandleWork | None = None,
        turn: Callable[[], AbstractContextManager[TurnOutcome]] | None = None,
        progress: TurnProgress | None = None,
        after_turn: Callable[[CandleOwner], None] | None = None,
    ) -> None:
        self._tg = task_group
        self._turn = turn
        # Told of each turn an owner has had committed (its equity curve takes a point).
        self._after_turn = after_turn
        self._progress = progress if turn is not None else None
        self._inbox_size = inbox_size
        self._on_error = on_error
        self._on_drained = on_drained
        # Given: shared with whoever must know whether everything published was processed (FeedPosition).
        self._queued = queued if queued is not None else CandleWork()
        self._lanes: dict[CandleOwner, InboxLane] = {}
        self._stopping = False

    def wrap(self, owner: CandleOwner, handler: CandleHandler) -> CandleHandler:
        """A callable that queues the candle for `owner` with `handler` (after `stop`: one that drops it)."""
        if self._stopping:
            return _dropped
        lane = self._lanes.get(owner)
        if lane is None:
            lane = self._lanes[owner] = InboxLane(CandleInbox(self._inbox_size, _coalesce, self._queued))
            if self._progress is not None:
                lane.replayed = self._progress.restored(owner.strategy_id)
            self._tg.start_soon(self._consume, owner, lane, name=f"inbox:{owner.strategy_id}")
        put = lane.inbox.put

        def enqueue(symbol: str, timeframe: str, candle: Candle, ts: int) -> None:
            put((symbol, timeframe), (handler, symbol, timeframe, candle, ts, ()))

        return enqueue

    def reset(self, owner: CandleOwner) -> list[tuple[str, str, Candle, int]]:
        """Take out what is queued for `owner` (routed under its previous role), oldest first."""
        lane = self._lanes.get(owner)
        if lane is None:
            return []
        taken: list[tuple[str, str, Candle, int]] = []
        replayed = lane.replayed or {}
        for _, symbol, timeframe, candle, ts, skipped in lane.inbox.clear():
            length = timeframe_ms(timeframe)
            # Candles it had handled before a restart: its positions saw them, not again.
            last = replayed.get((symbol, timeframe), -1)
            taken.extend((symbol, timeframe, old, old.ts + length) for old in skipped if old.ts > last)
            if candle.ts > last:
                taken.append((symbol, timeframe, candle, ts))
        return taken

    def detach(self, owner: CandleOwner) -> None:
        """Close `owner`'s inbox; its task ends after the queue (cleared here) is empty."""
        lane = self._lanes.pop(owner, None)
        if lane is not None:
            lane.inbox.clear()
            lane.inbox.close()

    def stats(self, owner: CandleOwner) -> dict[str, int]:
        """Inbox depth, overruns, coalesced candles and candles processed for `owner`."""
        lane = self._lanes.get(owner)
        if lane is None:
            return {"inbox_depth": 0, "overruns": 0, "coalesced": 0, "processed": 0}
        inbox = lane.inbox
        return {"inbox_depth": len(inbox), "overruns": inbox.overruns, "coalesced": inbox.coalesced, "processed": lane.processed}

    def queued(self) -> int:
        """Candles waiting in all inboxes."""
        return self._queued.n

    async def drain(self) -> None:
        """Wait until every inbox is empty and every candle taken is done with, its turn settled (graceful stop)."""
        await self._queued.wait_drained()

    def close_all(self) -> None:
        """Close every inbox so every consumer task ends."""
        for owner in list(self._lanes):
            lane = self._lanes.pop(owner)
            lane.inbox.close()

    async def stop(self) -> None:
        """A graceful stop after `drain` (or its time limit): drop what is still queued, wait until no candle is being handled.

        Dropped candles are not reported processed, so the journalled feed position stays before
        them and a restart plays them again. Once this returns no lane opens another turn.
        """
        self._stopping = True
        lanes = list(self._lanes.values())
        self.close_all()
        for lane in lanes:
            lane.inbox.clear()
        for lane in lanes:
            while lane.busy:
                await anyio.sleep(0.001)

    async def _consume(self, owner: CandleOwner, lane: InboxLane) -> None:
        inbox = lane.inbox
        while True:
            try:
                item: QueuedCandle | None = await inbox.get()
            except anyio.EndOfStream:
                return
            self._took(lane)
            try:
                # Take queued candles for up to one time slice, then let the feed and the other
                # strategies run: a cheap strategy clears a burst in one turn, an expensive one
                # yields after every candle and, if it cannot keep up, its inbox coalesces.
                turn_ends = time.perf_counter() + _TIME_SLICE_S
                while item is not None:
                    if self._turn is None:
                        self._handle(owner, item)
                    else:
                        await self._take(owner, lane, item)
                    lane.processed += 1
                    item = inbox.get_nowait() if time.perf_counter() < turn_ends else None
            finally:
                drained = self._settled(lane)
            # Every candle published handled and its turn settled (not only taken): once per round, not once per lane.
            if drained and self._on_drained is not None and not self._stopping:
                self._on_drained()
            await anyio.lowlevel.checkpoint()

    @contextmanager
    def _waiting_elsewhere(self) -> Iterator[None]:
        """The lane in hand waits on what is not the loop's work (a worker's decision over the network): reads and streams need not wait for it."""
        self._queued.waits_elsewhere(True)
        try:
            yield
        finally:
            self._queued.waits_elsewhere(False)

    def _took(self, lane: InboxLane) -> None:
        lane.busy = True
        self._queued.took()

    def _settled(self, lane: InboxLane) -> bool:
        """The lane is done with what it took; whether every lane is idle and every inbox empty now."""
        lane.busy = False
        return self._queued.settled()

    async def _take(self, owner: CandleOwner, lane: InboxLane, item: QueuedCandle) -> None:
        """Handle one candle in one turn, also a candle it had handled before a restart: what failing on it publishes and books is journalled as any turn's is."""

        def handle() -> None:
            current = item if lane.replayed is None else self._unless_replayed(owner, lane, item)
            if current is not None:
                self._handle(owner, current)
                self._note(owner, lane, current)

        await self._in_turn(owner, item[0], handle)

    async def _in_turn(self, owner: CandleOwner, handler: CandleHandler, body: Callable[[], None], lost: Callable[[], None] | None = None) -> bool:
        """Run `body` as one turn and wait until it is settled; what fails is `handler`'s failure, handed to the manager.

        False when the turn could not be journalled (nothing of it was kept): `lost` runs first, then the manager hears of it.
        """
        assert self._turn is not None  # only turns' deliveries take items in turns
        try:
            with self._turn() as outcome:
                body()
            await outcome.settled()
        except JournalError as exc:  # the turn (or a write of its failure handling) could not be journalled
            if lost is not None:
                lost()
            failure = TurnNotJournalled(str(exc))
            failure.__cause__ = exc
            self._on_error(owner, handler, failure)
            return False
        except Exception as exc:  # noqa: BLE001 - committed, but a send or a subscriber failed: the strategy's, never the task's
            self._on_error(owner, handler, exc)
        if self._after_turn is not None:
            self._after_turn(owner)
        return True

    def _note(self, owner: CandleOwner, lane: InboxLane, item: QueuedCandle) -> None:
        """Inside its turn: the candle is the newest its stream has had (journalled with the turn)."""
        if self._progress is not None:
            lane.seen[(item[1], item[2])] = item[3].ts
            self._progress.note(owner.strategy_id, lane.seen)

    def _unless_replayed(self, owner: CandleOwner, lane: InboxLane, item: QueuedCandle) -> QueuedCandle | None:
        """The item without what the owner handled before the restart (None when all of it was).

        Its decisions and its positions saw those candles already: an active route hands them to
        it as history (its indicators and its strategy's state take them); a protecting route
        (dormant or failed: its positions only) drops them, never calling the strategy's code.
        """
        replayed = lane.replayed
        assert replayed is not None
        handler, symbol, timeframe, candle, ts, skipped = item
        last = replayed.get((symbol, timeframe))
        if last is None:
            return item
        done = [old for old in (*skipped, candle) if old.ts <= last]
        length = timeframe_ms(timeframe)
        if handler != owner.protect:
            for old in done:
                error = attempt(owner.on_history, symbol, timeframe, old, old.ts + length)
                if error is not None:
                    # The new candles go back first in line, then the manager handles the failure:
                    # failing the strategy (its entries cancelled, its actions dropped) takes them out
                    # with what is queued behind, in order, and shows them to its positions.
                    put_back: QueuedCandle | None = None
                    if candle.ts > last:
                        put_back = (handler, symbol, timeframe, candle, ts, tuple(old for old in skipped if old.ts > last))
                        lane.inbox.put_back((symbol, timeframe), put_back)
                    try:
                        self._on_error(owner, handler, error)
                    finally:
                        if put_back is not None and lane.inbox.first() is put_back:
                            # The manager left it queued: it decides on nothing more here either.
                            lane.inbox.get_nowait()
                            for new in (*put_back[5], candle):
                                failure = attempt(owner.catch_up, symbol, timeframe, new, new.ts + length)
                                if failure is not None:
                                    self._on_error(owner, owner.protect, failure)
                                    break
                    return None
        if candle.ts <= last:
            lane.seen[(symbol, timeframe)] = candle.ts
            return None
        # The first candle after those: from here on the stream is new to it.
        del replayed[(symbol, timeframe)]
        if not replayed:
            lane.replayed = None
        return (handler, symbol, timeframe, candle, ts, tuple(old for old in skipped if old.ts > last))

    def _handle(self, owner: CandleOwner, item: QueuedCandle) -> None:
        error = attempt(_run, owner, item)
        if error is not None:  # the manager decides: the strategy fails, or stops being protected
            self._on_error(owner, item[0], error)
