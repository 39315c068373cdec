"""Leases on strategies in the KV bucket `leases_<cid>`: claim, renew, release, who holds one, a watch of every change; epochs for fencing.

A lease is the key `lease.<sid>` holding {worker, hb, token, epoch}. The bucket's TTL expires a key not
renewed in time and the server leaves a limit marker (a PURGE with `Nats-Marker-Reason`) that
watchers see. The revision of the claiming write is the lease's epoch: a stream sequence, so it
only grows, across claims and server restarts alike. Renewals write new revisions and carry the
epoch in the value, so whoever reads the key later still learns the claim's epoch. The token is
random per claim: only the process that made a claim knows it, so two processes under one worker
name never both hold a lease (a claim never adopts a live lease, a renewal never takes over one).

A nats.errors.TimeoutError from claim, renew or release means the outcome is unknown: the write
may be stored after a reconnect. A worker stops acting for a strategy once its Lease's
`expires_at` passes without a successful renewal, whatever it believes.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Self

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg as NatsMsg
from nats.aio.subscription import Subscription
from nats.js.api import DeliverPolicy, KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from bot.cluster.connection import ClusterConnection
from bot.cluster.error_lines import ErrorLines
from bot.cluster.subjects import check_token
from bot.errors import BotError

KEY_PREFIX = "lease."
# Seconds the server keeps an expiry marker: long enough for every watcher to be sent it.
MARKER_TTL_S = 1.0
# The server expires keys to the second (nats.c#1001): below 2 s a lease could vanish between two renewals of a healthy worker.
MIN_TTL_S = 2.0
# The worker named by a lease whose value does not decode: no real worker's name (not a subject token).
UNKNOWN_WORKER = "?"
# JetStream's error codes for a failed compare-and-set (wrong last sequence on the subject).
_WRONG_LAST_SEQUENCE = (10071, 10164)
# Times a claim re-reads the key when it changes under it (a marker expiring, another claimer): then it gives up as not won.
_CLAIM_ATTEMPTS = 3
# Seconds between the server's idle heartbeats to a watch (nats-py's default: 5).
WATCH_HEARTBEAT_S = 1.0
# Seconds between attempts of a watch to subscribe again after a reconnect, while the server is not ready for it.
_RESUBSCRIBE_S = 0.5
# Changes a watch holds for a slow reader; beyond, the client's delivery waits (the ordered consumer resumes in order).
_WATCH_QUEUE = 256
# Random bytes of a claim's token (hex in the value): no two claims share one.
_TOKEN_BYTES = 8
# A strategy id (bot/config/models.py) as a KV key: no empty token between dots.
_SID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")
_KV_OPERATION = "KV-Operation"
_MARKER_REASON = "Nats-Marker-Reason"
# How to make a bad bucket again. Deleting it starts the revisions, and so the epochs, again at 1: a worker still running with
# an old epoch could then match a new claim's, hence every process stops first.
_MAKE_AGAIN = "stop every process of the cluster (workers and hub), then delete the bucket (nats kv del {bucket}) so that the next start makes it again"


class LeaseBucketError(BotError):
    """The lease bucket on the server cannot be used as configured (another TTL, no expiry markers): the message says what to do."""


class LeaseLost(BotError):
    """A renewal lost its compare-and-set: the lease expired and was claimed by another, or was deleted; the worker must drop the strategy."""

    def __init__(self, sid: str, worker: str, reason: str) -> None:
        super().__init__(f"lease on {sid} lost by {worker}: {reason}")
        self.sid = sid
        self.worker = worker
        self.reason = reason


class LeaseValue(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """What a lease key holds: its worker, the heartbeat count, the claim's token, and (from the first renewal on) the claim's epoch."""

    worker: str
    hb: int
    # Random per claim, known only to the claiming process: tells its writes from those of another process under the same name.
    token: str
    # None on the claim itself: the claim's revision is the epoch, unknown until the server stores it.
    epoch: int | None = None


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease this process holds: `epoch` the claim's revision (fixed), `revision` the key's latest write, `expires_at` its local deadline.

    `expires_at` is on the monotonic clock: the time taken just before the request that made the
    latest write, plus the TTL. The server expires the key no earlier, so once `expires_at` passes
    without a successful renewal another worker may hold the strategy: stop acting for it.
    """

    sid: str
    worker: str
    epoch: int
    revision: int
    token: str
    expires_at: float
    hb: int = 0


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a lease now; a value that does not decode is held by UNKNOWN_WORKER, `problem` saying why."""

    sid: str
    worker: str
    epoch: int
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Claimed:
    """A watch's news: `worker` holds `sid` from `epoch` on (a new claim, or the holder the watch found at its start)."""

    sid: str
    worker: str
    epoch: int


@dataclass(frozen=True, slots=True)
class Gone:
    """A watch's news: nobody holds `sid` (`reason`: expired, deleted or purged)."""

    sid: str
    reason: str


LeaseChange = Claimed | Gone


def is_current(holder: Holder | None, worker: str, epoch: int) -> bool:
    """Fencing: whether a message from `worker` under `epoch` comes from the lease's present holder."""
    return holder is not None and holder.problem is None and holder.worker == worker and holder.epoch == epoch


def check_sid(sid: str) -> str:
    """`sid` if it can name a lease key, else ValueError."""
    if len(sid) > 64 or not _SID.fullmatch(sid):
        raise ValueError(f"strategy id {sid!r} cannot name a lease: 1-64 letters, digits, '_', '-' or '.' (not at either end, not two in a row)")
    return sid


def _gone_reason(headers: dict[str, str] | None) -> str | None:
    """Why the message with `headers` ends a lease (a limit marker, a delete, a purge), or None for a value."""
    if not headers:
        return None
    marker = headers.get(_MARKER_REASON)
    if marker is not None:
        return "expired" if marker == "MaxAge" else f"removed by the server ({marker})"
    operation = headers.get(_KV_OPERATION)
    if operation == "DEL":
        return "deleted"
    if operation == "PURGE":
        return "purged"
    return None


@dataclass(frozen=True, slots=True)
class _Live:
    seq: int
    holder: Holder
    # None when the value does not decode (the holder says why).
    value: LeaseValue | None = None


@dataclass(frozen=True, slots=True)
class _Ended:
    seq: int
    reason: str


_Read = _Live | _Ended | None

_decoder = msgspec.json.Decoder(LeaseValue)
_encoder = msgspec.json.Encoder()


class LeaseBucket:
    """The lease bucket `leases_<cid>` on the cluster's server: `open()` it, then claim, renew, release, ask or watch."""

    def __init__(
        self,
        connection: ClusterConnection,
        cid: str,
        ttl_s: float,
        logger: logging.Logger,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s < MIN_TTL_S:
            raise ValueError(f"a lease TTL of {ttl_s:g} s is too short: at least {MIN_TTL_S:g} s (the server expires keys to the second)")
        self._connection = connection
        self.cid = check_token("cluster id", cid)
        self.ttl_s = ttl_s
        self.bucket = f"leases_{cid}"
        self._stream = f"KV_{self.bucket}"
        self._subject_prefix = f"$KV.{self.bucket}.{KEY_PREFIX}"
        self._clock = clock
        self._error_lines = ErrorLines(logger, clock)
        self._kv: KeyValue | None = None

    async def open(self) -> None:
        """Bind the bucket, creating it if missing; LeaseBucketError if it exists with another TTL, in memory, or without expiry markers."""
        js = self._connection.jetstream()
        try:
            kv = await js.key_value(self.bucket)
        except nats.js.errors.BucketNotFoundError:
            config = KeyValueConfig(bucket=self.bucket, history=1, ttl=self.ttl_s, storage=StorageType.FILE, limit_marker_ttl=MARKER_TTL_S)
            try:
                kv = await js.create_key_value(config)
            except nats.js.errors.BadRequestError as clash:
                # Another process created it at the same moment, with a configuration of its own: bind it and compare below.
                if clash.err_code != 10058:
                    raise
                kv = await js.key_value(self.bucket)
        status = await kv.status()
        make_again = _MAKE_AGAIN.format(bucket=self.bucket)
        if status.ttl is None or abs(status.ttl - self.ttl_s) > 1e-3:
            found = "no TTL" if not status.ttl else f"a TTL of {status.ttl:g} s"
            raise LeaseBucketError(
                f"lease bucket {self.bucket} exists with {found}, not the {self.ttl_s:g} s of cluster.lease_ttl_s: "
                f"every process of the cluster needs the same lease_ttl_s (to change it: {make_again})"
            )
        storage = status.stream_info.config.storage
        if storage != StorageType.FILE:
            # nats-py leaves the server's word ("memory") in the field typed StorageType: a str enum, compared and shown as such.
            kind = str(getattr(storage, "value", storage))
            raise LeaseBucketError(
                f"lease bucket {self.bucket} exists with {kind} storage, not file: its revisions, the leases' epochs, would start "
                f"again at 1 after a server restart, and a stale worker's epoch could match a new claim; {make_again}"
            )
        if not status.marker_ttl:
            raise LeaseBucketError(
                f"lease bucket {self.bucket} exists without limit markers (subject_delete_marker_ttl): nobody would see a lease expire; {make_again}"
            )
        self._kv = kv

    def _require_open(self) -> KeyValue:
        if self._kv is None:
            raise LeaseBucketError(f"lease bucket {self.bucket}: open() it first")
        return self._kv

    async def _read(self, sid: str) -> _Read:
        """The last message of `lease.<sid>` as it is on the server: None (no key), ended (a marker or delete) or live."""
        try:
            message = await self._connection.jetstream().get_msg(self._stream, subject=self._subject_prefix + sid)
        except nats.js.errors.NotFoundError:
            return None
        seq = message.seq or 0
        reason = _gone_reason(message.headers)
        if reason is not None:
            return _Ended(seq, reason)
        data = message.data or b""
        value = self._value(data)
        return _Live(seq, self._holder(sid, seq, data, value), value if isinstance(value, LeaseValue) else None)

    @staticmethod
    def _value(data: bytes) -> LeaseValue | msgspec.MsgspecError:
        try:
            return _decoder.decode(data)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            return exc

    def _holder(self, sid: str, seq: int, data: bytes, value: LeaseValue | msgspec.MsgspecError) -> Holder:
        if isinstance(value, msgspec.MsgspecError):
            problem = f"lease {KEY_PREFIX}{sid} (revision {seq}) in {self.bucket} does not decode: {value}: {bytes(data[:80])!r}"
            return Holder(sid, UNKNOWN_WORKER, seq, problem)
        return Holder(sid, value.worker, value.epoch if value.epoch is not None else seq)

    async def holder(self, sid: str) -> Holder | None:
        """Who holds `sid`'s lease now (None: never claimed, expired, released); an undecodable value is held by UNKNOWN_WORKER."""
        self._require_open()
        read = await self._read(check_sid(sid))
        return read.holder if isinstance(read, _Live) else None

    async def claim(self, sid: str, worker: str) -> Lease | None:
        """Claim `sid` for `worker`: the Lease (its epoch the claim's revision, a new random token), or None when not won.

        None when another worker holds the lease live; when a process under this same worker name
        holds it live (another claim's token: a second process with this name, this worker before a
        restart, or this process's own earlier claim whose timed-out write was stored after all: a
        claim never adopts a live lease it did not make, and an unrenewed one expires after the TTL);
        when the value does not decode (held by UNKNOWN_WORKER); or when the key changed under the
        claim at each of its attempts (other claimers racing). `holder()` tells these apart.
        A nats.errors.TimeoutError means the outcome is unknown (see the module's docstring).
        """
        kv = self._require_open()
        key = KEY_PREFIX + check_sid(sid)
        token = secrets.token_hex(_TOKEN_BYTES)
        value = _encoder.encode(LeaseValue(check_token("worker", worker), 0, token))
        try:
            started = self._clock()
            # create also claims over a delete tombstone (nats-py retries it as an update).
            revision = await kv.create(key, value)
            return Lease(sid, worker, revision, revision, token, started + self.ttl_s)
        except nats.js.errors.KeyWrongLastSequenceError:
            pass
        for _ in range(_CLAIM_ATTEMPTS):
            read = await self._read(sid)
            if isinstance(read, _Live):
                return None
            try:
                started = self._clock()
                if read is None:
                    # The expiry marker expired in between: the key is new again.
                    revision = await kv.create(key, value)
                else:
                    # nats-py's create cannot claim over a server's limit marker (nats-server#6712): compare-and-set on it.
                    revision = await kv.update(key, value, last=read.seq)
            except nats.js.errors.KeyWrongLastSequenceError:
                continue
            return Lease(sid, worker, revision, revision, token, started + self.ttl_s)
        return None

    @staticmethod
    def _retried(lease: Lease, read: _Read) -> _Live | None:
        """`read` if the key's last write is the one a renewal of `lease` makes (this Lease's next heartbeat under its token), else None.

        Such a write was stored though its request failed (a timeout while reconnecting) and is
        being retried. The token rules out another process under the same worker name; the
        heartbeat, a Lease object older than the last renewal.
        """
        if not isinstance(read, _Live) or read.value is None:
            return None
        value = read.value
        return read if (value.worker, value.token, value.hb, value.epoch) == (lease.worker, lease.token, lease.hb + 1, lease.epoch) else None

    async def renew(self, lease: Lease) -> Lease:
        """Heartbeat: write the lease again if it is still ours (compare-and-set on its last revision); LeaseLost when it is not.

        Every success is a write that restarts the key's age, and moves `expires_at`. A
        nats.errors.TimeoutError means the outcome is unknown: renew the same Lease again (a
        stored earlier attempt is recognised by its token and heartbeat) until `expires_at`.
        """
        kv = self._require_open()
        key = KEY_PREFIX + lease.sid
        beat = lease.hb + 1
        try:
            started = self._clock()
            revision = await kv.update(key, _encoder.encode(LeaseValue(lease.worker, beat, lease.token, lease.epoch)), last=lease.revision)
            return replace(lease, revision=revision, hb=beat, expires_at=started + self.ttl_s)
        except nats.js.errors.KeyWrongLastSequenceError:
            pass
        read = await self._read(lease.sid)
        ours = self._retried(lease, read)
        if ours is None:
            raise LeaseLost(lease.sid, lease.worker, self._lost_reason(lease, read))
        # Our own earlier attempt, stored at some unknown time: write once more on it, so that the key's age restarts now.
        beat += 1
        try:
            started = self._clock()
            revision = await kv.update(key, _encoder.encode(LeaseValue(lease.worker, beat, lease.token, lease.epoch)), last=ours.seq)
        except nats.js.errors.KeyWrongLastSequenceError:
            raise LeaseLost(lease.sid, lease.worker, self._lost_reason(lease, await self._read(lease.sid))) from None
        return replace(lease, revision=revision, hb=beat, expires_at=started + self.ttl_s)

    def _lost_reason(self, lease: Lease, read: _Read) -> str:
        if read is None:
            return f"expired (no key {KEY_PREFIX}{lease.sid} left)"
        if isinstance(read, _Ended):
            return f"{read.reason} (revision {read.seq})"
        if read.holder.problem is not None:
            return read.holder.problem
        value = read.value
        if value is not None and (value.worker, read.holder.epoch) == (lease.worker, lease.epoch):
            if value.token != lease.token:
                return f"held by {value.worker} with epoch {lease.epoch} under another claim's token: a second process named {value.worker}"
            return f"renewed past this Lease (heartbeat {value.hb} stored, this Lease's next is {lease.hb + 1}): renew the latest Lease"
        return f"claimed by {read.holder.worker} with epoch {read.holder.epoch} (ours was {lease.epoch})"

    async def release(self, lease: Lease) -> bool:
        """Give the lease up at once (a delete on its last revision): True; False when it is no longer ours, left as it is.

        A renewal of `lease` whose request failed but whose write was stored is recognised (token
        and heartbeat) and released too. A nats.errors.TimeoutError means the outcome is unknown.
        """
        kv = self._require_open()
        key = KEY_PREFIX + lease.sid
        if await self._delete(kv, key, lease.revision):
            return True
        ours = self._retried(lease, await self._read(lease.sid))
        return ours is not None and await self._delete(kv, key, ours.seq)

    @staticmethod
    async def _delete(kv: KeyValue, key: str, last: int) -> bool:
        """Delete `key` if its last revision is `last`: whether it was."""
        try:
            await kv.delete(key, last=last)
        except nats.js.errors.KeyWrongLastSequenceError:
            return False
        except nats.js.errors.APIError as exc:
            if exc.err_code not in _WRONG_LAST_SEQUENCE:
                raise
            return False
        return True

    async def watch(self) -> LeaseWatch:
        """A watch of every lease, listening before this returns: first the present holders (and ends), then each change."""
        self._require_open()
        watch = LeaseWatch(self._connection, self._subject_prefix + ">", self._stream, self._change, self._error_lines)
        await watch.start()
        return watch

    def _change(self, message: NatsMsg) -> LeaseChange | None:
        """The change a watched message makes (None: a value that does not decode, logged at most once a minute)."""
        sid = message.subject.removeprefix(self._subject_prefix)
        reason = _gone_reason(message.headers)
        if reason is not None:
            return Gone(sid, reason)
        seq = message.metadata.sequence.stream
        holder = self._holder(sid, seq, message.data, self._value(message.data))
        if holder.problem is not None:
            self._error_lines("bad lease value", f"cluster: {holder.problem}; skipped")
            return None
        return Claimed(sid, holder.worker, holder.epoch)


class LeaseWatchError(BotError):
    """A lease watch ended without stop(): its connection closed, or an unforeseen error (the cause); start a new watch."""


class LeaseWatch:
    """The changes of every lease of a bucket, in order: `async for change in watch`; `stop()` (or `async with`) ends it.

    Renewals are not changes: a lease is reported again only when its worker or epoch changes, or
    it ends. After a reconnect the watch subscribes again and reports the net changes meanwhile:
    an ordered consumer lives in the server's memory, and nats-py re-creates a lost one only
    after missed heartbeats, by when a lease may have expired and its marker too, unseen.
    When the connection closes, or following it fails in a way no retry is known to fix, the
    iteration raises LeaseWatchError after the changes already queued: a stale view of the leases
    must not pass for a quiet one.
    """

    def __init__(
        self, connection: ClusterConnection, subject: str, stream: str, change: Callable[[NatsMsg], LeaseChange | None], errors: ErrorLines
    ) -> None:
        self._connection = connection
        self._subject = subject
        self._stream = stream
        self._change = change
        self._errors = errors
        self._subscription: Subscription | None = None
        self._follower: asyncio.Task[None] | None = None
        # The changes not read yet, at most _WATCH_QUEUE; the condition wakes the reader, and deliveries waiting for room.
        self._changes: collections.deque[LeaseChange] = collections.deque()
        self._changed = asyncio.Condition()
        # What this watch last reported per lease: renewals repeat it and are not news.
        self._reported: dict[str, LeaseChange] = {}
        # Each subscription's deliveries carry its generation: a replaced one's late messages are dropped, and so are all after the end.
        self._generation = 0
        self._in_snapshot: set[str] = set()
        self._snapshot_done = False
        self._ended = False
        self._error: LeaseWatchError | None = None

    async def start(self) -> None:
        """Subscribe, and follow the connection's reconnects (subscribing again after each); on failure nothing is left subscribed."""
        seen = self._connection.reconnects
        try:
            await self._subscribe()
        except BaseException:
            await self.stop()
            raise
        self._follower = asyncio.create_task(self._follow(seen), name=f"lease watch {self._subject}")

    def _stale(self, generation: int) -> bool:
        return self._ended or generation != self._generation

    async def _subscribe(self) -> None:
        """A new subscription: the last message of each lease (the snapshot), then every later write, in order."""
        self._generation += 1
        generation = self._generation
        self._in_snapshot = set()
        self._snapshot_done = False
        old = self._subscription
        if old is not None:
            with contextlib.suppress(nats.errors.Error):
                await old.unsubscribe()
            # Only now: cancelled during the unsubscribe, the old one stays recorded for stop() to end.
            self._subscription = None

        async def deliver(message: NatsMsg) -> None:
            if not self._stale(generation):
                await self._deliver(message, generation)

        js = self._connection.jetstream()
        # Heartbeats: within one connection nats-py re-creates a stalled consumer after two missed ones.
        making = asyncio.ensure_future(
            js.subscribe(
                self._subject, stream=self._stream, cb=deliver, ordered_consumer=True, deliver_policy=DeliverPolicy.LAST_PER_SUBJECT, idle_heartbeat=WATCH_HEARTBEAT_S
            )
        )
        try:
            subscription = await asyncio.shield(making)
        except asyncio.CancelledError:
            # The subscribe goes on regardless (shielded): end what it makes, or it would deliver and hold a consumer forever.
            await _unsubscribe_made(making)
            raise
        self._subscription = subscription
        info = await subscription.consumer_info()
        delivered = info.delivered.consumer_seq if info.delivered is not None else 0
        if not self._stale(generation) and not self._snapshot_done and info.num_pending == 0 and not delivered:
            await self._end_snapshot(generation)  # an empty bucket: no message will say the snapshot is over

    async def _follow(self, seen: int) -> None:
        """Subscribe again after each reconnect; when the connection closes or anything else fails, end the watch with LeaseWatchError."""
        try:
            while True:
                seen = await self._connection.wait_reconnect(seen)
                while True:
                    try:
                        await self._subscribe()
                        break
                    except nats.errors.Error as exc:
                        if self._connection.health.state == "closed":
                            raise
                        # The restarted server may not serve JetStream yet; another reconnect is awaited by the next subscribe's failure.
                        self._errors("resubscribe", f"cluster: lease watch on {self._stream}: cannot subscribe again after a reconnect ({exc!r}); retrying")
                        await asyncio.sleep(_RESUBSCRIBE_S)
        except Exception as exc:  # noqa: BLE001  whatever ended the following, the reader must learn that its view went stale
            error = LeaseWatchError(f"lease watch on {self._stream} ended: {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            await self._end(error)

    async def _deliver(self, message: NatsMsg, generation: int) -> None:
        """A message of the current subscription: queue its change if it is news; the snapshot's last ends the snapshot."""
        change = self._change(message)
        sid = message.subject.removeprefix(self._subject.removesuffix(">"))
        self._in_snapshot.add(sid)
        if change is not None:
            await self._report(change, generation)
        if not self._stale(generation) and not self._snapshot_done and message.metadata.num_pending == 0:
            await self._end_snapshot(generation)

    async def _end_snapshot(self, generation: int) -> None:
        """Every lease this watch had as held and the new snapshot lacks ended meanwhile (its marker expired before we looked)."""
        self._snapshot_done = True
        for sid, reported in list(self._reported.items()):
            if isinstance(reported, Claimed) and sid not in self._in_snapshot:
                await self._report(Gone(sid, "ended while the watch was reconnecting"), generation)

    async def _report(self, change: LeaseChange, generation: int) -> None:
        async with self._changed:
            # A slow reader holds the delivery here (the ordered consumer resumes in order); the end or a newer subscription drops it.
            await self._changed.wait_for(lambda: len(self._changes) < _WATCH_QUEUE or self._stale(generation))
            if self._stale(generation):
                return
            reported = self._reported.get(change.sid)
            if reported == change or (isinstance(change, Gone) and isinstance(reported, Gone)):
                return  # a renewal, or an end after an end (a delete tombstone expiring): no news
            self._reported[change.sid] = change
            self._changes.append(change)
            self._changed.notify_all()

    async def _end(self, error: LeaseWatchError | None) -> None:
        """End the watch (the first end counts): no delivery queues a change after this; the reader ends after the queued ones."""
        async with self._changed:
            if self._ended:
                return
            self._ended = True
            self._error = error
            self._generation += 1
            self._changed.notify_all()

    async def stop(self) -> None:
        """Stop listening; an `async for` over the watch ends after the changes already queued (raising the error of a failed watch)."""
        await self._end(None)
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
            self._follower = None
        if self._subscription is not None:
            subscription, self._subscription = self._subscription, None
            with contextlib.suppress(nats.errors.Error):
                await subscription.unsubscribe()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> LeaseChange:
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self._changes) or self._ended)
            if self._changes:
                change = self._changes.popleft()
                self._changed.notify_all()  # room for a delivery waiting on a full queue
                return change
        if self._error is not None:
            raise self._error
        raise StopAsyncIteration

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None) -> None:
        await self.stop()


async def _unsubscribe_made(making: Awaitable[Subscription]) -> None:
    """Unsubscribe the subscription a cancelled subscribe goes on to make (nothing if it fails)."""
    try:
        subscription = await making
        await subscription.unsubscribe()
    except nats.errors.Error:
        pass  # made nothing, or the connection is gone and the subscription with it
