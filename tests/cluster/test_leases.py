"""Leases against a real nats-server: one winner per claim, renewals, expiry seen by watchers, release, epochs across a restart, bad values."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bot.config.cluster import ClusterConfig
from tests.cluster.nats_server import NatsServer, unavailable

try:
    import nats.errors
    from nats.js import JetStreamContext
    from nats.js.api import KeyValueConfig, StorageType

    from bot.cluster import leases
    from bot.cluster.connection import ClusterConnection
    from bot.cluster.leases import (
        UNKNOWN_WORKER,
        Claimed,
        Gone,
        Holder,
        Lease,
        LeaseBucket,
        LeaseBucketError,
        LeaseChange,
        LeaseLost,
        LeaseWatch,
        LeaseWatchError,
        is_current,
    )
except ImportError as missing:
    unavailable(f"nats-py is not installed (bash scripts/setup.sh --cluster): {missing}")

TTL_S = 2.0
# A bound on waits for what the client must do at once; an expiry is the server's, awaited for TTL + EXPIRY_SLACK_S.
DEADLINE_S = 20.0
EXPIRY_SLACK_S = 10.0
# How often a test looks again at a condition the server changes on its own (an expiry): a poll, never the proof.
POLL_S = 0.05
CID = "t1"
LOGGER = "bot.test.leases"
T = TypeVar("T")


def _config(server: NatsServer) -> ClusterConfig:
    return ClusterConfig.model_validate({"url": server.url, "reconnect_min_s": 0.02, "reconnect_max_s": 0.1, "lease_ttl_s": TTL_S})


@asynccontextmanager
async def _connected(server: NatsServer, label: str = "test") -> AsyncIterator[ClusterConnection]:
    connection = ClusterConnection(_config(server), Path(), logging.getLogger(LOGGER), label=label, environ={})
    async with asyncio.timeout(DEADLINE_S):
        await connection.connect()
    try:
        yield connection
    finally:
        await connection.close()


@asynccontextmanager
async def _bucket(server: NatsServer, label: str = "test", ttl_s: float = TTL_S) -> AsyncIterator[LeaseBucket]:
    """An opened lease bucket of cluster CID on its own connection."""
    async with _connected(server, label) as connection:
        bucket = LeaseBucket(connection, CID, ttl_s, logging.getLogger(LOGGER))
        async with asyncio.timeout(DEADLINE_S):
            await bucket.open()
        yield bucket


async def _until(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], what: str, deadline: float = DEADLINE_S) -> T:
    """Ask `probe` until `done` says yes; fail naming `what` and the last answer at the deadline; the probe's own errors propagate."""
    seen: list[T] = []
    bound = asyncio.timeout(deadline)
    try:
        async with bound:
            while True:
                seen[:] = [await probe()]
                if done(seen[0]):
                    return seen[0]
                await asyncio.sleep(POLL_S)
    except TimeoutError:
        # Only our deadline is a "never": a TimeoutError of the probe's own (nats.errors.TimeoutError is one) is its failure.
        if not bound.expired():
            raise
        pytest.fail(f"never happened within {deadline} s: {what} (last seen: {seen[0] if seen else 'nothing'!r})")


async def _expired(bucket: LeaseBucket, sid: str) -> None:
    """Await the server expiring `sid`'s lease (no renewals): the bucket's TTL plus the server's expiry check, generously."""
    await _until(lambda: bucket.holder(sid), lambda holder: holder is None, f"the lease on {sid} expiring", TTL_S + EXPIRY_SLACK_S)


async def _next(watch: LeaseWatch, deadline: float = DEADLINE_S) -> LeaseChange:
    bound = asyncio.timeout(deadline)
    try:
        async with bound:
            return await anext(watch)
    except TimeoutError:
        if not bound.expired():
            raise
        pytest.fail(f"the watch reported nothing within {deadline} s")


@pytest.mark.asyncio
async def test_of_two_concurrent_claimers_exactly_one_wins_and_the_other_gets_none(nats_server: NatsServer) -> None:
    async with _bucket(nats_server, "w1") as one, _bucket(nats_server, "w2") as two:
        for sid in ("ema_cross", "trend.mtf", "rsi-1"):
            got = await asyncio.gather(one.claim(sid, "w1"), two.claim(sid, "w2"))
            won = [lease for lease in got if lease is not None]
            assert len(won) == 1, got
            lease = won[0]
            assert lease.revision == lease.epoch
            assert await one.holder(sid) == Holder(sid, lease.worker, lease.epoch)
            # The loser asking again still gets nothing; nor does the winner: a claim never adopts a live lease it did not make.
            loser, winner = (two, one) if lease.worker == "w1" else (one, two)
            assert await loser.claim(sid, "w2" if lease.worker == "w1" else "w1") is None
            assert await winner.claim(sid, lease.worker) is None
            assert await one.holder(sid) == Holder(sid, lease.worker, lease.epoch)


@pytest.mark.asyncio
async def test_renewals_keep_the_lease_past_several_ttls_with_its_epoch_while_its_revision_moves(nats_server: NatsServer) -> None:
    async with _bucket(nats_server, "w1") as one, _bucket(nats_server, "w2") as two:
        lease = await one.claim("ema_cross", "w1")
        assert lease is not None
        loop = asyncio.get_running_loop()
        started = loop.time()
        renewals = 0
        # The heartbeat: a renewal every quarter TTL, each awaited; the proof is the holder after more than two TTLs.
        while loop.time() - started < 2.5 * TTL_S:
            renewed = await one.renew(lease)
            assert (renewed.epoch, renewed.hb) == (lease.epoch, lease.hb + 1)
            assert renewed.revision > lease.revision
            lease = renewed
            renewals += 1
            await asyncio.sleep(TTL_S / 4)
        assert renewals >= 2
        holder = await two.holder("ema_cross")
        assert holder == Holder("ema_cross", "w1", lease.epoch)
        assert is_current(holder, "w1", lease.epoch)
        assert not is_current(holder, "w2", lease.epoch)
        assert not is_current(holder, "w1", lease.epoch - 1)
        assert await two.claim("ema_cross", "w2") is None


@pytest.mark.asyncio
async def test_an_unrenewed_lease_expires_then_another_worker_claims_it_with_a_higher_epoch_and_the_first_renewal_is_lost(nats_server: NatsServer) -> None:
    async with _bucket(nats_server, "w1") as one, _bucket(nats_server, "w2") as two:
        first = await one.claim("ema_cross", "w1")
        assert first is not None
        first = await one.renew(first)
        await _expired(two, "ema_cross")
        second = await two.claim("ema_cross", "w2")
        assert second is not None
        assert second.epoch > first.revision > first.epoch
        assert await one.holder("ema_cross") == Holder("ema_cross", "w2", second.epoch)
        assert not is_current(await one.holder("ema_cross"), "w1", first.epoch)
        with pytest.raises(LeaseLost) as lost:
            await one.renew(first)
        assert (lost.value.sid, lost.value.worker) == ("ema_cross", "w1")
        assert lost.value.reason == f"claimed by w2 with epoch {second.epoch} (ours was {first.epoch})"
        # w2's lease is untouched by the failed renewal.
        assert (await two.renew(second)).epoch == second.epoch


@pytest.mark.asyncio
async def test_a_renewal_after_expiry_with_no_new_claimer_is_lost_as_expired(nats_server: NatsServer) -> None:
    async with _bucket(nats_server, "w1") as one:
        lease = await one.claim("ema_cross", "w1")
        assert lease is not None
        await _expired(one, "ema_cross")
        with pytest.raises(LeaseLost) as lost:
            await one.renew(lease)
        assert lost.value.reason.startswith("expired")


@pytest.mark.asyncio
async def test_release_lets_another_claim_at_once_and_a_lost_lease_releases_nothing(nats_server: NatsServer) -> None:
    async with _bucket(nats_server, "w1") as one, _bucket(nats_server, "w2") as two:
        first = await one.claim("ema_cross", "w1")
        assert first is not None
        assert await one.release(first)
        assert await two.holder("ema_cross") is None
        second = await two.claim("ema_cross", "w2")
        assert second is not None and second.epoch > first.epoch
        # w1's lease is gone: releasing it again leaves w2's untouched and says so, renewing it fails.
        assert not await one.release(first)
        assert await one.holder("ema_cross") == Holder("ema_cross", "w2", second.epoch)
        with pytest.raises(LeaseLost) as lost:
            await one.renew(first)
        assert lost.value.reason == f"claimed by w2 with epoch {second.epoch} (ours was {first.epoch})"
        assert await two.release(second)
        with pytest.raises(LeaseLost) as deleted:
            await two.renew(second)
        assert deleted.value.reason.startswith("deleted")


@pytest.mark.asyncio
async def test_a_watcher_sees_the_holders_at_its_start_a_claim_the_expiry_and_the_reclaim_but_not_renewals(nats_server: NatsServer) -> None:
    async with _bucket(nats_server, "w1") as one, _bucket(nats_server, "w2") as two, _bucket(nats_server, "hub") as hub:
        held = await one.claim("held", "w1")
        released = await one.claim("released", "w1")
        assert held is not None and released is not None
        await one.release(released)
        async with await hub.watch() as watch:
            initial = {await _next(watch), await _next(watch)}
            assert initial == {Claimed("held", "w1", held.epoch), Gone("released", "deleted")}
            await one.release(held)
            assert await _next(watch) == Gone("held", "deleted")

            first = await one.claim("ema_cross", "w1")
            assert first is not None
            assert await _next(watch) == Claimed("ema_cross", "w1", first.epoch)
            # Renewals are no news; the expiry that follows is the next change.
            first = await one.renew(await one.renew(first))
            assert await _next(watch, TTL_S + EXPIRY_SLACK_S) == Gone("ema_cross", "expired")
            second = await two.claim("ema_cross", "w2")
            assert second is not None
            assert await _next(watch) == Claimed("ema_cross", "w2", second.epoch)
        assert [change async for change in watch] == []


@pytest.mark.asyncio
async def test_epochs_keep_increasing_across_a_kill_9_and_restart_of_the_server_on_the_same_store(nats_server: NatsServer) -> None:
    async with _connected(nats_server, "w1") as connection:
        bucket = LeaseBucket(connection, CID, TTL_S, logging.getLogger(LOGGER))
        await bucket.open()
        epochs: list[int] = []
        lease = await bucket.claim("ema_cross", "w1")
        assert lease is not None
        epochs.append(lease.epoch)
        await bucket.release(lease)
        # The bucket emptied entirely (the tombstone expired, then its marker): nothing left to carry the sequence but the store.
        js = connection.jetstream()
        await _until(lambda: js.stream_info(f"KV_leases_{CID}"), lambda info: info.state.messages == 0, "the lease bucket emptying", 2 * TTL_S + EXPIRY_SLACK_S)

        for _ in range(2):
            nats_server.kill9()
            async with asyncio.timeout(DEADLINE_S):
                await connection.wait_for("degraded")
            nats_server.restart()
            async with asyncio.timeout(DEADLINE_S):
                await connection.wait_for("connected")
            await bucket.open()
            lease = await bucket.claim("ema_cross", "w1")
            assert lease is not None
            epochs.append(lease.epoch)
            # Left to expire before the next kill: the next claim goes over the marker or an empty key.
            await _expired(bucket, "ema_cross")
        lease = await bucket.claim("ema_cross", "w2")
        assert lease is not None
        epochs.append(lease.epoch)
        assert epochs == sorted(set(epochs)), epochs


@pytest.mark.asyncio
async def test_a_watch_goes_on_across_a_kill_9_and_restart_of_the_server(nats_server: NatsServer) -> None:
    async with _connected(nats_server, "hub") as connection, _bucket(nats_server, "w1") as one:
        hub = LeaseBucket(connection, CID, TTL_S, logging.getLogger(LOGGER))
        await hub.open()
        async with await hub.watch() as watch:
            before = await one.claim("before", "w1")
            assert before is not None
            assert await _next(watch) == Claimed("before", "w1", before.epoch)
            nats_server.kill9()
            async with asyncio.timeout(DEADLINE_S):
                await connection.wait_for("degraded")
            nats_server.restart()
            async with asyncio.timeout(DEADLINE_S):
                await connection.wait_for("connected")
            after = await _until(lambda: one.claim("after", "w1"), lambda lease: lease is not None, "a claim after the restart")
            assert after is not None
            # The lease taken before the kill expires unrenewed meanwhile: its end and the new claim arrive in either order. The end
            # is the server's marker, or, when the marker expired before the watch subscribed again, the watch's own finding.
            changes = [await _next(watch, TTL_S + EXPIRY_SLACK_S), await _next(watch, TTL_S + EXPIRY_SLACK_S)]
            assert Claimed("after", "w1", after.epoch) in changes
            ends = [change for change in changes if isinstance(change, Gone)]
            assert [end.sid for end in ends] == ["before"]
            assert ends[0].reason in ("expired", "ended while the watch was reconnecting")


@pytest.mark.asyncio
async def test_a_value_that_does_not_decode_is_held_by_an_unknown_worker_and_skipped_by_watchers_with_one_log_line(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with _bucket(nats_server, "w1") as one, _bucket(nats_server, "hub") as hub, _connected(nats_server, "vandal") as vandal:
        kv = await vandal.jetstream().key_value(f"leases_{CID}")
        async with await hub.watch() as watch:
            revision = await kv.put("lease.garbled", b"\xffnot json")
            await kv.put("lease.garbled", b'{"worker": "w9"}')
            lease = await one.claim("ema_cross", "w1")
            assert lease is not None
            # The garbage came first, the claim after: the watch skipped the garbage and lives on.
            assert await _next(watch) == Claimed("ema_cross", "w1", lease.epoch)

        holder = await one.holder("garbled")
        assert holder is not None
        assert (holder.worker, holder.epoch) == (UNKNOWN_WORKER, revision + 1)
        assert holder.problem is not None and holder.problem.startswith(f"lease lease.garbled (revision {revision + 1}) in leases_{CID} does not decode: ")
        assert "hb" in holder.problem
        assert not is_current(holder, UNKNOWN_WORKER, holder.epoch)
        assert await one.claim("garbled", "w1") is None
        lines = [r.getMessage() for r in caplog.records if r.name == LOGGER and "does not decode" in r.getMessage()]
        assert len(lines) == 1, lines
        # Either garbage may be the one logged: a watch delivers the latest value of a key, and both may be written before it reads.
        assert re.match(rf"cluster: lease lease\.garbled \(revision ({revision}|{revision + 1})\) in leases_{CID} does not decode: ", lines[0]), lines


@pytest.mark.asyncio
async def test_a_bucket_opened_with_another_ttl_is_refused_naming_the_bucket_and_both_ttls(nats_server: NatsServer) -> None:
    async with _bucket(nats_server, "w1"), _connected(nats_server, "w2") as connection:
        same = LeaseBucket(connection, CID, TTL_S, logging.getLogger(LOGGER))
        await same.open()
        other = LeaseBucket(connection, CID, 5, logging.getLogger(LOGGER))
        with pytest.raises(LeaseBucketError) as refused:
            await other.open()
        assert str(refused.value).startswith(f"lease bucket leases_{CID} exists with a TTL of 2 s, not the 5 s of cluster.lease_ttl_s: ")


@pytest.mark.asyncio
async def test_names_are_checked_and_a_bucket_not_opened_is_refused(nats_server: NatsServer) -> None:
    async with _connected(nats_server) as connection:
        with pytest.raises(ValueError, match="cluster id 'a.b'"):
            LeaseBucket(connection, "a.b", TTL_S, logging.getLogger(LOGGER))
        with pytest.raises(ValueError, match="too short"):
            LeaseBucket(connection, CID, 1, logging.getLogger(LOGGER))
        bucket = LeaseBucket(connection, CID, TTL_S, logging.getLogger(LOGGER))
        with pytest.raises(LeaseBucketError, match="open\\(\\) it first"):
            await bucket.claim("ema_cross", "w1")
        await bucket.open()
        for sid in ("", "a..b", ".a", "a.", "a b", "a>"):
            with pytest.raises(ValueError, match="cannot name a lease"):
                await bucket.claim(sid, "w1")
        with pytest.raises(ValueError, match="worker 'w.1'"):
            await bucket.claim("ema_cross", "w.1")
        assert await bucket.holder("never_claimed") is None
        assert isinstance(await bucket.claim("ema_cross", "w1"), Lease)


@pytest.mark.asyncio
async def test_until_lets_a_timeout_of_the_probe_itself_propagate_rather_than_read_as_never() -> None:
    async def timing_out() -> int:
        raise nats.errors.TimeoutError

    with pytest.raises(nats.errors.TimeoutError):
        await _until(timing_out, lambda _: True, "a probe that times out")


@pytest.mark.asyncio
async def test_a_second_process_under_one_worker_name_never_adopts_a_live_lease_nor_renews_it_under_another_token(nats_server: NatsServer) -> None:
    async with _bucket(nats_server, "old") as old, _bucket(nats_server, "new") as new:
        lease = await old.claim("ema_cross", "w1")
        assert lease is not None
        # Another process named w1 (a restart within the TTL, a partitioned twin): not its claim, so not its lease.
        assert await new.claim("ema_cross", "w1") is None
        # What adopting would have given it: the same worker, epoch and heartbeat under another claim's token. Its renewal is lost.
        twin = dataclasses.replace(lease, token="0" * 16)
        lease = await old.renew(lease)
        with pytest.raises(LeaseLost) as lost:
            await new.renew(twin)
        assert lost.value.reason == f"held by w1 with epoch {lease.epoch} under another claim's token: a second process named w1"
        assert not await new.release(twin)
        assert (await old.renew(lease)).epoch == lease.epoch


@pytest.mark.asyncio
async def test_a_retried_renewal_writes_again_and_a_lease_older_than_that_is_lost(nats_server: NatsServer) -> None:
    async with _bucket(nats_server, "w1") as one:
        claimed = await one.claim("ema_cross", "w1")
        assert claimed is not None
        renewed = await one.renew(claimed)
        # The same renewal again, as after a timeout whose write was stored: recognised, and written once more (the key's age restarts).
        again = await one.renew(claimed)
        assert again.revision > renewed.revision
        assert (again.epoch, again.hb, again.token) == (claimed.epoch, renewed.hb + 1, claimed.token)
        assert again.expires_at >= renewed.expires_at
        # A Lease two writes behind the key is no retry: lost, never reported renewed without a write.
        with pytest.raises(LeaseLost) as lost:
            await one.renew(claimed)
        assert lost.value.reason == f"renewed past this Lease (heartbeat {again.hb} stored, this Lease's next is 1): renew the latest Lease"
        assert (await one.renew(again)).epoch == claimed.epoch


@pytest.mark.asyncio
async def test_a_lease_expires_locally_one_ttl_after_the_request_that_made_or_renewed_it(nats_server: NatsServer) -> None:
    async with _bucket(nats_server, "w1") as one:
        before = time.monotonic()
        lease = await one.claim("ema_cross", "w1")
        after = time.monotonic()
        assert lease is not None
        assert before + TTL_S <= lease.expires_at <= after + TTL_S
        before = time.monotonic()
        renewed = await one.renew(lease)
        after = time.monotonic()
        assert before + TTL_S <= renewed.expires_at <= after + TTL_S


@pytest.mark.asyncio
async def test_release_of_a_lease_whose_renewal_was_stored_unseen_releases_it_and_says_so(nats_server: NatsServer) -> None:
    async with _bucket(nats_server, "w1") as one:
        claimed = await one.claim("ema_cross", "w1")
        assert claimed is not None
        # A renewal whose request failed (a timeout while reconnecting) though its write was stored: the worker still has `claimed`.
        await one.renew(claimed)
        assert await one.release(claimed)
        assert await one.holder("ema_cross") is None
        assert not await one.release(claimed)


@pytest.mark.asyncio
async def test_a_memory_bucket_is_refused_naming_the_bucket_and_its_storage(nats_server: NatsServer) -> None:
    async with _connected(nats_server) as connection:
        config = KeyValueConfig(bucket=f"leases_{CID}", history=1, ttl=TTL_S, storage=StorageType.MEMORY, limit_marker_ttl=1.0)
        await connection.jetstream().create_key_value(config)
        with pytest.raises(LeaseBucketError) as refused:
            await LeaseBucket(connection, CID, TTL_S, logging.getLogger(LOGGER)).open()
        text = str(refused.value)
        assert text.startswith(f"lease bucket leases_{CID} exists with memory storage, not file: its revisions, the leases' epochs, would start again at 1 ")
        assert text.endswith("stop every process of the cluster (workers and hub), then delete the bucket (nats kv del leases_t1) so that the next start makes it again")


@pytest.mark.asyncio
async def test_a_bucket_without_limit_markers_is_refused(nats_server: NatsServer) -> None:
    async with _connected(nats_server) as connection:
        await connection.jetstream().create_key_value(KeyValueConfig(bucket=f"leases_{CID}", history=1, ttl=TTL_S, storage=StorageType.FILE))
        with pytest.raises(LeaseBucketError) as refused:
            await LeaseBucket(connection, CID, TTL_S, logging.getLogger(LOGGER)).open()
        assert str(refused.value).startswith(f"lease bucket leases_{CID} exists without limit markers (subject_delete_marker_ttl): nobody would see")


@pytest.mark.asyncio
async def test_a_watch_ends_with_an_error_when_its_connection_closes(nats_server: NatsServer) -> None:
    async with _connected(nats_server, "hub") as connection:
        hub = LeaseBucket(connection, CID, TTL_S, logging.getLogger(LOGGER))
        await hub.open()
        watch = await hub.watch()
        await connection.close()
        with pytest.raises(LeaseWatchError) as ended:
            await _next(watch)
        assert str(ended.value) == (
            f"lease watch on KV_leases_{CID} ended: ClusterConnectError: the connection to {nats_server.url} is closed by this process: no reconnect will come"
        )
        await watch.stop()


@pytest.mark.asyncio
async def test_a_watch_whose_following_fails_unforeseen_ends_with_that_error_as_the_cause(nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    async with _connected(nats_server, "hub") as connection:
        hub = LeaseBucket(connection, CID, TTL_S, logging.getLogger(LOGGER))
        await hub.open()

        async def broken(seen: int) -> int:
            raise RuntimeError("a bug")

        monkeypatch.setattr(connection, "wait_reconnect", broken)
        async with await hub.watch() as watch:
            with pytest.raises(LeaseWatchError, match="ended: RuntimeError: a bug") as ended:
                await _next(watch)
            assert isinstance(ended.value.__cause__, RuntimeError)


@pytest.mark.asyncio
async def test_a_watch_cancelled_while_subscribing_leaves_no_subscription(nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    async with _connected(nats_server, "hub") as connection:
        hub = LeaseBucket(connection, CID, TTL_S, logging.getLogger(LOGGER))
        await hub.open()
        original = JetStreamContext.subscribe
        made: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        answer = asyncio.Event()

        async def late(self: JetStreamContext, *args: Any, **kwargs: Any) -> Any:
            # The subscription exists on the client and the server; its maker has not returned it yet.
            subscription = await original(self, *args, **kwargs)
            made.set_result(subscription)
            await answer.wait()
            return subscription

        monkeypatch.setattr(JetStreamContext, "subscribe", late)
        starting = asyncio.create_task(hub.watch())
        async with asyncio.timeout(DEADLINE_S):
            subscription = await made
        starting.cancel()
        answer.set()
        with pytest.raises(asyncio.CancelledError):
            await starting
        assert subscription._id not in connection.client._subs


@pytest.mark.asyncio
async def test_a_stopped_watch_yields_the_changes_queued_before_and_nothing_a_waiting_delivery_brings(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(leases, "_WATCH_QUEUE", 1)
    async with _bucket(nats_server, "w1") as one, _bucket(nats_server, "hub") as hub:
        first = await one.claim("a", "w1")
        assert first is not None and await one.claim("b", "w1") is not None
        watch = await hub.watch()
        # The snapshot's first change fills the queue of one; the second's delivery waits for room.
        subscription = watch._subscription
        assert subscription is not None
        await _until(
            lambda: _value((subscription.delivered, subscription.pending_msgs, len(watch._changes))), lambda seen: seen[0] >= 2 and seen[1:] == (0, 1), "a delivery waiting for room"
        )
        await watch.stop()
        assert [change async for change in watch] == [Claimed("a", "w1", first.epoch)]


async def _value(value: T) -> T:
    return value
