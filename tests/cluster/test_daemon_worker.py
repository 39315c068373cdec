"""`bot worker` without --run as real processes against a real nats-server, the test playing the daemon's hub.

Sync, Warm and Ask answered (a repeated Ask from the cache), leases held against a second worker, taken over after a
kill -9, given up at once on SIGTERM; garbage refused; a worker the hub refuses exits 2.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TypeVar

import msgspec
import pytest
from nats.aio.msg import Msg as NatsMsg

from bot.cluster.connection import ClusterConnection
from bot.cluster.leases import LeaseBucket
from bot.cluster.messages import PROTOCOL, Decision, Hello, Message, Refused, Sync, Synced, Turn, Warmed, Welcome, decode, encode
from bot.cluster.subjects import hello_subject, turn_subject
from bot.config.cluster import ClusterConfig
from tests.cluster.daemon_support import CID, SID, TTL_S, ask, asked, daemon_config, loaded_config, sync_of, warms
from tests.cluster.nats_server import NatsServer
from tests.cluster.test_worker import Lines
from tests.support import REPO

# A bound on a hang (a worker starts in about a second), never a measure of speed.
DEADLINE_S = 60.0
# How long past the TTL the server may take to expire a lease it is no longer renewed (it expires keys to the second).
EXPIRY_SLACK_S = 10.0
POLL_S = 0.05
T = TypeVar("T")


class Hub:
    """The test's side: answers Hellos (Welcome, or nothing when `answer` is False), asks the workers, reads the leases."""

    def __init__(self, connection: ClusterConnection, bucket: LeaseBucket) -> None:
        self.connection = connection
        self.bucket = bucket
        self.hellos: list[Hello] = []
        self.answer = True
        self.problems: list[str] = []

    async def on_hello(self, msg: NatsMsg) -> None:
        hello = decode(msg.data)
        assert isinstance(hello, Hello)
        self.hellos.append(hello)
        if self.answer and msg.reply:
            await msg.respond(encode(Welcome(accepted=not self.problems, problems=self.problems)))

    def said_hello(self, name: str) -> int:
        return sum(1 for hello in self.hellos if hello.worker == name)

    async def raw(self, worker: str, data: bytes) -> bytes:
        reply = await self.connection.client.request(turn_subject(CID, worker), data, timeout=DEADLINE_S)
        return reply.data

    async def ask(self, worker: str, message: Message | bytes) -> Message:
        return decode(await self.raw(worker, message if isinstance(message, bytes) else encode(message)))

    async def synced(self, worker: str, sync: Sync) -> Synced:
        reply = await self.ask(worker, sync)
        assert isinstance(reply, Synced), reply
        return reply

    async def ready(self, worker: str, sync: Sync) -> int:
        """`sync` built and warmed on `worker`: its epoch."""
        reply = await self.synced(worker, sync)
        assert reply.refused is None and reply.failure is None and not reply.kept and reply.epoch > 0, reply
        assert reply.streams == [("BTC/USD", "1m")]
        for warm in warms():
            assert await self.ask(worker, warm) == Warmed(sid=SID, failure=None)
        return reply.epoch


@asynccontextmanager
async def hub_side(server: NatsServer, tmp: Path) -> AsyncIterator[Hub]:
    logger = logging.getLogger("test.hub")
    connection = ClusterConnection(ClusterConfig(url=server.url, lease_ttl_s=TTL_S), tmp, logger, label="test hub", environ={})
    async with asyncio.timeout(DEADLINE_S):
        await connection.connect()
    try:
        bucket = LeaseBucket(connection, CID, TTL_S, logger)
        async with asyncio.timeout(DEADLINE_S):
            await bucket.open()
        hub = Hub(connection, bucket)
        await connection.client.subscribe(hello_subject(CID), cb=hub.on_hello)
        await connection.client.flush()
        yield hub
    finally:
        await connection.close()


@contextmanager
def worker_process(config: Path, cluster: str, name: str = "w1") -> Iterator[tuple[subprocess.Popen[str], Lines]]:
    """`bot worker` without --run; killed at the end if still running."""
    command = [sys.executable, "-m", "bot", "worker", "--config", str(config), "--cluster", cluster, "--name", name, "--log-level", "INFO"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        yield process, Lines(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def until(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], what: str, deadline: float = DEADLINE_S) -> T:
    """Ask `probe` until `done` says yes; fail naming `what` at the deadline."""
    bound = asyncio.timeout(deadline)
    try:
        async with bound:
            while True:
                seen = await probe()
                if done(seen):
                    return seen
                await asyncio.sleep(POLL_S)
    except TimeoutError:
        if not bound.expired():
            raise
        pytest.fail(f"never happened within {deadline} s: {what}")


async def said_hello(hub: Hub, process: subprocess.Popen[str], lines: Lines, name: str = "w1", times: int = 1) -> None:
    async def state() -> tuple[int, int | None]:
        return hub.said_hello(name), process.poll()

    await until(state, lambda s: s[0] >= times or s[1] is not None, f"{times} Hello(s) of {name}")
    assert process.poll() is None, lines.text()


async def exit_code(process: subprocess.Popen[str]) -> int:
    return await asyncio.to_thread(process.wait, DEADLINE_S)


@pytest.mark.asyncio
async def test_a_daemon_worker_syncs_warms_decides_and_answers_a_repeated_ask_with_the_same_bytes(nats_server: NatsServer, tmp_path: Path) -> None:
    config = daemon_config(tmp_path)
    loaded = loaded_config(config)
    async with hub_side(nats_server, tmp_path) as hub:
        with worker_process(config, nats_server.url) as (worker, lines):
            await said_hello(hub, worker, lines)
            hello = hub.hellos[0]
            assert hello.fingerprint.protocol == PROTOCOL and hello.fingerprint.strategies == {}
            epoch = await hub.ready("w1", sync_of(loaded))
            first = await hub.raw("w1", encode(ask(epoch, 1)))
            decision = decode(first)
            assert isinstance(decision, Decision) and decision.k == 1 and decision.sid == SID and decision.failure is None
            # The hub's reply was lost, it asks again: the same bytes, the mind not asked twice.
            assert await hub.raw("w1", encode(ask(epoch, 1))) == first
            assert len(asked(tmp_path)) == 1
            # The hub restarted with turn 1 applied: the mind is kept, no warm-up.
            kept = await hub.synced("w1", sync_of(loaded, decided=1))
            assert (kept.kept, kept.epoch, kept.streams, kept.refused) == (True, epoch, [], None)
            decision = await hub.ask("w1", ask(epoch, 2))
            assert isinstance(decision, Decision) and decision.k == 2
            wrong = await hub.ask("w1", ask(epoch + 7, 3))
            assert wrong == Refused(reason=f"not the holder of {SID} under epoch {epoch + 7}")
            differs = await hub.synced("w1", sync_of(loaded, digest="f" * 64))
            assert differs.refused == f"strategy {SID}: its config or code differs on worker w1 from the hub's"
            assert await hub.bucket.holder(SID) is None
            # Held again, then SIGTERM: exit 0, the lease gone at once (not after its TTL).
            again = await hub.ready("w1", sync_of(loaded, decided=2))
            holder = await hub.bucket.holder(SID)
            assert holder is not None and (holder.worker, holder.epoch) == ("w1", again)
            worker.send_signal(signal.SIGTERM)
            assert await exit_code(worker) == 0, lines.text()
            assert await hub.bucket.holder(SID) is None
    text = lines.text()
    assert "cluster: worker w1 of cluster t1: taken in" in text
    assert "cluster: worker w1: 14 requests answered, 1 refused, peak RSS" in text, text


@pytest.mark.asyncio
async def test_a_lease_held_by_one_worker_is_refused_to_another_until_the_first_is_killed_and_it_expires(nats_server: NatsServer, tmp_path: Path) -> None:
    config = daemon_config(tmp_path)
    loaded = loaded_config(config)
    async with hub_side(nats_server, tmp_path) as hub:
        with worker_process(config, nats_server.url, "w1") as (w1, lines1), worker_process(config, nats_server.url, "w2") as (w2, lines2):
            await said_hello(hub, w1, lines1, "w1")
            await said_hello(hub, w2, lines2, "w2")
            epoch = await hub.ready("w1", sync_of(loaded))
            refused = await hub.synced("w2", sync_of(loaded))
            assert (refused.refused, refused.holder, refused.epoch, refused.kept) == ("held by worker w1", "w1", 0, False)
            # Renewed meanwhile: still w1's after more than a TTL (five more Hellos, ttl/4 apart), so w2 is still refused.
            await said_hello(hub, w1, lines1, "w1", hub.said_hello("w1") + 5)
            assert (await hub.synced("w2", sync_of(loaded))).holder == "w1"
            w1.kill()
            await exit_code(w1)
            await until(lambda: hub.bucket.holder(SID), lambda holder: holder is None, "w1's lease expiring", TTL_S + EXPIRY_SLACK_S)
            taken = await hub.ready("w2", sync_of(loaded))
            assert taken > epoch
            decision = await hub.ask("w2", ask(taken, 1))
            assert isinstance(decision, Decision) and decision.k == 1
            w2.send_signal(signal.SIGTERM)
            assert await exit_code(w2) == 0, lines2.text()
            assert await hub.bucket.holder(SID) is None
    lines1.text()


@pytest.mark.asyncio
async def test_garbage_on_its_subject_is_refused_and_a_worker_whose_hub_is_silent_goes_on(nats_server: NatsServer, tmp_path: Path) -> None:
    config = daemon_config(tmp_path)
    loaded = loaded_config(config)
    async with hub_side(nats_server, tmp_path) as hub:
        # No Welcome: the hub is down or restarting, which is no reason for a worker to go.
        hub.answer = False
        with worker_process(config, nats_server.url) as (worker, lines):
            await said_hello(hub, worker, lines, times=2)
            turn = Turn(k=1, symbol="BTC/USD", tf="1m", candle=ask(1, 1).candle, ts=0, entries=[])
            reasons = []
            for garbage in (b"not json", b'{"v": 1, "t": "ask"}', msgspec.json.encode({"v": PROTOCOL, "t": "sync"}), encode(turn)):
                reply = await hub.ask("w1", garbage)
                assert isinstance(reply, Refused), reply
                reasons.append(reply.reason)
            assert reasons[0].startswith("cluster message is not JSON")
            assert reasons[1] == f"cluster message of protocol 1, this bot speaks {PROTOCOL}"
            assert "does not decode" in reasons[2]
            assert reasons[3] == "a daemon worker answers Sync, Warm, Ask and Release, not Turn"
            assert worker.poll() is None, lines.text()
            epoch = await hub.ready("w1", sync_of(loaded))
            decision = await hub.ask("w1", ask(epoch, 1))
            assert isinstance(decision, Decision) and decision.k == 1
            worker.send_signal(signal.SIGTERM)
            assert await exit_code(worker) == 0
    text = lines.text()
    assert "no hub of cluster t1 answers" in text
    assert len([line for line in text.splitlines() if "was refused" in line]) == 1, text


@pytest.mark.asyncio
async def test_a_worker_the_hub_refuses_exits_2_naming_the_problems(nats_server: NatsServer, tmp_path: Path) -> None:
    config = daemon_config(tmp_path)
    async with hub_side(nats_server, tmp_path) as hub:
        hub.problems = ["bot version 0.0.1 on the worker, 9.9.9 on the hub", "event codec 1 on the worker, 2 on the hub"]
        with worker_process(config, nats_server.url) as (worker, lines):
            code = await exit_code(worker)
    assert code == 2, lines.text()
    assert (
        "error: worker w1: the hub refused this worker: bot version 0.0.1 on the worker, 9.9.9 on the hub; event codec 1 on the worker, 2 on the hub"
        in lines.text()
    )


@pytest.mark.asyncio
async def test_a_worker_named_hub_is_refused(tmp_path: Path) -> None:
    # Refused before connecting: no server is needed.
    with worker_process(daemon_config(tmp_path), "nats://127.0.0.1:1", "hub") as (worker, lines):
        code = await exit_code(worker)
    assert code == 2
    assert "error: --name 'hub' is the hub's own name in the cluster: give this worker another" in lines.text()


@pytest.mark.asyncio
async def test_a_worker_still_connecting_exits_0_on_sigterm(tmp_path: Path) -> None:
    with worker_process(daemon_config(tmp_path), "nats://127.0.0.1:1") as (worker, lines):
        async def state() -> tuple[bool, int | None]:
            return lines.has("cannot connect to"), worker.poll()

        await until(state, lambda s: s[0] or s[1] is not None, "the worker retrying its server")
        assert worker.poll() is None, lines.text()
        worker.send_signal(signal.SIGTERM)
        code = await exit_code(worker)
    assert code == 0, lines.text()
    assert "cluster: worker w1: 0 requests answered, 0 refused" in lines.text()
