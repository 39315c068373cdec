"""`bot worker` as a real process against a real nats-server, the test playing the hub: Hello refused or taken in, bad messages survived."""
from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import msgspec
import orjson
import pytest

from bot.cluster.connection import ClusterConnection
from bot.cluster.fingerprint import differences, fingerprint
from bot.cluster.messages import PROTOCOL, Activate, Activated, Refused, Stop, decode, decode_batch, encode
from bot.cluster.reception import Reception
from bot.cluster.subjects import hello_subject, stop_subject, turn_subject
from bot.config.cluster import ClusterConfig
from bot.strategy.config_load import load_config
from tests.cluster.nats_server import NatsServer
from tests.support import REPO

CID = "r-test-1"
# A bound on a hang (a worker starts in about a second), never a measure of speed.
DEADLINE_S = 60


def _config_copy(tmp: Path) -> Path:
    """config.replay.json and its strategies, in a folder of their own (to change one)."""
    config = orjson.loads((REPO / "config.replay.json").read_bytes())
    for source in config["replay"]["candles"].values():
        source["path"] = str(REPO / source["path"])
    shutil.copytree(REPO / "strategies", tmp / "strategies")
    path = tmp / "config.json"
    path.write_bytes(orjson.dumps(config))
    return path


@asynccontextmanager
async def hub_side(server: NatsServer, reception: Reception) -> AsyncIterator[ClusterConnection]:
    """A connection listening for Hellos as the hub does."""
    connection = ClusterConnection(ClusterConfig(url=server.url), REPO, logging.getLogger("test.hub"), label="test hub", environ={})
    async with asyncio.timeout(DEADLINE_S):
        await connection.connect()
    try:
        await connection.client.subscribe(hello_subject(CID), cb=reception.on_hello)
        await connection.client.flush()
        yield connection
    finally:
        await connection.close()


def start_worker(server: NatsServer, config: Path, name: str = "w1") -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "bot", "worker", "--config", str(config), "--cluster", server.url, "--run", CID, "--name", name, "--log-level", "INFO"]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


async def ended(process: subprocess.Popen[str]) -> tuple[int, str]:
    """The process's exit code and stderr, once it exits by itself (killed at the deadline)."""
    try:
        _, stderr = await asyncio.to_thread(process.communicate, timeout=DEADLINE_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, stderr


async def until(condition: object, what: str) -> None:
    async with asyncio.timeout(DEADLINE_S):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)


@pytest.mark.asyncio
async def test_a_worker_whose_strategy_differs_from_the_hubs_is_refused_naming_it(nats_server: NatsServer, tmp_path: Path) -> None:
    changed = _config_copy(tmp_path)
    momentum = tmp_path / "strategies" / "catalog" / "momentum.json"
    spec = orjson.loads(momentum.read_bytes())
    spec["params"]["entry_period"] = 30
    momentum.write_bytes(orjson.dumps(spec))
    reception = Reception(fingerprint(load_config(REPO / "config.replay.json")), ["w1"], logging.getLogger("test.hub"))
    async with hub_side(nats_server, reception):
        code, stderr = await ended(start_worker(nats_server, changed))
    assert code == 2, stderr
    assert "the hub refused this worker: strategy momentum: its config or its code differs from the hub's" in stderr
    assert reception.taken == {}
    assert reception.refused == [reception.refused[0]] and "worker w1" in reception.refused[0] and "strategy momentum" in reception.refused[0]


def test_fingerprints_name_every_difference(tmp_path: Path) -> None:
    hub = fingerprint(load_config(REPO / "config.replay.json"))
    assert differences(hub, hub) == []
    changed = _config_copy(tmp_path)
    (tmp_path / "strategies" / "momentum.py").write_text((tmp_path / "strategies" / "momentum.py").read_text() + "\n# changed\n")
    worker = fingerprint(load_config(changed))
    assert differences(hub, worker) == ["strategy momentum: its config or its code differs from the hub's"]
    fewer = msgspec.structs.replace(hub, strategies={k: v for k, v in hub.strategies.items() if k != "hybrid"}, bot_version="0.0.1")
    problems = differences(hub, fewer)
    assert problems[0] == f"bot version 0.0.1 on the worker, {hub.bot_version} on the hub"
    assert problems[1].startswith("strategy set differs: the hub has [") and "'hybrid'" in problems[1]


@pytest.mark.asyncio
async def test_a_worker_answers_what_does_not_decode_with_a_refusal_logs_it_once_and_goes_on(nats_server: NatsServer, tmp_path: Path) -> None:
    loaded = load_config(REPO / "config.replay.json")
    reception = Reception(fingerprint(loaded), ["w1"], logging.getLogger("test.hub"))
    async with hub_side(nats_server, reception) as hub:
        worker = start_worker(nats_server, REPO / "config.replay.json")
        try:
            await until(lambda: "w1" in reception.taken or worker.poll() is not None, "the worker's Hello")
            assert "w1" in reception.taken, worker.communicate()[1]
            subject = turn_subject(CID, "w1")
            refusals = []
            for garbage in (b"not json", msgspec.json.encode({"v": PROTOCOL, "t": "turn"}), b'{"v": 9, "t": "turn"}', encode(Activated(sid="x", failure=None, streams=[]))):
                reply = await hub.client.request(subject, garbage, timeout=DEADLINE_S)
                (answer,) = decode_batch(reply.data)
                refused = decode(answer)
                assert isinstance(refused, Refused)
                refusals.append(refused.reason)
            assert refusals[0].startswith("cluster message is not JSON")
            assert "does not decode" in refusals[1]
            assert refusals[2] == f"cluster message of protocol 9, this bot speaks {PROTOCOL}"
            assert "not Activated" in refusals[3]
            # Still serving: a real activation gets its answer.
            spec = msgspec.Raw(loaded.strategies[0].model_dump_json(exclude_unset=True).encode())
            reply = await hub.client.request(subject, encode(Activate(sid=loaded.strategies[0].id, spec=spec)), timeout=DEADLINE_S)
            (answer,) = decode_batch(reply.data)
            activated = decode(answer)
            assert isinstance(activated, Activated) and activated.failure is None and activated.streams
            await hub.client.publish(stop_subject(CID), encode(Stop(reason="test over")))
            await hub.client.flush()
            code, stderr = await ended(worker)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert code == 0, stderr
    # One line for the first refusal on the subject; the rest held back within the minute.
    lines = [line for line in stderr.splitlines() if f"a message on {subject} was refused" in line]
    assert len(lines) == 1, stderr
    assert "the hub says stop" in stderr


class Lines:
    """A process's stderr, read line by line on a thread, to await a line without sleeping."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        self._stream = process.stderr
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with self._stream:
            for line in self._stream:
                self.lines.append(line)

    def has(self, words: str) -> bool:
        return any(words in line for line in list(self.lines))

    def text(self) -> str:
        self._thread.join(DEADLINE_S)
        return "".join(self.lines)


UNREACHABLE = "nats://127.0.0.1:1"


def _worker_process(cluster: str, *extra: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "bot", "worker", "--config", str(REPO / "config.replay.json"), "--cluster", cluster, "--run", CID,
               "--name", "w1", "--log-level", "INFO", *extra]  # fmt: skip
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.asyncio
async def test_a_worker_still_connecting_exits_on_sigterm() -> None:
    worker = _worker_process(UNREACHABLE)
    lines = Lines(worker)
    try:
        await until(lambda: lines.has("cannot connect to") or worker.poll() is not None, "the worker retrying its server")
        assert worker.poll() is None, lines.text()
        worker.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(worker.wait, DEADLINE_S)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert code == 0, lines.text()
    lines.text()


@pytest.mark.asyncio
async def test_a_worker_whose_hub_is_not_its_parent_exits_while_still_connecting() -> None:
    # A hub gone before the worker even started: its parent is already another process.
    worker = _worker_process(UNREACHABLE, "--hub-pid", "999999999")
    lines = Lines(worker)
    try:
        code = await asyncio.to_thread(worker.wait, DEADLINE_S)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert code == 0
    assert "the hub (pid 999999999) is gone; exiting" in lines.text()


@pytest.mark.asyncio
async def test_garbage_on_the_stop_subject_is_refused_and_the_worker_goes_on(nats_server: NatsServer) -> None:
    reception = Reception(fingerprint(load_config(REPO / "config.replay.json")), ["w1"], logging.getLogger("test.hub"))
    async with hub_side(nats_server, reception) as hub:
        worker = _worker_process(nats_server.url)
        lines = Lines(worker)
        try:
            await until(lambda: "w1" in reception.taken or worker.poll() is not None, "the worker's Hello")
            subject = stop_subject(CID)
            await hub.client.publish(subject, b"not json at all")
            await hub.client.flush()
            await until(lambda: lines.has(f"a message on {subject} was refused") or worker.poll() is not None, "the refusal's log line")
            assert worker.poll() is None, lines.text()
            # Still serving its turn subject.
            reply = await hub.client.request(turn_subject(CID, "w1"), b"[]", timeout=DEADLINE_S)
            assert isinstance(decode(decode_batch(reply.data)[0]), Refused)
            await hub.client.publish(subject, encode(Stop(reason="test over")))
            await hub.client.flush()
            code = await asyncio.to_thread(worker.wait, DEADLINE_S)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert code == 0, lines.text()
    assert "the hub says stop (test over)" in lines.text()
