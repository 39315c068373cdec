"""A worker of the daemon's hub (`bot worker` without --run): holds strategies' minds under leases, answers the hub's requests until SIGTERM."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import socket
import time
from collections.abc import Callable

import nats.errors
from nats.aio.msg import Msg as NatsMsg

from bot.cluster.connection import ClusterConnection
from bot.cluster.daemon_minds import DaemonMinds
from bot.cluster.error_lines import ErrorLines
from bot.cluster.leases import LeaseBucket
from bot.cluster.messages import PROTOCOL, Fingerprint, Hello, ProtocolError, Refused, Welcome, decode, encode
from bot.cluster.stopping import unless_stopped
from bot.cluster.subjects import hello_subject, hub_started_subject, turn_subject
from bot.cluster.worker import WorkerRefused
from bot.event_codec import VERSION as CODEC_VERSION
from bot.strategy.catalog import StrategyCatalog
from bot.version import bot_version

# Seconds a Hello may go unanswered: then the hub is down or restarting, and the next Hello tries again.
HELLO_TIMEOUT_S = 2.0
# The name the hub goes by (its own minds' leases): no worker may take it.
HUB_NAME = "hub"


class DaemonWorker:
    """Worker `name` of cluster `cid`: answers the hub's Sync, Warm, Ask and Release on its subject, says Hello and renews its leases every ttl_s / 4."""

    def __init__(
        self,
        connection: ClusterConnection,
        cid: str,
        name: str,
        catalog: StrategyCatalog,
        logger: logging.Logger,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
        decide_timeout_s: float = 60.0,
    ) -> None:
        self._decide_timeout_s = decide_timeout_s
        self._connection = connection
        self._cid = cid
        self._name = name
        self._catalog = catalog
        self._log = logger
        self._ttl_s = ttl_s
        self._clock = clock
        self._lines = ErrorLines(logger, clock)
        self._subject = turn_subject(cid, name)
        self._fingerprint = Fingerprint(bot_version=bot_version(), protocol=PROTOCOL, codec=CODEC_VERSION, strategies={})
        self._stop = asyncio.Event()
        # Set when a hub says it started: the next Hello goes at once.
        self._hello_now = asyncio.Event()
        self._minds: DaemonMinds | None = None
        self._taken_in = False
        self.answered = 0
        self.refused = 0

    def _refused(self, reason: str) -> None:
        self._lines(f"refused:{self._subject}", f"cluster: a message on {self._subject} was refused: {reason}")

    async def _on_message(self, msg: NatsMsg) -> None:
        minds = self._minds
        if minds is None:
            return
        reply = await minds.answer(msg.data)
        self.answered += 1
        self.refused = minds.refused
        if msg.reply:
            try:
                await msg.respond(reply)
            except nats.errors.Error as exc:
                # The hub asks again (the same Ask gets the cached decision).
                self._lines("respond", f"cluster: worker {self._name} could not answer on {self._subject}: {type(exc).__name__}: {exc}")

    async def run(self) -> None:
        """Connect, open the lease bucket, serve; return on SIGTERM/SIGINT (its leases released). WorkerRefused when the hub refuses it.

        A server that is down is retried until then; a hub that does not answer is waited for (it may be restarting).
        """
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)
        try:
            if not await unless_stopped(self._stop, self._connection.connect()):
                return
            bucket = LeaseBucket(self._connection, self._cid, self._ttl_s, self._log, clock=self._clock)
            if not await unless_stopped(self._stop, self._open(bucket)):
                return
            minds = DaemonMinds(self._catalog, self._name, bucket, self._log, self._clock, on_refused=self._refused, decide_timeout_s=self._decide_timeout_s)
            self._minds = minds
            subscription = await self._connection.client.subscribe(self._subject, cb=self._on_message)
            # A hub (re)starting says so: Hello at once, so that it places strategies knowing every worker.
            started = await self._connection.client.subscribe(hub_started_subject(self._cid), cb=self._on_hub_started)
            try:
                await self._connection.client.flush()
                await unless_stopped(self._stop, self._serve(minds))
            finally:
                # No new request is taken from here on; the leases go at once rather than after their TTL.
                with contextlib.suppress(nats.errors.Error):
                    await subscription.unsubscribe()
                    await started.unsubscribe()
                await minds.release_all()
        finally:
            await self._connection.close()
            # ru_maxrss is in KiB on Linux.
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            self._log.info("cluster: worker %s: %d requests answered, %d refused, peak RSS %.0f MB", self._name, self.answered, self.refused, peak)

    async def _open(self, bucket: LeaseBucket) -> None:
        """Open the lease bucket; a server whose JetStream does not answer yet (just started) is asked again."""
        while True:
            try:
                await bucket.open()
                return
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
                self._lines("open", f"cluster: worker {self._name}: the lease bucket {bucket.bucket} cannot be opened yet ({type(exc).__name__}); retrying")
                await asyncio.sleep(self._ttl_s / 4)

    async def _serve(self, minds: DaemonMinds) -> None:
        """Say Hello and renew the leases every ttl_s / 4, apart: a Hello awaiting an absent hub must not delay a renewal."""
        loops = {asyncio.create_task(self._hellos()), asyncio.create_task(self._heartbeats(minds))}
        try:
            done, _ = await asyncio.wait(loops, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)

    async def _hellos(self) -> None:
        while True:
            # Cleared first: a hub that says it started while this Hello is on its way gets another at once.
            self._hello_now.clear()
            await self._hello()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._hello_now.wait(), self._ttl_s / 4)

    async def _on_hub_started(self, msg: NatsMsg) -> None:
        self._hello_now.set()

    async def _heartbeats(self, minds: DaemonMinds) -> None:
        while True:
            await minds.heartbeat()
            await asyncio.sleep(self._ttl_s / 4)

    async def _hello(self) -> None:
        """One Hello; WorkerRefused when the hub refuses this worker, a line at most once a minute when no hub answers."""
        hello = Hello(worker=self._name, pid=os.getpid(), host=socket.gethostname(), fingerprint=self._fingerprint)
        try:
            reply = await self._connection.client.request(hello_subject(self._cid), encode(hello), timeout=HELLO_TIMEOUT_S)
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError) as exc:
            self._lines("no hub", f"cluster: worker {self._name}: no hub of cluster {self._cid} answers on {self._connection.url} ({type(exc).__name__}); waiting for one")
            return
        except nats.errors.Error as exc:
            self._lines("hello", f"cluster: worker {self._name}: its Hello failed ({type(exc).__name__}: {exc}); trying again")
            return
        try:
            welcome = decode(reply.data)
        except ProtocolError as exc:
            self._lines("bad welcome", f"cluster: worker {self._name}: the hub's answer to its Hello: {exc}")
            return
        if isinstance(welcome, Refused):
            self._lines("bad welcome", f"cluster: worker {self._name}: the hub refused its Hello as a message: {welcome.reason}")
            return
        if not isinstance(welcome, Welcome):
            self._lines("bad welcome", f"cluster: worker {self._name}: the hub answered its Hello with a {type(welcome).__name__}")
            return
        if not welcome.accepted:
            raise WorkerRefused("the hub refused this worker: " + "; ".join(welcome.problems))
        if not self._taken_in:
            self._taken_in = True
            self._log.info("cluster: worker %s of cluster %s: taken in, serving its strategies", self._name, self._cid)
