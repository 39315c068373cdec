"""The hub's minds over NATS: each remote strategy's mind on a daemon worker, synced (claimed, built, warmed) there, asked per turn, moved when its lease goes.

The hub is the only one that applies a decision, and only the answer to its own request to
the strategy's present holder (the worker and the epoch of the lease it claimed at the Sync),
for the turn it awaits: a worker whose lease expired (killed, paused, cut off) is replaced once
the lease watch says so, and whatever it answers later is no answer to anything asked.
A request unanswered in time is asked again: the worker answers a turn it decided from its
cache, so a lost reply costs a resend, never a second decision.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import msgspec
import nats.errors
from nats.aio.msg import Msg as NatsMsg

from bot.cluster.access import ClusterConnectError
from bot.cluster.chunks import candles_per_chunk, history_chunks
from bot.cluster.connection import ClusterConnection
from bot.cluster.error_lines import ErrorLines
from bot.cluster.fingerprint import differences, strategy_digest
from bot.cluster.lanes import PendingTurn
from bot.cluster.leases import Claimed, Gone, Holder, LeaseBucket, LeaseBucketError, LeaseChange, LeaseWatchError
from bot.cluster.messages import (
    PROTOCOL,
    Ask,
    Decision,
    Failure,
    Fingerprint,
    Hello,
    Message,
    ProtocolError,
    Release,
    Released,
    Sync,
    Synced,
    View,
    Warm,
    Warmed,
    Welcome,
    decode,
    encode,
)
from bot.cluster.subjects import hello_subject, hub_started_subject, turn_subject
from bot.config.models import StrategyConfig
from bot.daemon.turn_progress import Stream
from bot.errors import MoveRefused
from bot.event_codec import VERSION as CODEC_VERSION
from bot.ohlcv import Candle
from bot.strategy.catalog import StrategyCatalog
from bot.strategy.orchestrator import TradingOrchestrator
from bot.version import bot_version

# Seconds a turn's request may go unanswered before it is sent again (the worker answers a repeat from its cache).
ASK_TIMEOUT_S = 5.0
# Seconds a Release may go unanswered.
RELEASE_TIMEOUT_S = 5.0
# Seconds between attempts while a strategy has no worker to go to, or its worker cannot be reached.
RETRY_S = 0.25
# Seconds after connecting that a hub waits for its workers' Hellos before it places strategies.
GATHER_S = 1.0
# Seconds a worker that refused a strategy (its code or config differs there) is not asked for it again.
EXCLUDED_S = 60.0


@dataclass(slots=True)
class _Worker:
    """A worker that said Hello: when last, from where."""

    hello: Hello
    seen: float
    # False once a request found nobody listening under its name (until its next Hello).
    listening: bool = True

    def live(self, now: float, ttl_s: float) -> bool:
        """Heard from within the lease TTL, and listening."""
        return self.listening and now - self.seen <= ttl_s


@dataclass(slots=True)
class _Slot:
    """Where a strategy's mind is: the worker, and the epoch of the lease it claimed for it."""

    worker: str
    epoch: int
    # The config it was synced with: the strategy reconfigured since (`set`), its mind is synced again with the new one.
    spec: StrategyConfig


@dataclass(slots=True)
class _Counts:
    asked: int = 0
    resent: int = 0
    stale: int = 0
    refused: int = 0
    synced: int = 0
    kept: int = 0
    undecodable: int = 0
    moved: int = 0


@dataclass(slots=True)
class _Waiting:
    """A strategy waiting for a worker: since when (monotonic)."""

    since: float
    excluded: dict[str, float] = field(default_factory=dict)


class HubMinds:
    """The daemon hub's MindClient (bot.cluster.lanes): workers taken in by Hello, strategies synced to one each, turns asked of it."""

    def __init__(
        self,
        connection: ClusterConnection,
        cid: str,
        catalog: StrategyCatalog,
        history: Callable[[str, str], Sequence[Candle]],
        ttl_s: float,
        logger: logging.Logger,
        clock: Callable[[], float] = time.monotonic,
        sync_timeout_s: float = 60.0,
    ) -> None:
        self._connection = connection
        # A mind's build and each chunk of its warm-up may take this long (a model loaded): the lane bounds the whole wait anyway.
        self._sync_timeout_s = sync_timeout_s
        self._cid = cid
        self._catalog = catalog
        self._history = history
        self._ttl_s = ttl_s
        self._log = logger
        self._clock = clock
        self._lines = ErrorLines(logger, clock)
        self._fingerprint = Fingerprint(bot_version=bot_version(), protocol=PROTOCOL, codec=CODEC_VERSION, strategies={})
        self._workers: dict[str, _Worker] = {}
        self._arrived = anyio.Event()
        self._slots: dict[str, _Slot] = {}
        self._asking: dict[str, anyio.CancelScope] = {}
        self._waiting: dict[str, _Waiting] = {}
        self._leases: LeaseBucket | None = None
        self._ready = anyio.Event()
        self._tg: anyio.abc.TaskGroup | None = None
        self._scope: anyio.CancelScope | None = None
        self._closing = False
        self._joins = 0
        self._gathered_at = 0.0
        # Strategies being synced, and to which worker: counted in the workers' loads meanwhile.
        self._placing: dict[str, str] = {}
        # Moves asked (bot ctl move), taken at the strategy's next turn; then the worker it goes to until it is synced there.
        self._moving: dict[str, str] = {}
        self._target: dict[str, str] = {}
        self._problem: str | None = "not connected yet"
        self.counts = _Counts()

    # -- the connection, Hellos and the lease watch --------------------------------------------
    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect (in the background: the daemon starts, its stops enforced, while the server is down), take Hellos, follow the leases."""
        task_status.started()
        with anyio.CancelScope() as scope:
            self._scope = scope
            if self._closing:
                return
            await self._serve()

    async def _serve(self) -> None:
        try:
            await self._connection.connect()
        except ClusterConnectError as exc:
            self._problem = str(exc)
            self._log.error("cluster: the hub cannot reach its workers: %s", exc)
            return
        client = self._connection.client
        await client.subscribe(hello_subject(self._cid), cb=self._on_hello)
        # Its workers say Hello at once; strategies are placed once they had the time to (a placement knowing one worker
        # of several would put every strategy on it).
        await client.publish(hub_started_subject(self._cid), b"")
        self._gathered_at = self._clock() + GATHER_S
        leases = LeaseBucket(self._connection, self._cid, self._ttl_s, self._log, clock=self._clock)
        while True:
            try:
                await leases.open()
                break
            except LeaseBucketError as exc:
                self._problem = str(exc)
                self._log.error("cluster: the hub cannot use the lease bucket: %s", exc)
                return
            except (nats.errors.Error, TimeoutError) as exc:
                self._lines("open", f"cluster: cannot open the lease bucket yet ({type(exc).__name__}: {exc}); trying again")
                await anyio.sleep(RETRY_S * 4)
        self._leases = leases
        self._problem = None
        async with anyio.create_task_group() as tg:
            self._tg = tg
            self._ready.set()
            while True:
                try:
                    async with await leases.watch() as watch:
                        async for change in watch:
                            self._on_change(change)
                except (LeaseWatchError, ClusterConnectError, nats.errors.Error, TimeoutError) as exc:
                    self._lines("watch", f"cluster: the lease watch ended ({exc}); watching again")
                    await anyio.sleep(RETRY_S * 4)

    async def close(self) -> None:
        """Stop following the leases and close the connection (leases are the workers': their minds stay for the next start)."""
        self._closing = True
        if self._scope is not None:
            self._scope.cancel()
        await self._connection.close()

    async def _on_hello(self, msg: NatsMsg) -> None:
        try:
            hello = decode(msg.data)
        except ProtocolError as exc:
            self.counts.undecodable += 1
            self._lines(f"hello:{msg.subject}", f"cluster: a message on {msg.subject} does not decode: {exc}")
            return
        if not isinstance(hello, Hello):
            self.counts.undecodable += 1
            self._lines(f"hello:{msg.subject}", f"cluster: a {type(hello).__name__} on {msg.subject}, where Hellos come")
            return
        problems = differences(self._fingerprint, hello.fingerprint)
        if problems:
            self._lines(f"refused:{hello.worker}", f"cluster: refused worker {hello.worker} (pid {hello.pid} on {hello.host}): {'; '.join(problems)}")
        else:
            known = self._workers.get(hello.worker)
            if known is None or known.hello.pid != hello.pid:
                self._joins += 1
                self._log.info("cluster: worker %s (pid %d on %s) taken in", hello.worker, hello.pid, hello.host)
            self._workers[hello.worker] = _Worker(hello, self._clock())
            self._arrived.set()
            self._arrived = anyio.Event()
        if msg.reply:
            await msg.respond(encode(Welcome(accepted=not problems, problems=problems)))

    def _on_change(self, change: LeaseChange) -> None:
        slot = self._slots.get(change.sid)
        if slot is None:
            placing = self._placing.get(change.sid)
            if placing is not None and not (isinstance(change, Claimed) and change.worker == placing):
                # Being synced to a worker whose claim went (or that lost it): that sync is no use, try again at once.
                scope = self._asking.get(change.sid)
                if scope is not None:
                    scope.cancel()
            return
        if isinstance(change, Claimed) and (change.worker, change.epoch) == (slot.worker, slot.epoch):
            return
        # Its lease expired, was released, or another worker claimed it: that mind's answers are no longer taken.
        del self._slots[change.sid]
        scope = self._asking.get(change.sid)
        if scope is not None:
            scope.cancel()
        self.counts.moved += 1
        what = f"expired or deleted ({change.reason})" if isinstance(change, Gone) else f"claimed by {change.worker}"
        self._log.warning("[%s] cluster: its lease on worker %s %s: its mind is synced again elsewhere", change.sid, slot.worker, what)

    # -- MindClient ------------------------------------------------------------------------------
    def forget(self, sid: str) -> None:
        """Synced again before it decides again (its role changed)."""
        self._slots.pop(sid, None)
        self._waiting.pop(sid, None)

    def available(self, sid: str) -> bool:
        """Whether a mind of `sid` could decide now: connected, and its mind synced or a worker taken in that may take it."""
        if not self._ready.is_set() or self._connection.health.state != "connected":
            return False
        if sid in self._slots:
            return True
        now = self._clock()
        waiting = self._waiting.get(sid)
        return any(w.live(now, self._ttl_s) and (waiting is None or waiting.excluded.get(name, 0) <= now) for name, w in self._workers.items())

    def joins(self) -> int:
        """How many workers were taken in so far (one restarted, a new pid, counts again)."""
        return self._joins

    def move(self, sid: str, worker: str) -> str | None:
        """Move `sid`'s mind to `worker` before its next decision (released where it is first); the worker it is on now. MoveRefused."""
        now = self._clock()
        target = self._workers.get(worker)
        if target is None or not target.live(now, self._ttl_s):
            live = sorted(name for name, w in self._workers.items() if w.live(now, self._ttl_s))
            raise MoveRefused(f"{sid}: worker {worker!r} is not taken in (live workers: {', '.join(live) or 'none'})")
        slot = self._slots.get(sid)
        current = slot.worker if slot is not None else None
        if current == worker and sid not in self._moving:
            raise MoveRefused(f"{sid}: its mind is on {worker} already")
        self._moving[sid] = worker
        return current

    def release(self, sid: str) -> None:
        """Unloaded: its worker is told to drop its mind and lease (in the background; a worker that misses it keeps a mind nobody asks)."""
        slot = self._slots.pop(sid, None)
        self._waiting.pop(sid, None)
        self._moving.pop(sid, None)
        self._target.pop(sid, None)
        workers = {slot.worker} if slot is not None else set()
        placing = self._placing.get(sid)
        if placing is not None:
            # A sync under way (cancelled with the lane): the worker may have claimed it already.
            workers.add(placing)
        if self._tg is not None:
            self._tg.start_soon(self._release_all, sid, workers)

    async def _release_all(self, sid: str, workers: set[str]) -> None:
        """Release `sid` on `workers` and on its lease's holder (its slot is gone already when its role changed before the unload)."""
        holder = await self._holder(sid) if self._leases is not None else None
        for worker in sorted(workers | ({holder.worker} if holder is not None else set())):
            await self._release(sid, worker)

    async def _release(self, sid: str, worker: str) -> None:
        released = await self._request(f"release:{sid}", worker, Release(sid=sid), RELEASE_TIMEOUT_S)
        if not isinstance(released, Released):
            self._lines(f"release:{worker}", f"[{sid}] cluster: worker {worker} answered its Release with {_describe(released)}")

    async def decide(
        self,
        owner: TradingOrchestrator,
        turn: PendingTurn,
        decided: int,
        view: Callable[[], View],
        undecided: Callable[[], dict[Stream, int]],
    ) -> Decision:
        """The decision on `turn` from the strategy's holder (synced first, failed over as the lease watch says); waits as long as it takes."""
        await self._ready.wait()
        sid = owner.strategy_id
        target = self._moving.pop(sid, None)
        if target is not None:
            # A move, between two turns: the mind released where it is (its lease too, so the target can claim it), then synced there.
            # Where it is: its lease's holder (a strategy deactivated, reconfigured or not decided since a restart has no slot here).
            self._target[sid] = target
            moved = self._slots.pop(sid, None)
            holder = await self._holder(sid)
            for worker in sorted({w for w in (moved.worker if moved else None, holder.worker if holder else None) if w and w != target}):
                await self._release(sid, worker)
        while True:
            slot = self._slots.get(sid)
            if slot is not None and slot.spec is not owner.spec:
                # Reconfigured since its sync: its mind is built again on the new config (its digest differs).
                del self._slots[sid]
                slot = None
            if slot is None:
                synced = await self._sync(owner, turn, decided, undecided)
                if isinstance(synced, Decision):
                    return synced
                if synced is None:
                    await anyio.sleep(RETRY_S)
                    continue
                slot = synced
            ask = Ask(
                sid=sid, lane=turn.lane, epoch=slot.epoch, n=turn.n, symbol=turn.symbol, tf=turn.tf, ts=turn.ts,
                candle=tuple(turn.candle), kind=turn.kind, view=view(),  # type: ignore[arg-type]
            )
            reply = await self._request(sid, slot.worker, ask, ASK_TIMEOUT_S)
            self.counts.asked += 1
            if self._slots.get(sid) is not slot:
                self.counts.stale += 1  # its holder changed meanwhile: whatever came is no answer
                continue
            if reply is None:
                self.counts.resent += 1
                continue
            if isinstance(reply, Decision) and reply.k == turn.n and reply.sid == sid:
                return reply
            self.counts.refused += 1
            self._lines(f"ask:{sid}", f"[{sid}] cluster: worker {slot.worker} answered turn {turn.n} with {_describe(reply)}: its mind is synced again")
            self._slots.pop(sid, None)

    async def _request(self, sid: str, worker: str, message: Message, timeout: float) -> Message | None:
        """One request to `worker`, its reply decoded; None when none came (no responders, timeout, the server down, cancelled by a lease change)."""
        data = encode(message)
        reply = None
        with anyio.CancelScope() as scope:
            self._asking[sid] = scope
            try:
                reply = await self._connection.client.request(turn_subject(self._cid, worker), data, timeout=timeout)
            except nats.errors.NoRespondersError:
                # Nobody listens under that name: gone, or restarting. Not chosen again before its next Hello;
                # its leases say when another may take over what it holds.
                known = self._workers.get(worker)
                if known is not None:
                    known.listening = False
                self._lines(f"noresp:{worker}", f"cluster: worker {worker} does not answer (no responders)")
                await anyio.sleep(RETRY_S)
            except (nats.errors.Error, TimeoutError) as exc:
                self._lines(f"request:{worker}", f"cluster: a request to worker {worker} failed ({type(exc).__name__}); sending it again")
                await anyio.sleep(RETRY_S if not isinstance(exc, nats.errors.TimeoutError) else 0)
            finally:
                if self._asking.get(sid) is scope:
                    del self._asking[sid]
        if reply is None:
            return None
        try:
            return decode(reply.data)
        except ProtocolError as exc:
            self.counts.undecodable += 1
            self._lines(f"reply:{worker}", f"cluster: worker {worker}'s reply does not decode: {exc}")
            return None

    # -- sync --------------------------------------------------------------------------------------
    async def _sync(
        self, owner: TradingOrchestrator, turn: PendingTurn, decided: int, undecided: Callable[[], dict[Stream, int]]
    ) -> _Slot | Decision | None:
        """The strategy's mind on a worker (kept, or built and warmed there); a failed Decision when its code fails there; None to try again."""
        sid = owner.strategy_id
        worker = await self._choose(sid)
        self._placing[sid] = worker
        try:
            return await self._sync_to(worker, owner, turn, decided, undecided)
        finally:
            del self._placing[sid]

    async def _sync_to(
        self, worker: str, owner: TradingOrchestrator, turn: PendingTurn, decided: int, undecided: Callable[[], dict[Stream, int]]
    ) -> _Slot | Decision | None:
        sid = owner.strategy_id
        spec = owner.spec
        sync = Sync(
            sid=sid, lane=turn.lane, spec=msgspec.Raw(spec.model_dump_json(exclude_unset=True).encode()), digest=strategy_digest(self._catalog, spec),
            decided=decided, pending=turn.n,
        )
        synced = await self._request(sid, worker, sync, self._sync_timeout_s)
        if not isinstance(synced, Synced) or synced.sid != sid:
            if synced is not None:
                self._lines(f"sync:{sid}", f"[{sid}] cluster: worker {worker} answered its Sync with {_describe(synced)}")
            return None
        if synced.refused is not None:
            if synced.lasting:
                # Not for this worker (its config or code of it differs there): another, or this one again later.
                self._waiting.setdefault(sid, _Waiting(self._clock())).excluded[worker] = self._clock() + EXCLUDED_S
                if self._target.pop(sid, None) == worker:
                    self._log.warning("[%s] cluster: not moved to worker %s, which cannot take it: %s", sid, worker, synced.refused)
            elif self._target.get(sid) == worker and synced.holder is not None and synced.holder != worker:
                # Moving, and another worker still holds it (its Release lost): it gives it up, the hub is who decides where it goes.
                await self._release(sid, synced.holder)
            # Otherwise a passing refusal (its lease held by another, or not claimable just now): tried again.
            self._lines(f"refused:{sid}:{worker}", f"[{sid}] cluster: worker {worker} did not take it: {synced.refused}")
            return None
        if synced.failure is not None:
            self._waiting.pop(sid, None)
            return _failed(sid, turn.n, synced.failure)
        if not synced.kept:
            failure = await self._warm(sid, worker, synced.streams, undecided())
            if isinstance(failure, Failure):
                self._waiting.pop(sid, None)
                return _failed(sid, turn.n, failure)
            if failure is not None:
                return None
            self.counts.synced += 1
        else:
            self.counts.kept += 1
        slot = _Slot(worker, synced.epoch, spec)
        self._slots[sid] = slot
        self._waiting.pop(sid, None)
        if self._target.get(sid) == worker:
            del self._target[sid]
        self._log.info("[%s] cluster: its mind is on worker %s (epoch %d%s)", sid, worker, synced.epoch, ", kept" if synced.kept else "")
        return slot

    async def _warm(self, sid: str, worker: str, streams: list[tuple[str, str]], undecided: dict[Stream, int]) -> Failure | str | None:
        """Send the mind the hub's history before the first undecided candle of each stream; its failure, a problem (try again), or None."""
        history = []
        for symbol, tf in streams:
            before = undecided.get((symbol, tf), math.inf)
            history.append((symbol, tf, [c for c in self._history(symbol, tf) if c.ts < before]))
        chunks = list(history_chunks(history, candles_per_chunk(self._connection.client.max_payload)))
        for i, chunk in enumerate(chunks):
            warmed = await self._request(sid, worker, Warm(sid=sid, history=chunk, done=i == len(chunks) - 1), self._sync_timeout_s)
            if not isinstance(warmed, Warmed) or warmed.sid != sid:
                return f"worker {worker} answered a warm-up with {_describe(warmed)}"
            if warmed.failure is not None:
                return warmed.failure
        return None

    async def _choose(self, sid: str) -> str:
        """The worker to sync `sid` to: its lease's holder if it is taken in, else the one holding fewest; waits for one."""
        assert self._leases is not None
        while self._clock() < self._gathered_at:
            await anyio.sleep(self._gathered_at - self._clock())
        while True:
            now = self._clock()
            # Shown in status from here on (a move's target too), until it is synced.
            waiting = self._waiting.setdefault(sid, _Waiting(now))
            target = self._target.get(sid)
            if target is not None:
                known = self._workers.get(target)
                if known is not None and known.live(now, self._ttl_s) and waiting.excluded.get(target, 0) <= now:
                    return target
                del self._target[sid]  # gone since the move was asked: placed as any other
            live = [name for name, w in self._workers.items() if w.live(now, self._ttl_s) and waiting.excluded.get(name, 0) <= now]
            holder = await self._holder(sid)
            if holder is not None and waiting.excluded.get(holder.worker, 0) <= now:
                known = self._workers.get(holder.worker)
                if known is None or known.live(now, self._ttl_s):
                    # Its holder, taken in or not yet (this hub just started): its mind may be kept. A holder that is gone
                    # answers nothing, and its lease expiring frees the strategy for another.
                    return holder.worker
            if holder is None and live:
                load = {name: 0 for name in live}
                for worker in [slot.worker for sid_, slot in self._slots.items() if sid_ not in self._placing] + list(self._placing.values()):
                    if worker in load:
                        load[worker] += 1
                return min(live, key=lambda name: (load[name], name))
            # No worker taken in, or its lease is another's (not taken in: gone, its lease not yet expired).
            self._lines(f"noworker:{sid}", f"[{sid}] cluster: waiting for a worker" + (f" (its lease is held by {holder.worker})" if holder else ""))
            with anyio.move_on_after(RETRY_S * 4):
                await self._arrived.wait()

    async def _holder(self, sid: str) -> Holder | None:
        """Who holds `sid`'s lease (None also when the server does not say now)."""
        assert self._leases is not None
        try:
            return await self._leases.holder(sid)
        except (nats.errors.Error, TimeoutError):
            return None

    # -- status ------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The workers taken in, where each strategy's mind is, the counts; `problem` while it cannot reach them."""
        now = self._clock()
        strategies: dict[str, list[str]] = {}
        for sid, slot in sorted(self._slots.items()):
            strategies.setdefault(slot.worker, []).append(sid)
        workers = {
            name: {"host": w.hello.host, "pid": w.hello.pid, "seen_s": round(now - w.seen, 1), "live": w.live(now, self._ttl_s), "strategies": strategies.get(name, [])}
            for name, w in sorted(self._workers.items())
        }
        return {
            "connection": self._connection.health.state,
            "problem": self._problem,
            "workers": workers,
            "minds": {sid: {"worker": slot.worker, "epoch": slot.epoch} for sid, slot in sorted(self._slots.items())},
            "waiting": {sid: round(now - w.since, 1) for sid, w in sorted(self._waiting.items())},
            "counts": {name: getattr(self.counts, name) for name in self.counts.__slots__},
        }

    def where(self, sid: str) -> tuple[str, int] | None:
        """The worker and epoch holding `sid`'s mind, if synced."""
        slot = self._slots.get(sid)
        return None if slot is None else (slot.worker, slot.epoch)


def _failed(sid: str, n: int, failure: Failure) -> Decision:
    """The strategy's code failed on the worker (building or warming its mind): a decision that fails it."""
    return Decision(k=n, sid=sid, actions=[], events=[], failure=failure, busy_ns=0)


def _describe(message: Message | None) -> str:
    if message is None:
        return "nothing"
    reason = getattr(message, "reason", None)
    return f"a {type(message).__name__}" + (f" ({reason})" if reason else "")
