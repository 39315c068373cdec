"""DaemonMinds in process on a real LeaseBucket of a real nats-server: Sync kept or built, Warm, Ask cached and fenced, leases lost and released."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import msgspec
import orjson
import pytest

from bot.cluster.connection import ClusterConnection
from bot.cluster.daemon_minds import DaemonMinds
from bot.cluster.fingerprint import strategy_digest
from bot.cluster.leases import LeaseBucket
from bot.cluster.messages import (
    PROTOCOL,
    Decision,
    Message,
    Refused,
    Release,
    Released,
    Sync,
    Synced,
    Turn,
    Warmed,
    decode,
    encode,
)
from bot.config.cluster import ClusterConfig
from bot.config.models import StrategyConfig
from bot.strategy.config_check import PARAMS_CHECKS
from bot.strategy.config_load import LoadedConfig
from tests.cluster.daemon_support import CID, LANE, SID, TTL_S, ask, asked, daemon_config, loaded_config, sync_of, warms
from tests.cluster.nats_server import NatsServer

# A bound on a hang, never a measure of speed.
DEADLINE_S = 20.0
LOGGER = "bot.test.daemon_minds"


class Clock:
    """The monotonic clock, moved ahead on demand (a lease's deadline passed without waiting for it)."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.ahead


@dataclass
class Setup:
    """Minds of worker `w1` (and `w2`) on one bucket, the config as the hub loads it, the refusals told to the hook."""

    loaded: LoadedConfig
    bucket: LeaseBucket
    minds: DaemonMinds
    other: DaemonMinds
    clock: Clock
    connection: ClusterConnection
    refusals: list[str]
    tmp: Path


@asynccontextmanager
async def setup(server: NatsServer, tmp: Path) -> AsyncIterator[Setup]:
    loaded = loaded_config(daemon_config(tmp))
    logger = logging.getLogger(LOGGER)
    connection = ClusterConnection(ClusterConfig(url=server.url, lease_ttl_s=TTL_S), tmp, logger, label="test minds", environ={})
    async with asyncio.timeout(DEADLINE_S):
        await connection.connect()
    try:
        clock = Clock()
        bucket = LeaseBucket(connection, CID, TTL_S, logger, clock=clock)
        async with asyncio.timeout(DEADLINE_S):
            await bucket.open()
        refusals: list[str] = []
        minds = DaemonMinds(loaded.catalog, "w1", bucket, logger, clock, on_refused=refusals.append)
        other = DaemonMinds(loaded.catalog, "w2", bucket, logger, clock)
        yield Setup(loaded, bucket, minds, other, clock, connection, refusals, tmp)
    finally:
        await connection.close()


async def request(minds: DaemonMinds, message: Message | bytes) -> Message:
    async with asyncio.timeout(DEADLINE_S):
        return decode(await minds.answer(message if isinstance(message, bytes) else encode(message)))


async def synced(minds: DaemonMinds, sync: Sync) -> Synced:
    reply = await request(minds, sync)
    assert isinstance(reply, Synced), reply
    return reply


async def warmed(minds: DaemonMinds, sid: str = SID) -> None:
    for warm in warms(sid):
        reply = await request(minds, warm)
        assert reply == Warmed(sid=sid, failure=None)


async def decided(minds: DaemonMinds, epoch: int, n: int) -> Decision:
    reply = await request(minds, ask(epoch, n))
    assert isinstance(reply, Decision), reply
    assert reply.k == n and reply.sid == SID and reply.failure is None
    return reply


async def refused(minds: DaemonMinds, message: Message | bytes) -> str:
    reply = await request(minds, message)
    assert isinstance(reply, Refused), reply
    return reply.reason


async def ready(s: Setup) -> int:
    """Sync and warm `counting` on w1: its epoch."""
    reply = await synced(s.minds, sync_of(s.loaded))
    assert reply.kept is False and reply.refused is None and reply.failure is None and reply.epoch > 0
    assert reply.streams == [("BTC/USD", "1m")]
    await warmed(s.minds)
    return reply.epoch


@pytest.mark.asyncio
async def test_a_repeated_ask_is_answered_from_the_cache_and_the_mind_is_asked_once(nats_server: NatsServer, tmp_path: Path) -> None:
    async with setup(nats_server, tmp_path) as s:
        epoch = await ready(s)
        holder = await s.bucket.holder(SID)
        assert holder is not None and (holder.worker, holder.epoch) == ("w1", epoch)
        first = await s.minds.answer(encode(ask(epoch, 1)))
        again = await s.minds.answer(encode(ask(epoch, 1)))
        assert first == again
        assert isinstance(decode(first), Decision)
        assert len(asked(tmp_path)) == 1
        await decided(s.minds, epoch, 2)
        assert len(asked(tmp_path)) == 2
        # Only the last decision is kept: an older turn is refused, never decided again.
        assert await refused(s.minds, ask(epoch, 1)) == f"turn 1 of {SID} already decided (through 2)"
        assert s.minds.status() == {"strategies": {SID: {"epoch": epoch, "decided": 2, "cached": 2}}, "asked": 2, "cached": 1, "refused": 1}
        assert s.refusals == [f"turn 1 of {SID} already decided (through 2)"]


@pytest.mark.asyncio
async def test_a_sync_keeps_the_mind_that_decided_through_the_hubs_turn_or_its_pending_one(nats_server: NatsServer, tmp_path: Path) -> None:
    async with setup(nats_server, tmp_path) as s:
        epoch = await ready(s)
        await decided(s.minds, epoch, 1)
        kept = Synced(sid=SID, epoch=epoch, kept=True, streams=[], failure=None, refused=None, holder=None)
        assert await synced(s.minds, sync_of(s.loaded, decided=1)) == kept
        # The hub applied turn 0 only, and awaits turn 1's decision: the one cached here.
        assert await synced(s.minds, sync_of(s.loaded, decided=0, pending=1)) == kept
        assert len(asked(tmp_path)) == 1
        # The hub's book is behind this mind (it decided turn 1, the hub knows of none pending): built again, under the same lease.
        rebuilt = await synced(s.minds, sync_of(s.loaded, decided=0))
        assert (rebuilt.kept, rebuilt.epoch, rebuilt.streams) == (False, epoch, [("BTC/USD", "1m")])
        assert await refused(s.minds, ask(epoch, 1)) == f"not the holder of {SID} under epoch {epoch}"  # not warmed yet
        await warmed(s.minds)
        await decided(s.minds, epoch, 1)
        assert len(asked(tmp_path)) == 2
        # Another lane of the strategy (unloaded and loaded again on the hub): its turn numbers start over, nothing of this one is
        # taken for its own: its asks are refused, its sync builds a mind anew even where the numbers match.
        assert await refused(s.minds, ask(epoch, 2, lane="lane-2")) == f"not the holder of {SID} under epoch {epoch}"
        other = await synced(s.minds, sync_of(s.loaded, decided=1, lane="lane-2"))
        assert (other.kept, other.epoch) == (False, epoch)


@pytest.mark.asyncio
async def test_a_strategy_whose_digest_differs_is_refused_naming_it_and_its_mind_dropped(nats_server: NatsServer, tmp_path: Path) -> None:
    async with setup(nats_server, tmp_path) as s:
        epoch = await ready(s)
        reply = await synced(s.minds, sync_of(s.loaded, digest="0" * 64))
        assert reply.refused == f"strategy {SID}: its config or code differs on worker w1 from the hub's"
        # For as long as this worker runs: the hub goes to another.
        assert (reply.epoch, reply.kept, reply.holder, reply.lasting) == (0, False, None, True)
        # What it held of the strategy is not kept from a worker that can serve it.
        assert await s.bucket.holder(SID) is None
        assert await refused(s.minds, ask(epoch, 1)) == f"not the holder of {SID} under epoch {epoch}"


@pytest.mark.asyncio
async def test_an_ask_under_another_epoch_or_past_the_leases_deadline_is_refused(nats_server: NatsServer, tmp_path: Path) -> None:
    async with setup(nats_server, tmp_path) as s:
        epoch = await ready(s)
        assert await refused(s.minds, ask(epoch + 1, 1)) == f"not the holder of {SID} under epoch {epoch + 1}"
        # Its deadline passed without a renewal (the server not reached): it decides nothing, whatever it believes.
        s.clock.ahead = TTL_S + 1
        assert await refused(s.minds, ask(epoch, 1)) == f"not the holder of {SID} under epoch {epoch}"
        assert asked(tmp_path) == []
        # A renewal that succeeds (the key is still ours on the server) lifts the fence.
        s.clock.ahead = 0.0
        await s.minds.heartbeat()
        await decided(s.minds, epoch, 1)


@pytest.mark.asyncio
async def test_a_lease_lost_drops_the_mind_at_the_next_heartbeat_naming_the_strategy(
    nats_server: NatsServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with setup(nats_server, tmp_path) as s:
        epoch = await ready(s)
        kv = await s.connection.jetstream().key_value(f"leases_{CID}")
        await kv.delete(f"lease.{SID}")
        with caplog.at_level(logging.WARNING, LOGGER):
            await s.minds.heartbeat()
        assert any(f"lease on strategy {SID} lost" in r.getMessage() and "its mind dropped" in r.getMessage() for r in caplog.records), caplog.text
        assert s.minds.status()["strategies"] == {}
        assert await refused(s.minds, ask(epoch, 1)) == f"not the holder of {SID} under epoch {epoch}"


@pytest.mark.asyncio
async def test_a_strategy_held_by_another_worker_is_refused_naming_the_holder(nats_server: NatsServer, tmp_path: Path) -> None:
    async with setup(nats_server, tmp_path) as s:
        epoch = await ready(s)
        reply = await synced(s.other, sync_of(s.loaded))
        # A passing refusal: the hub asks again (or the holder).
        assert (reply.refused, reply.holder, reply.epoch, reply.lasting) == ("held by worker w1", "w1", 0, False)
        assert await request(s.minds, Release(sid=SID)) == Released(sid=SID)
        assert await s.bucket.holder(SID) is None
        taken = await synced(s.other, sync_of(s.loaded))
        assert taken.refused is None and taken.epoch > epoch


@pytest.mark.asyncio
async def test_a_mind_that_fails_to_build_or_warm_reports_its_failure_and_gives_its_lease_up(nats_server: NatsServer, tmp_path: Path) -> None:
    async with setup(nats_server, tmp_path) as s:
        for change, where in (({"fail_build": True}, "build"), ({"fail_warm_up": True}, "warm")):
            spec = orjson.loads(bytes(sync_of(s.loaded).spec))
            spec["params"].update(change)
            raw = orjson.dumps(spec)
            digest = strategy_digest(s.loaded.catalog, StrategyConfig.model_validate_json(raw, context=PARAMS_CHECKS))
            reply = await synced(s.minds, Sync(sid=SID, lane=LANE, spec=msgspec.Raw(raw), digest=digest, decided=0, pending=None))
            if where == "build":
                assert reply.failure is not None and reply.failure.message == "build refused on purpose" and reply.epoch > 0
                assert reply.failure.where.startswith("counting.py:")
            else:
                assert reply.failure is None
                answers = [await request(s.minds, warm) for warm in warms()]
                last = answers[-1]
                assert isinstance(last, Warmed) and last.failure is not None and last.failure.message == "warm-up refused on purpose"
            assert await s.bucket.holder(SID) is None, where
            assert s.minds.status()["strategies"] == {}, where


@pytest.mark.asyncio
async def test_what_a_daemon_mind_cannot_act_on_is_refused_never_raised(nats_server: NatsServer, tmp_path: Path) -> None:
    async with setup(nats_server, tmp_path) as s:
        epoch = await ready(s)
        turn = Turn(k=1, symbol="BTC/USD", tf="1m", candle=ask(epoch, 1).candle, ts=0, entries=[])
        reasons = [
            await refused(s.minds, b"not json"),
            await refused(s.minds, msgspec.json.encode({"v": PROTOCOL, "t": "ask"})),
            await refused(s.minds, b'{"v": 1, "t": "ask"}'),
            await refused(s.minds, turn),
            await refused(s.minds, msgspec.structs.replace(ask(epoch, 1), kind="history")),
            await refused(s.minds, warms()[0]),
        ]
        assert reasons[0].startswith("cluster message is not JSON")
        assert "does not decode" in reasons[1]
        assert reasons[2] == f"cluster message of protocol 1, this bot speaks {PROTOCOL}"
        assert reasons[3] == "a daemon worker answers Sync, Warm, Ask and Release, not Turn"
        assert reasons[4] == f"turn 1 of {SID}: a daemon mind is asked trade and other candles, not history"
        assert reasons[5] == f"warm-up of {SID!r}: no mind of it being built here"
        assert s.refusals == reasons
        await decided(s.minds, epoch, 1)
        # A Sync of a strategy this worker's config lacks: its spec does not name a known module here.
        unknown = await synced(s.minds, Sync(sid="nope", lane=LANE, spec=msgspec.Raw(b'{"id": "nope"}'), digest="x", decided=0, pending=None))
        assert unknown.refused is not None and unknown.refused.startswith("strategy nope: its config does not validate on worker w1")
        await s.minds.release_all()
        assert await s.bucket.holder(SID) is None
