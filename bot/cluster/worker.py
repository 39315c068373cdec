"""A worker process of a lockstep replay: minds answering the hub's messages on the worker's subject until the hub says stop."""
from __future__ import annotations

import asyncio
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
from bot.cluster.error_lines import ErrorLines
from bot.cluster.local import LocalMinds
from bot.cluster.messages import Fingerprint, Hello, ProtocolError, Refused, Stop, Welcome, decode, encode, encode_batch
from bot.cluster.stopping import unless_stopped
from bot.cluster.subjects import hello_subject, stop_subject, turn_subject
from bot.strategy.catalog import StrategyCatalog

# Seconds a Hello may go unanswered (the hub listens before it starts its workers: longer means it is gone).
HELLO_TIMEOUT_S = 30.0
# How often a replay worker checks that the hub that started it is still its parent (a poll: Linux has no portable parent-death event).
PARENT_CHECK_S = 1.0


class WorkerRefused(RuntimeError):
    """The hub refused this worker (its config or code differs), or never answered its Hello."""


class ReplayWorker:
    """One worker of a replay run `cid`: takes activations, warm-ups and turns on its subject, answers them from its minds."""

    def __init__(
        self,
        connection: ClusterConnection,
        cid: str,
        name: str,
        catalog: StrategyCatalog,
        fingerprint: Fingerprint,
        logger: logging.Logger,
        parent_pid: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connection = connection
        self._cid = cid
        self._name = name
        self._minds = LocalMinds(catalog, on_refused=self._refused)
        self._fingerprint = fingerprint
        self._log = logger
        self._parent_pid = parent_pid
        self._bad_lines = ErrorLines(logger, clock)
        self._subject = turn_subject(cid, name)
        self._stop = asyncio.Event()
        self.undecodable = 0
        self.answered = 0

    def _refused(self, reason: str, subject: str | None = None) -> None:
        subject = subject or self._subject
        self.undecodable += 1
        self._bad_lines(f"refused:{subject}", f"cluster: a message on {subject} was refused: {reason}")

    async def _on_message(self, msg: NatsMsg) -> None:
        try:
            replies = self._minds.request(msg.data)
        except Exception as exc:  # noqa: BLE001  never into the client's callback: the hub is told why and stops
            self._log.exception("cluster: worker %s failed on a message on %s", self._name, msg.subject)
            replies = [encode(Refused(reason=f"worker {self._name} failed: {type(exc).__name__}: {exc}"))]
        self.answered += 1
        if msg.reply:
            await msg.respond(encode_batch(replies))

    async def _on_stop(self, msg: NatsMsg) -> None:
        try:
            stop = decode(msg.data)
        except ProtocolError as exc:
            self._refused(str(exc), msg.subject)
            return
        if not isinstance(stop, Stop):
            self._refused(f"a {type(stop).__name__} where a Stop was due", msg.subject)
            return
        self._log.info("cluster: worker %s: the hub says stop (%s)", self._name, stop.reason)
        self._stop.set()

    async def run(self) -> None:
        """Connect, listen, say Hello; return when the hub says stop, on SIGTERM, or when the hub that started it is gone.

        Connecting is given up on those too (a server that is down is retried until then). WorkerRefused
        when the hub refuses it or does not answer.
        """
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)
        watch = asyncio.create_task(self._watch_parent())
        try:
            if await unless_stopped(self._stop, self._join()):
                self._log.info("cluster: worker %s of run %s: taken in, waiting for turns", self._name, self._cid)
                await self._stop.wait()
        finally:
            watch.cancel()
            await self._connection.close()
            # ru_maxrss is in KiB on Linux.
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            self._log.info("cluster: worker %s: %d messages answered, %d refused, peak RSS %.0f MB", self._name, self.answered, self.undecodable, peak)

    async def _join(self) -> None:
        await self._connection.connect()
        client = self._connection.client
        await client.subscribe(self._subject, cb=self._on_message)
        await client.subscribe(stop_subject(self._cid), cb=self._on_stop)
        await client.flush()
        await self._hello()

    async def _watch_parent(self) -> None:
        """Stop when the hub that started this worker is gone (it is no longer the parent)."""
        if self._parent_pid is None:
            return
        while os.getppid() == self._parent_pid:
            await asyncio.sleep(PARENT_CHECK_S)
        self._log.warning("cluster: worker %s: the hub (pid %d) is gone; exiting", self._name, self._parent_pid)
        self._stop.set()

    async def _hello(self) -> None:
        hello = Hello(worker=self._name, pid=os.getpid(), host=socket.gethostname(), fingerprint=self._fingerprint)
        try:
            reply = await self._connection.client.request(hello_subject(self._cid), encode(hello), timeout=HELLO_TIMEOUT_S)
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError) as exc:
            raise WorkerRefused(f"no hub of run {self._cid} answers on {self._connection.url} ({type(exc).__name__})") from None
        try:
            welcome = decode(reply.data)
        except ProtocolError as exc:
            raise WorkerRefused(f"the hub's answer to this worker's Hello: {exc}") from None
        if not isinstance(welcome, Welcome):
            raise WorkerRefused(f"the hub answered this worker's Hello with a {type(welcome).__name__}")
        if not welcome.accepted:
            raise WorkerRefused("the hub refused this worker: " + "; ".join(welcome.problems))
