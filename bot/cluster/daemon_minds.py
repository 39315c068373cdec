"""A daemon worker's minds: per strategy its mind and its lease, answering the hub's Sync, Warm, Ask and Release one request at a time."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import nats.errors

from bot.cluster.error_lines import ErrorLines
from bot.cluster.fingerprint import strategy_digest
from bot.cluster.leases import Holder, Lease, LeaseLost
from bot.cluster.messages import (
    Ask,
    Message,
    ProtocolError,
    Refused,
    Release,
    Released,
    Sync,
    Synced,
    Warm,
    Warmed,
    decode,
    encode,
)
from bot.cluster.mind import Mind, describe
from bot.config.models import StrategyConfig
from bot.ohlcv import Candle
from bot.strategy.base import Strategy, StrategyContext, Stream
from bot.strategy.catalog import StrategyCatalog
from bot.strategy.config_check import PARAMS_CHECKS

# What a lease request may raise when the server is slow or the connection is down: the outcome is unknown, the old Lease is kept.
_UNREACHABLE = (nats.errors.Error, OSError)


class Leases(Protocol):
    """The lease operations the minds need (LeaseBucket has them)."""

    async def claim(self, sid: str, worker: str) -> Lease | None:
        """Claim `sid` for `worker`: the Lease, or None when not won."""

    async def holder(self, sid: str) -> Holder | None:
        """Who holds `sid`'s lease now, if anyone."""

    async def renew(self, lease: Lease) -> Lease:
        """Heartbeat: the renewed Lease; LeaseLost when it is no longer ours."""

    async def release(self, lease: Lease) -> bool:
        """Give the lease up: whether it was still ours."""


@dataclass(eq=False, slots=True)
class _Held:
    """One strategy on this worker: its mind, its lease, what it has decided, its warm-up so far and its last decision."""

    mind: Mind
    lease: Lease
    # The hub's lane it decides for (Sync.lane): asks of another lane are refused, its cache never answers them.
    lane: str
    digest: str
    # The n of the last turn it decided (or the hub's `decided` at the Sync that built it).
    decided: int
    # The warm-up history received so far; None once warmed.
    warming: dict[Stream, list[Candle]] | None
    # The last decision, encoded: a repeated Ask (the hub's reply lost) gets the same bytes, the mind not asked again.
    cached: tuple[int, bytes] | None = None


class DaemonMinds:
    """The minds of daemon worker `name` and their leases; `answer` takes one encoded request and returns its encoded reply, never raising."""

    def __init__(
        self,
        catalog: StrategyCatalog,
        name: str,
        leases: Leases,
        logger: logging.Logger,
        clock: Callable[[], float] = time.monotonic,
        on_refused: Callable[[str], None] | None = None,
        decide_timeout_s: float = 60.0,
    ) -> None:
        self._catalog = catalog
        # A decision still running after this long is given up and its mind dropped (its thread cannot be stopped): the hub places
        # the strategy again, rather than every strategy of this worker waiting behind it.
        self._decide_timeout_s = decide_timeout_s
        self._name = name
        self._leases = leases
        self._log = logger
        # Monotonic, as the leases' expires_at.
        self._clock = clock
        self._on_refused = on_refused
        self._errors = ErrorLines(logger, clock)
        self._held: dict[str, _Held] = {}
        # One decide at a time: the minds share this worker's thread pool, and a mind is not thread-safe.
        self._deciding = asyncio.Lock()
        self.asked = 0
        self.cached = 0
        self.refused = 0

    def _build_strategy(self, context: StrategyContext) -> Strategy[Any]:
        spec = context.spec
        return self._catalog.build(spec.module, spec.class_name, spec.params, context)

    def strategy_ids(self) -> list[str]:
        """The strategies it holds a warmed mind of."""
        return [sid for sid, held in self._held.items() if held.warming is None]

    def status(self) -> dict[str, Any]:
        """Per strategy its lease's epoch, the last turn decided and the cached decision's n; the counts of asks, cached answers, refusals."""
        strategies = {
            sid: {"epoch": held.lease.epoch, "decided": held.decided, "cached": held.cached[0] if held.cached is not None else None}
            for sid, held in self._held.items()
        }
        return {"strategies": strategies, "asked": self.asked, "cached": self.cached, "refused": self.refused}

    async def answer(self, data: bytes) -> bytes:
        """The encoded reply to one encoded request: what it cannot act on gets a Refused saying why, never an exception."""
        try:
            return await self._answer(decode(data))
        except ProtocolError as exc:
            return self._refuse(str(exc))
        except Exception as exc:  # noqa: BLE001  never into the connection's callback: the hub is told why and goes on
            self._log.exception("cluster: worker %s failed on a request", self._name)
            return self._refuse(f"worker {self._name} failed: {type(exc).__name__}: {exc}")

    def _refuse(self, reason: str) -> bytes:
        self.refused += 1
        if self._on_refused is not None:
            self._on_refused(reason)
        return encode(Refused(reason=reason))

    async def _answer(self, message: Message) -> bytes:
        if isinstance(message, Sync):
            return encode(await self._sync(message))
        if isinstance(message, Warm):
            return encode(await self._warm(message))
        if isinstance(message, Ask):
            return await self._ask(message)
        if isinstance(message, Release):
            await self._drop(message.sid, "the hub released it")
            return encode(Released(sid=message.sid))
        raise ProtocolError(f"a daemon worker answers Sync, Warm, Ask and Release, not {type(message).__name__}")

    def _live(self, lease: Lease) -> bool:
        return lease.expires_at > self._clock()

    def _refused_sync(self, sid: str, reason: str, holder: str | None = None, lasting: bool = False) -> Synced:
        return Synced(sid=sid, epoch=0, kept=False, streams=[], failure=None, refused=reason, holder=holder, lasting=lasting)

    async def _sync(self, sync: Sync) -> Synced:
        sid = sync.sid
        try:
            spec = StrategyConfig.model_validate_json(bytes(sync.spec), context=PARAMS_CHECKS)
        except ValueError as exc:
            # The hub validated it: here it does not, so this worker's code or config differs.
            await self._drop(sid, "the hub's config of it does not validate here")
            return self._refused_sync(sid, f"strategy {sid}: its config does not validate on worker {self._name}: {exc}", lasting=True)
        if spec.id != sid:
            return self._refused_sync(sid, f"strategy {sid}: the Sync's config is of strategy {spec.id}", lasting=True)
        if strategy_digest(self._catalog, spec) != sync.digest:
            # Not servable here: whatever mind of it this worker holds must not keep its lease from a worker that can.
            await self._drop(sid, "its config or code differs from the hub's")
            return self._refused_sync(sid, f"strategy {sid}: its config or code differs on worker {self._name} from the hub's", lasting=True)
        held = self._held.get(sid)
        if held is not None and held.warming is None and not self._live(held.lease):
            # Its renewals failed a while (the server restarted, the link was down): still ours if the server says so, and the mind kept.
            try:
                held.lease = await self._leases.renew(held.lease)
            except LeaseLost as lost:
                self._forget(sid, held, f"lost: {lost.reason}")
                held = None
            except _UNREACHABLE as exc:
                return self._refused_sync(sid, f"its lease could not be renewed ({type(exc).__name__}), try again")
        if held is not None and self._kept(held, sync):
            return Synced(sid=sid, epoch=held.lease.epoch, kept=True, streams=[], failure=None, refused=None, holder=None)
        if held is not None and self._unwarmed(held, sync):
            # Built for this very sync before (the hub's request timed out while a slow constructor ran): warmed from the start, not built again.
            held.warming = {}
            return Synced(sid=sid, epoch=held.lease.epoch, kept=False, streams=held.mind.subscriptions(), failure=None, refused=None, holder=None)
        lease = await self._lease_for(sid, held)
        if isinstance(lease, Synced):
            return lease
        try:
            async with self._deciding:
                # In a thread, as decisions: a slow constructor (a model loaded) must not hold up the lease heartbeats.
                mind = await asyncio.to_thread(Mind, spec, self._build_strategy)
        except Exception as exc:  # noqa: BLE001  the seam: what its code raises is its failure, reported to the hub
            self._held.pop(sid, None)
            await self._release(lease)
            return Synced(sid=sid, epoch=lease.epoch, kept=False, streams=[], failure=describe(exc), refused=None, holder=None)
        self._held[sid] = _Held(mind, lease, sync.lane, sync.digest, sync.decided, warming={})
        return Synced(sid=sid, epoch=lease.epoch, kept=False, streams=mind.subscriptions(), failure=None, refused=None, holder=None)

    def _kept(self, held: _Held, sync: Sync) -> bool:
        """Whether the mind held is the one the hub means: warmed, of the same digest, its lease live, decided through `decided` (or `pending`, cached)."""
        if held.warming is not None or held.lane != sync.lane or held.digest != sync.digest or not self._live(held.lease):
            return False
        if held.decided == sync.decided:
            return True
        return sync.pending is not None and held.decided == sync.pending and held.cached is not None and held.cached[0] == sync.pending

    def _unwarmed(self, held: _Held, sync: Sync) -> bool:
        """Whether the mind held was built for this sync and not warmed yet: same lane, digest and decided, its lease live."""
        return (
            held.warming is not None and held.lane == sync.lane and held.digest == sync.digest and held.decided == sync.decided and self._live(held.lease)
        )

    async def _lease_for(self, sid: str, held: _Held | None) -> Lease | Synced:
        """The lease to build `sid`'s mind under: the one held if still ours, else a new claim; a refused Synced when neither."""
        if held is not None:
            lease = held.lease
            if self._live(lease):
                return lease
            # Its deadline passed without a renewal: still ours only if the server says so (a compare-and-set on our revision).
            try:
                renewed = await self._leases.renew(lease)
            except LeaseLost as lost:
                self._forget(sid, held, f"lost: {lost.reason}")
            except _UNREACHABLE as exc:
                return self._refused_sync(sid, f"its lease could not be renewed ({type(exc).__name__}), try again")
            else:
                held.lease = renewed
                return renewed
        try:
            claimed = await self._leases.claim(sid, self._name)
            if claimed is not None:
                return claimed
            holder = await self._leases.holder(sid)
        except ValueError as exc:
            return self._refused_sync(sid, f"strategy {sid}: {exc}")
        except _UNREACHABLE as exc:
            return self._refused_sync(sid, f"its lease could not be claimed ({type(exc).__name__}), try again")
        if holder is None:
            return self._refused_sync(sid, "its lease could not be claimed, try again")
        return self._refused_sync(sid, f"held by worker {holder.worker}", holder.worker)

    async def _warm(self, message: Warm) -> Warmed:
        sid = message.sid
        held = self._held.get(sid)
        if held is None or held.warming is None:
            raise ProtocolError(f"warm-up of {sid!r}: no mind of it being built here")
        taken = held.warming
        for part in message.history:
            taken.setdefault((part.symbol, part.tf), []).extend(Candle(*c) for c in part.candles)
        if not message.done:
            return Warmed(sid=sid, failure=None)
        held.warming = None
        try:
            async with self._deciding:
                await asyncio.to_thread(held.mind.warm_up, taken)
        except Exception as exc:  # noqa: BLE001  the seam: what its code raises is its failure, reported to the hub
            await self._drop(sid, "its warm-up failed")
            return Warmed(sid=sid, failure=describe(exc))
        return Warmed(sid=sid, failure=None)

    async def _ask(self, ask: Ask) -> bytes:
        sid = ask.sid
        if ask.kind == "history":
            raise ProtocolError(f"turn {ask.n} of {sid}: a daemon mind is asked trade and other candles, not history")
        held = self._held.get(sid)
        if held is None or held.warming is not None or held.lane != ask.lane or held.lease.epoch != ask.epoch or not self._live(held.lease):
            # Fencing: a mind whose lease may be another's by now decides nothing.
            raise ProtocolError(f"not the holder of {sid} under epoch {ask.epoch}")
        if held.cached is not None and held.cached[0] == ask.n:
            self.cached += 1
            return held.cached[1]
        if ask.n <= held.decided:
            raise ProtocolError(f"turn {ask.n} of {sid} already decided (through {held.decided})")
        self.asked += 1
        try:
            async with self._deciding:
                # In a thread: a slow strategy must not hold up the lease heartbeats on this loop.
                decision = await asyncio.wait_for(
                    asyncio.to_thread(held.mind.decide, ask.n, ask.symbol, ask.tf, Candle(*ask.candle), ask.ts, ask.kind, ask.view), self._decide_timeout_s,
                )
        except TimeoutError:
            await self._drop(sid, f"it did not decide turn {ask.n} within {self._decide_timeout_s:g} s")
            raise ProtocolError(f"turn {ask.n} of {sid}: its mind did not decide within {self._decide_timeout_s:g} s: dropped on worker {self._name}") from None
        if self._held.get(sid) is not held or held.lease.epoch != ask.epoch or not self._live(held.lease):
            raise ProtocolError(f"not the holder of {sid} under epoch {ask.epoch} any more (its lease was lost while deciding turn {ask.n})")
        if decision is None:
            raise ProtocolError(f"turn {ask.n} of {sid}: its mind decided nothing")
        reply = encode(decision)
        held.decided = ask.n
        held.cached = (ask.n, reply)
        return reply

    async def _drop(self, sid: str, why: str) -> None:
        """Drop `sid`'s mind, if held, and release its lease."""
        held = self._held.pop(sid, None)
        if held is not None:
            self._log.info("cluster: worker %s dropped its mind of %s (%s)", self._name, sid, why)
            await self._release(held.lease)

    def _forget(self, sid: str, held: _Held, why: str) -> None:
        """Drop the mind `held` at once (its lease is not ours any more), if it is still the one held of `sid`."""
        if self._held.get(sid) is held:
            del self._held[sid]
            self._log.warning("cluster: worker %s: lease on strategy %s %s; its mind dropped", self._name, sid, why)

    async def _release(self, lease: Lease) -> None:
        try:
            await self._leases.release(lease)
        except _UNREACHABLE as exc:
            # Unreleased, it expires after the TTL: no renewal follows.
            self._errors("release", f"cluster: worker {self._name} could not release its lease on {lease.sid} ({type(exc).__name__}); it expires on its own")

    async def heartbeat(self) -> None:
        """Renew every lease held, concurrently; a lease lost drops its mind at once, a server not answering keeps the old Lease."""
        held = list(self._held.items())
        results = await asyncio.gather(*(self._leases.renew(h.lease) for _, h in held), return_exceptions=True)
        for (sid, h), result in zip(held, results, strict=True):
            # Matched by the claim's token, not by the entry: a Release, or a Sync rebuilding the mind under the same lease, may have come meanwhile.
            current = self._held.get(sid)
            ours = current is not None and current.lease.token == h.lease.token
            if isinstance(result, Lease):
                if current is not None and ours and result.hb > current.lease.hb:
                    current.lease = result
            elif isinstance(result, LeaseLost):
                if current is not None and ours:
                    self._forget(sid, current, f"lost: {result.reason}")
            elif isinstance(result, _UNREACHABLE):
                # Its expires_at fences Ask meanwhile; the next heartbeat tries again.
                self._errors("renew", f"cluster: worker {self._name} could not renew its leases ({type(result).__name__}: {result}); retrying")
            elif isinstance(result, BaseException):
                raise result

    async def release_all(self) -> None:
        """Release every lease held and drop every mind (a graceful stop)."""
        held = list(self._held.values())
        self._held.clear()
        await asyncio.gather(*(self._release(h.lease) for h in held))
