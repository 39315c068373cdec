"""`bot replay --cluster URL --workers N`: the replay's hub here, its strategies' minds in N `bot worker` processes, in lockstep."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from bot.cluster.bridge import ClusterLink, ClusterLinkError
from bot.cluster.connection import ClusterConnection
from bot.cluster.fingerprint import fingerprint
from bot.cluster.lockstep import LockstepRouter
from bot.cluster.messages import Stop, encode
from bot.cluster.reception import Reception
from bot.cluster.remote import RemoteMinds
from bot.cluster.subjects import hello_subject, replay_run_id, stop_subject, turn_subject
from bot.config.cluster import ClusterConfig
from bot.errors import BotError
from bot.log import BotLogger
from bot.replay.runner import Progress, Replay, ReplayResult
from bot.services import BotServices
from bot.strategy.config_load import LoadedConfig
from bot.strategy.manager import StreamRouter

# Builds the replay with a router in place of in-process delivery (bot.kernel.replay.build_replay, bound to the run's
# config, sources and outputs, by the command line: the kernel sits above the cluster).
ReplayBuilder = Callable[[Callable[[BotServices], StreamRouter]], Replay]

# Seconds to reach the server (an unreachable one is retried meanwhile), and for every worker to say Hello.
CONNECT_TIMEOUT_S = 15.0
HELLO_TIMEOUT_S = 60.0
# Seconds workers get to exit once told to stop, then once terminated.
STOP_TIMEOUT_S = 10.0
# How often the wait for Hellos checks the workers' processes.
WATCH_S = 0.25


class ClusterReplayError(BotError):
    """The cluster replay could not start: the server unreachable, a worker that exited or was refused."""


class _Worker:
    """One `bot worker` process of the run."""

    def __init__(self, name: str, process: subprocess.Popen[bytes]) -> None:
        self.name = name
        self.process = process

    def exited(self) -> int | None:
        """Its exit code once it has ended."""
        return self.process.poll()


class ClusterReplay:
    """A replay whose strategies decide on worker processes it starts, through the NATS server of `cluster`: same outputs as in process."""

    def __init__(
        self,
        loaded: LoadedConfig,
        build: ReplayBuilder,
        cluster: ClusterConfig,
        workers: int,
        logger: BotLogger,
        log_level: int,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("a cluster replay needs at least one worker")
        self.loaded = loaded
        self._build = build
        self.cluster = cluster
        self.workers = workers
        self._logger = logger
        self._log_level = log_level
        self._environ = dict(os.environ if environ is None else environ)
        self.cid = replay_run_id(datetime.now(UTC), os.getpid())

    @property
    def _log(self) -> logging.Logger:
        return self._logger.logger

    async def run(self, progress: Progress | None = None) -> ReplayResult:
        """Start the workers, replay in lockstep, stop the workers (see Replay.run for `progress` and the errors).

        It blocks while it runs: the candle loop waits on the workers' replies.
        """
        link = ClusterLink(lambda: ClusterConnection(self.cluster, self.loaded.base_dir, self._log, label=f"bot replay {self.cid}", environ=self._environ), self._log)
        try:
            link.start(CONNECT_TIMEOUT_S)
        except ClusterLinkError as exc:
            raise ClusterReplayError(f"--cluster {self.cluster.url}: {exc}") from None
        workers: list[_Worker] = []
        try:
            names = [f"w{i + 1}" for i in range(self.workers)]
            reception = Reception(fingerprint(self.loaded), names, self._log)
            link.run(self._listen(link, reception), timeout=CONNECT_TIMEOUT_S)
            workers = [self._start(name) for name in names]
            self._await_hellos(reception, workers)
            self._log.info("cluster: run %s on %s with workers %s", self.cid, self.cluster.url, ", ".join(names))
            transports = [RemoteMinds(link, w.name, turn_subject(self.cid, w.name), w.exited) for w in workers]

            routers: list[LockstepRouter] = []

            def router(services: BotServices) -> StreamRouter:
                routers.append(LockstepRouter(services, list(transports)))
                return routers[-1]

            replay = self._build(router)
            started = time.perf_counter()
            try:
                return await replay.run(progress)
            finally:
                for worker, sids in zip(workers, routers[0].assignment() if routers else [], strict=False):
                    self._log.info("cluster: worker %s decided for %s", worker.name, ", ".join(sids) or "no strategy")
                self._log.info("cluster: %s", round_trip_summary([t for r in transports for t in r.round_trips], time.perf_counter() - started))
        finally:
            self._stop(link, workers)

    async def _listen(self, link: ClusterLink, reception: Reception) -> None:
        client = link.connection.client
        await client.subscribe(hello_subject(self.cid), cb=reception.on_hello)
        await client.flush()

    def _start(self, name: str) -> _Worker:
        command = [
            sys.executable, "-m", "bot", "worker",
            "--config", str(self.loaded.path.resolve()),
            "--cluster", self.cluster.url,
            "--run", self.cid,
            "--name", name,
            "--hub-pid", str(os.getpid()),
            "--log-level", logging.getLevelName(self._log_level),
        ]  # fmt: skip
        # Its log goes to this process's stderr; it exits when told, or when this process is gone.
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, env=self._environ)
        return _Worker(name, process)

    def _await_hellos(self, reception: Reception, workers: list[_Worker]) -> None:
        deadline = time.monotonic() + HELLO_TIMEOUT_S
        while not reception.wait(WATCH_S):
            if reception.refused:
                raise ClusterReplayError("the workers cannot trade as this hub does: " + "; ".join(reception.refused))
            for worker in workers:
                code = worker.exited()
                if code is not None and worker.name not in reception.taken:
                    raise ClusterReplayError(f"worker {worker.name} exited (code {code}) before it was ready: see its log above")
            if time.monotonic() > deadline:
                missing = sorted({w.name for w in workers} - set(reception.taken))
                raise ClusterReplayError(f"workers {missing} did not say Hello on {self.cluster.url} within {HELLO_TIMEOUT_S:g} s")

    def _stop(self, link: ClusterLink, workers: list[_Worker]) -> None:
        """Tell the workers to stop, wait for them (terminate, then kill, the ones that do not), close the link."""
        try:
            if workers:
                link.run(self._say_stop(link), timeout=STOP_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001  the server may be gone: the workers are terminated below instead
            self._log.warning("cluster: could not tell the workers to stop (%s); terminating them", exc)
        finally:
            link.close()
            for worker in workers:
                _end(worker.process)

    async def _say_stop(self, link: ClusterLink) -> None:
        client = link.connection.client
        await client.publish(stop_subject(self.cid), encode(Stop(reason="the replay is over")))
        await client.flush()


def _end(process: subprocess.Popen[bytes]) -> None:
    """Wait for `process` to exit; terminate it, then kill it, if it does not."""
    for step in (None, process.terminate, process.kill):
        if step is not None:
            step()
        try:
            process.wait(STOP_TIMEOUT_S)
            return
        except subprocess.TimeoutExpired:
            continue


def round_trip_summary(round_trips_ns: list[int], seconds: float) -> str:
    """The run's messages to workers, its time, and hub-to-replies round trips: p50, p99, max in ms."""
    if not round_trips_ns:
        return f"no message to the workers in {seconds:.2f} s"
    ordered = sorted(round_trips_ns)

    def ms(q: float) -> str:
        return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6:.2f}"

    return f"{len(ordered)} messages to the workers in {seconds:.2f} s, round trip p50 {ms(0.5)} ms, p99 {ms(0.99)} ms, max {ordered[-1] / 1e6:.2f} ms"
