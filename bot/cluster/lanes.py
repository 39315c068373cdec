"""The daemon's remote lanes: each strategy's book stays on the hub, its mind decides on a worker; a candle is two journal turns around the decision.

Per candle of an active strategy, in the strategy's own lane task (one candle at a time, as in
process: a strategy whose worker is slow or gone queues, then coalesces, its candles):
T1, one journal turn: the coalesced candles shown to its positions, the book's part before the
decision (`bar`: fills at the open, stops, take-profits, trailing, the mark), and the turn
journalled as pending (its number `n`, the candle). Then, outside any turn, the mind's decision
is awaited (MindClient: the worker, re-sent, failed over). T2, one journal turn: the pending turn
marked decided, the decision's events and actions carried out, exits managed (`settle`).
No turn spans the wait: other strategies' turns go on meanwhile, and a crash after T1 leaves
the pending turn in the journal, asked again after the restart (the worker answers a turn it
already decided from its cache: decided once, applied once).
"""
from __future__ import annotations

import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import anyio
import msgspec
from anyio.abc import TaskGroup

from bot.cluster.decisions import apply_decision, own_event
from bot.cluster.messages import CandleT, Decision, View
from bot.cluster.mind import ViewTaker
from bot.daemon.delivery import ErrorHook, InboxDelivery, InboxLane, QueuedCandle
from bot.daemon.inbox import CandleWork
from bot.daemon.turn_progress import Stream, TurnProgress
from bot.errors import MoveRefused
from bot.journal.turns import TurnOutcome
from bot.ohlcv import Candle, timeframe_ms
from bot.strategy.delivery import CandleOwner
from bot.strategy.guard import attempt
from bot.strategy.orchestrator import TradingOrchestrator
from bot.trading.positions import Position

# Journal meta per strategy: its lane's turn numbers and its pending turn (bot.cluster.lanes).
LANE_META = "cluster.lane:"
# Decision waits kept per strategy for its percentiles.
WAIT_SAMPLES = 1000
# The longest a strategy without a mind waits before its mind is asked again (seconds).
MAX_RETRY_S = 600.0


class LaneRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A lane as journalled: the last turn numbered, the last decided (or closed undecided), the pending one."""

    # Random per load of the strategy: what a worker holds of another load (an unload, a load again) is never this lane's.
    lane: str
    n: int
    decided: int
    # n, symbol, timeframe, close time, "trade" or "other", the candle.
    pending: tuple[int, str, str, int, str, CandleT] | None


_RECORD = msgspec.json.Decoder(LaneRecord)


@dataclass(slots=True)
class PendingTurn:
    """A candle barred on the hub (T1 journalled) whose decision is awaited."""

    lane: str
    n: int
    symbol: str
    tf: str
    candle: Candle
    ts: int
    kind: str
    # The symbol's open positions after `bar`, whose exits settle manages.
    held: list[Position] | None


@dataclass(slots=True)
class _Mind:
    """The hub's side of one strategy's remote mind."""

    lane: str = field(default_factory=lambda: secrets.token_hex(8))
    n: int = 0
    decided: int = 0
    pending: PendingTurn | None = None
    # The wait for the pending turn's decision: cancelled when its role changes or the daemon stops.
    asking: anyio.CancelScope | None = None
    views: ViewTaker = field(default_factory=ViewTaker)
    # Restored from the journal: the pending turn still to be decided (held taken from the restored book).
    restored: bool = False
    # No decision came in time: its candles go to its positions only until a mind can decide again, asked no sooner than
    # `retry_at` (monotonic); each further timeout doubles the wait (a worker that takes it and hangs costs a timeout each time).
    protecting: bool = False
    retry_at: float = 0.0
    retry_s: float = 0.0
    # The client's joins when it started protecting: a worker joining since is asked at once.
    joins: int = 0
    # Microseconds from a turn barred (T1 committed) to its decision here, the latest ones.
    waits_us: deque[int] = field(default_factory=lambda: deque(maxlen=WAIT_SAMPLES))


class MindClient(Protocol):
    """Where decisions come from: a worker holding the strategy's mind (bot.cluster.hub_minds), or minds in this process."""

    async def decide(
        self,
        owner: TradingOrchestrator,
        turn: PendingTurn,
        decided: int,
        view: Callable[[], View],
        undecided: Callable[[], dict[Stream, int]],
    ) -> Decision:
        """The decision on `turn` (k == turn.n) from a mind that decided exactly through turn `decided`.

        `view`: the book as the mind reads it, taken when sent. `undecided`: per stream, the first
        candle not yet decided (a mind warmed anew takes the history before those). Waits as long
        as it takes (workers gone, the server down): the caller cancels it.
        """
        ...

    def forget(self, sid: str) -> None:
        """The strategy's role changed: its mind must be synced again before it decides."""
        ...

    def available(self, sid: str) -> bool:
        """Whether a mind of `sid` could decide now (a worker to go to, the server reachable)."""
        ...

    def joins(self) -> int:
        """How many workers were taken in so far (a worker restarted counts again): one that joins is worth asking at once."""
        ...

    def move(self, sid: str, worker: str) -> str | None:
        """Move `sid`'s mind to `worker` before its next decision; the worker it is on now (None: not placed). MoveRefused."""
        ...

    def release(self, sid: str) -> None:
        """The strategy is unloaded: its mind may go."""
        ...

    async def close(self) -> None:
        """The daemon stops: let go of the workers (their minds stay for the next start)."""
        ...

    def status(self) -> dict[str, Any]:
        """What `bot ctl status` shows of the minds: the workers, where each strategy's mind is."""
        ...


class LaneJournal(Protocol):
    """The journal's side (bot.journal.Journal)."""

    def set_meta(self, key: str, value: str) -> None: ...

    def delete_meta(self, key: str) -> None: ...

    def meta_with_prefix(self, prefix: str) -> dict[str, str]: ...


class RemoteLanes(InboxDelivery):
    """InboxDelivery whose active strategies decide through a MindClient; protecting routes (dormant, failed) stay local turns."""

    def __init__(
        self,
        task_group: TaskGroup,
        inbox_size: int,
        on_error: ErrorHook,
        client: MindClient,
        journal: LaneJournal,
        log: logging.Logger,
        turn: Callable[[], AbstractContextManager[TurnOutcome]],
        decision_timeout_s: float,
        on_drained: Callable[[], None] | None = None,
        queued: CandleWork | None = None,
        progress: TurnProgress | None = None,
        after_turn: Callable[[CandleOwner], None] | None = None,
    ) -> None:
        super().__init__(task_group, inbox_size, on_error, on_drained=on_drained, queued=queued, turn=turn, progress=progress, after_turn=after_turn)
        self._client = client
        self._journal = journal
        self._decision_timeout_s = decision_timeout_s
        self._log = log
        self._minds: dict[str, _Mind] = {}
        self._restored: dict[str, LaneRecord] = {}
        for sid, text in journal.meta_with_prefix(LANE_META).items():
            try:
                self._restored[sid] = _RECORD.decode(text)
            except msgspec.DecodeError as exc:
                log.warning("[%s] journal meta %r is not a cluster lane (%s): its pending turn, if any, is not decided", sid, LANE_META + sid, exc)

    # -- Delivery ---------------------------------------------------------------------------------
    def wrap(self, owner: CandleOwner, handler: Callable[[str, str, Candle, int], None]) -> Callable[[str, str, Candle, int], None]:
        """As InboxDelivery; the first time for `owner`, its lane's journalled turns taken back."""
        if owner.strategy_id not in self._minds:
            self._minds[owner.strategy_id] = self._restore(owner)
        return super().wrap(owner, handler)

    def _restore(self, owner: CandleOwner) -> _Mind:
        record = self._restored.pop(owner.strategy_id, None)
        if record is None:
            return _Mind()
        mind = _Mind(lane=record.lane, n=record.n, decided=record.decided)
        if record.pending is not None and isinstance(owner, TradingOrchestrator):
            n, symbol, tf, ts, kind, candle = record.pending
            held = None
            if kind == "trade":
                # What its bar left before the crash: the symbol marked at the candle's close (the decision may size on it).
                owner.positions.mark_to(symbol, candle[4], ts)
                held = list(owner.positions.by_symbol.get(symbol, ()))
            mind.pending = PendingTurn(mind.lane, n, symbol, tf, Candle(*candle), ts, kind, held)
            mind.restored = True
        return mind

    def reset(self, owner: CandleOwner) -> list[tuple[str, str, Candle, int]]:
        """As InboxDelivery; a pending turn is closed undecided first (its exits managed), and the mind is synced again before it decides."""
        mind = self._minds.get(owner.strategy_id)
        if mind is not None:
            mind.protecting = False
            self._close_undecided(owner, mind)
        return super().reset(owner)

    def detach(self, owner: CandleOwner) -> None:
        """As InboxDelivery; its lane's journal record deleted and its mind released."""
        mind = self._minds.pop(owner.strategy_id, None)
        if mind is not None:
            if mind.asking is not None:
                mind.asking.cancel()
            mind.pending = None
            self._journal.delete_meta(LANE_META + owner.strategy_id)
            self._client.release(owner.strategy_id)
        super().detach(owner)

    def move(self, owner: TradingOrchestrator, worker: str) -> str | None:
        """Move the strategy's mind to `worker` at its next turn (a decision awaited now comes from where it is); MoveRefused."""
        if owner.strategy_id not in self._minds:
            raise MoveRefused(f"{owner.strategy_id}: it has no lane here yet (never routed): activate it first")
        return self._client.move(owner.strategy_id, worker)

    def stats(self, owner: CandleOwner) -> dict[str, int]:
        """As InboxDelivery, and the lane's: `waiting` 1 while a decision is awaited, the last turn decided, `protecting` 1 while no
        mind can decide, and the wait for a decision (turn barred to decision here, the latest WAIT_SAMPLES), p50 and p99 in µs."""
        stats = super().stats(owner)
        mind = self._minds.get(owner.strategy_id)
        stats["waiting"] = int(mind is not None and mind.pending is not None)
        stats["decided"] = 0 if mind is None else mind.decided
        stats["protecting"] = int(mind is not None and mind.protecting)
        waits = sorted(mind.waits_us) if mind is not None else []
        stats["decision_wait_p50_us"] = waits[len(waits) // 2] if waits else 0
        stats["decision_wait_p99_us"] = waits[min(len(waits) - 1, len(waits) * 99 // 100)] if waits else 0
        return stats

    async def stop(self) -> None:
        """As InboxDelivery; decisions still awaited are given up (their turns stay pending in the journal, asked again after a restart)."""
        for mind in self._minds.values():
            if mind.asking is not None:
                mind.asking.cancel()
        self._stopping = True
        await super().stop()
        await self._client.close()

    def minds_status(self) -> dict[str, Any]:
        """The minds' side of `bot ctl status`: the MindClient's status, and the strategies no mind decides for (protecting)."""
        return {**self._client.status(), "protecting": sorted(sid for sid, mind in self._minds.items() if mind.protecting)}

    # -- the lane task ----------------------------------------------------------------------------
    async def _consume(self, owner: CandleOwner, lane: InboxLane) -> None:
        mind = self._minds.get(owner.strategy_id)
        if mind is not None and mind.restored and isinstance(owner, TradingOrchestrator):
            mind.restored = False
            self._took(lane)
            try:
                pending = mind.pending
                played = (lane.replayed or {}).get((pending.symbol, pending.tf), -1) if pending is not None else -1
                if owner.state == "active" and pending is not None and played > pending.candle.ts:
                    # Later candles of its stream had turns here since (it ran with placement "hub" meanwhile): a decision on this old
                    # candle is no use now.
                    self._log.warning("[%s] cluster: its turn %d pending from before is older than what it has handled since: closed undecided",
                                      owner.strategy_id, pending.n)
                    await self._in_turn(owner, owner.protect, partial(self._close_undecided, owner, mind, manage_exits=False))
                elif owner.state == "active":
                    await self._decide(owner, mind)
                else:
                    await self._in_turn(owner, owner.protect, partial(self._close_undecided, owner, mind))
            finally:
                self._settled(lane)
        await super()._consume(owner, lane)

    async def _take(self, owner: CandleOwner, lane: InboxLane, item: QueuedCandle) -> None:
        handler = item[0]
        if handler == owner.protect or not isinstance(owner, TradingOrchestrator):
            await super()._take(owner, lane, item)
            return
        mind = self._minds[owner.strategy_id]
        current = item if lane.replayed is None else self._unless_seen(lane, item)
        if current is None:
            return
        if mind.protecting:
            waited = time.monotonic() >= mind.retry_at or self._client.joins() > mind.joins
            if not waited or not self._client.available(owner.strategy_id):
                # No mind can decide: its positions see its trading candles (stops, take-profits, trailing), as a strategy's in process
                # that fell behind; other timeframes' candles are its mind's only (warmed anew from history when it decides again).
                if handler == owner.on_candle:
                    await super()._take(owner, lane, (owner.protect, *current[1:]))
                else:
                    self._note(owner, lane, current)
                return
            mind.protecting = False
            self._log.warning("[%s] cluster: asking a mind to decide again", owner.strategy_id)
        kind = "trade" if handler == owner.on_candle else "other"

        def bar() -> None:
            error = attempt(self._bar, owner, mind, current, kind)
            if error is not None:
                self._on_error(owner, handler, error)
            self._note(owner, lane, current)

        def not_barred() -> None:
            # Nothing of the turn was kept: no decision is awaited for it (before its failure resets the strategy).
            mind.pending = None

        if await self._in_turn(owner, handler, bar, lost=not_barred):
            await self._decide(owner, mind)

    def _unless_seen(self, lane: InboxLane, item: QueuedCandle) -> QueuedCandle | None:
        """The item without the candles barred before a restart (None when all were): the mind decided them, or decides the pending one."""
        replayed = lane.replayed
        assert replayed is not None
        handler, symbol, timeframe, candle, ts, skipped = item
        last = replayed.get((symbol, timeframe))
        if last is None:
            return item
        if candle.ts <= last:
            lane.seen[(symbol, timeframe)] = candle.ts
            return None
        del replayed[(symbol, timeframe)]
        if not replayed:
            lane.replayed = None
        return (handler, symbol, timeframe, candle, ts, tuple(old for old in skipped if old.ts > last))

    def _bar(self, owner: TradingOrchestrator, mind: _Mind, item: QueuedCandle, kind: str) -> None:
        """T1's body: the book's part before the decision, and the turn journalled as pending."""
        _, symbol, timeframe, candle, ts, skipped = item
        if skipped:
            # Coalesced: the mind decides on the newest; positions see every skipped candle first, in order.
            length = timeframe_ms(timeframe)
            for old in skipped:
                owner.catch_up(symbol, timeframe, old, old.ts + length)
        held = owner.bar(symbol, candle, ts) if kind == "trade" else None
        mind.n += 1
        mind.pending = PendingTurn(mind.lane, mind.n, symbol, timeframe, candle, ts, kind, None if held is None else list(held))
        self._record(owner.strategy_id, mind)

    async def _decide(self, owner: TradingOrchestrator, mind: _Mind) -> None:
        """Await the pending turn's decision, then carry it out in T2 (nothing, when its role changed or the daemon stops meanwhile).

        No decision within the decision timeout (no worker, the server down, a mind that hangs): the turn
        is closed undecided and the strategy's candles go to its positions only until a mind can decide.
        """
        pending = mind.pending
        if pending is None or self._stopping:
            return
        handler = owner.on_candle if pending.kind == "trade" else owner.on_other_candle
        decision: Decision | None = None
        timed_out = False
        started = time.perf_counter_ns()
        try:
            with anyio.CancelScope() as scope, self._waiting_elsewhere():
                mind.asking = scope
                with anyio.move_on_after(self._decision_timeout_s) as timer:
                    decision = await self._client.decide(
                        owner, pending, mind.decided, partial(self._view, owner, mind), partial(self._undecided, owner, pending)
                    )
                timed_out = timer.cancelled_caught
        except Exception as exc:  # noqa: BLE001 - what reaching its mind raised fails the strategy, never the daemon's task group
            mind.asking = None
            if mind.pending is pending:
                self._on_error(owner, handler, exc)
            return
        mind.asking = None
        if mind.pending is not pending:
            return
        if timed_out:
            mind.retry_s = min(max(mind.retry_s * 2, self._decision_timeout_s), MAX_RETRY_S)
            mind.retry_at = time.monotonic() + mind.retry_s
            self._log.warning(
                "[%s] cluster: no decision on turn %d within %g s: the turn is closed undecided, its candles go to its positions only "
                "until a mind can decide (asked again in %g s at the earliest)", owner.strategy_id, pending.n, self._decision_timeout_s, mind.retry_s,
            )
            mind.protecting = True
            mind.joins = self._client.joins()
            await self._in_turn(owner, handler, partial(self._close_undecided, owner, mind))
            return
        if decision is None:
            return
        mind.waits_us.append((time.perf_counter_ns() - started) // 1000)
        mind.retry_s = 0.0

        def carried_out() -> None:
            error = attempt(self._apply, owner, mind, pending, decision)
            if error is not None:
                self._on_error(owner, handler, error)

        await self._in_turn(owner, handler, carried_out)

    def _apply(self, owner: TradingOrchestrator, mind: _Mind, pending: PendingTurn, decision: Decision) -> None:
        """T2's body: the turn marked decided first (a failing decision fails the strategy in this turn, its role reset), then carried out."""
        mind.pending = None
        mind.decided = pending.n
        self._record(owner.strategy_id, mind)
        sid = owner.strategy_id
        events = [own_event(sid, raw) for raw in decision.events]
        apply_decision(owner, owner.publisher, decision, events, pending.held, pending.kind == "trade", pending.candle, pending.ts, settle_ts=pending.ts)

    def _close_undecided(self, owner: CandleOwner, mind: _Mind, manage_exits: bool = True) -> None:
        """Its role changes (or no decision came): a pending turn's decision is given up, its exits managed as if it decided nothing.

        The lane then takes a new number no mind has decided through, so its mind is synced again before it
        decides: under its new role it misses (or missed) candles. Journalled first: a crash in between never
        settles the turn twice.
        """
        pending = mind.pending
        mind.pending = None
        mind.restored = False
        if mind.asking is not None:
            mind.asking.cancel()
        mind.n += 1
        mind.decided = mind.n
        mind.views = ViewTaker()
        self._record(owner.strategy_id, mind)
        self._client.forget(owner.strategy_id)
        if manage_exits and pending is not None and pending.kind == "trade" and isinstance(owner, TradingOrchestrator):
            error = attempt(owner.settle, pending.held, pending.candle, 0, pending.ts)
            if error is not None:
                self._log.warning("[%s] managing the exits of a turn left undecided failed: %s", owner.strategy_id, error)

    def _view(self, owner: TradingOrchestrator, mind: _Mind) -> View:
        return mind.views.take(owner.positions, list(dict.fromkeys(symbol for symbol, _ in owner.subscriptions())))

    def _undecided(self, owner: CandleOwner, pending: PendingTurn) -> dict[Stream, int]:
        """Per stream, the open time of the first candle not decided yet: the pending one's, or the first queued."""
        first: dict[Stream, int] = {(pending.symbol, pending.tf): pending.candle.ts}
        lane = self._lanes.get(owner)
        if lane is not None:
            replayed = lane.replayed or {}
            for _, symbol, timeframe, candle, _, skipped in lane.inbox.items():
                # Candles played again after a restart that it had decided before are no undecided ones: they are dropped.
                seen = replayed.get((symbol, timeframe), -1)
                new = [c.ts for c in (*skipped, candle) if c.ts > seen]
                if new:
                    first[(symbol, timeframe)] = min(first.get((symbol, timeframe), new[0]), new[0])
        return first

    def _record(self, sid: str, mind: _Mind) -> None:
        pending = mind.pending
        record = LaneRecord(
            lane=mind.lane, n=mind.n, decided=mind.decided,
            pending=None if pending is None else (pending.n, pending.symbol, pending.tf, pending.ts, pending.kind, tuple(pending.candle)),  # type: ignore[arg-type]
        )
        self._journal.set_meta(LANE_META + sid, msgspec.json.encode(record).decode())
