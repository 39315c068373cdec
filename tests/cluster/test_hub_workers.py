"""`bot run` as a hub (cluster.placement "workers") with real `bot worker` processes over a real nats-server: each strategy decides on a worker, its book on the hub."""
from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import nats
import nats.errors
import orjson

from bot.cluster.messages import PROTOCOL, Fingerprint, Hello, Message, Welcome, decode, encode
from bot.cluster.subjects import hello_subject
from tests.cluster.conftest import StartServer
from tests.control.client import result, wait_for
from tests.daemon.process import DaemonProcess, journal_rows, short_tmp, write_daemon_config

__all__ = ["short_tmp"]

# A bound on a hang, never a measure of speed.
DEADLINE_S = 60.0
TTL_S = 3


class Worker:
    """A `bot worker --name NAME` process of the cluster in `config`; stopped after the test."""

    def __init__(self, config: Path, name: str, url: str) -> None:
        self.name = name
        self.log = config.parent / f"worker-{name}.log"
        self._log_file = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "worker", "--config", str(config), "--name", name, "--cluster", url],
            cwd=config.parent, stdout=self._log_file, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send `sig`, wait (kill if it hangs); the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(DEADLINE_S / 2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log_file.close()
        return self.proc.returncode


@contextmanager
def workers(config: Path, url: str, *names: str) -> Iterator[dict[str, Worker]]:
    """Worker processes, each stopped after the block whatever happened."""
    started: dict[str, Worker] = {}
    try:
        for name in names:
            started[name] = Worker(config, name, url)
        yield started
    finally:
        for worker in started.values():
            worker.stop()


@contextmanager
def hub_with_workers(config: Path, url: str, *names: str) -> Iterator[DaemonProcess]:
    """A stepped hub with these workers, ready and every one of them taken in; all stopped after the block (the hub with exit 0)."""
    with workers(config, url, *names):
        hub = DaemonProcess(config, stepped=True)
        try:
            hub.wait_ready()
            wait_for(lambda: len(_minds(hub)["workers"]) == len(names), f"workers {', '.join(names)} taken in", DEADLINE_S)
            yield hub
        finally:
            assert hub.stop() == 0, hub.log.read_text()[-3000:]


def _config(folder: Path, cluster: dict[str, Any] | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    overrides: dict[str, Any] = {} if cluster is None else {"cluster": cluster}
    return write_daemon_config(folder, **overrides)


def _book(folder: Path) -> dict[str, list[tuple[Any, ...]]]:
    """What each strategy traded, as the journal holds it (sequence numbers left out: strategies interleave differently)."""
    return {
        "orders": journal_rows(folder, "SELECT strategy_id, client_id, side, quantity, intent, status, filled_quantity, submitted_ts FROM orders ORDER BY strategy_id, client_id"),
        "fills": journal_rows(folder, "SELECT strategy_id, client_id, price, quantity, fee, fill_ts FROM fills ORDER BY strategy_id, id"),
        "trades": journal_rows(folder, "SELECT strategy_id, position_id, exit_ts, record FROM trades ORDER BY strategy_id, id"),
        "events": journal_rows(folder, "SELECT strategy_id, n, type, ts, payload FROM strategy_events ORDER BY strategy_id, n"),
    }


def _minds(daemon: DaemonProcess) -> dict[str, Any]:
    minds: dict[str, Any] = result(daemon.socket, "status")["cluster"]["minds"]
    return minds


def test_a_hub_with_two_workers_trades_as_the_daemon_in_process(start_nats: StartServer, short_tmp: Path) -> None:
    server = start_nats()
    cluster = {"url": server.url, "placement": "workers", "lease_ttl_s": TTL_S}
    alone = DaemonProcess(_config(short_tmp / "alone", None), stepped=True)
    try:
        alone.wait_ready()
        # Up to the first closed trade of each strategy (and a little beyond): the comparison then proves something.
        candles = 0
        while len({row[0] for row in journal_rows(short_tmp / "alone", "SELECT strategy_id FROM trades")}) < 2:
            assert candles < 20_000, "no trade of each strategy in 20,000 candles"
            candles += alone.step(500, timeout=DEADLINE_S).published
    finally:
        assert alone.stop() == 0, alone.log.read_text()[-3000:]
    expected = _book(short_tmp / "alone")

    config = _config(short_tmp / "hub", cluster)
    with workers(config, server.url, "w1", "w2") as running:
        hub = DaemonProcess(config, stepped=True)
        try:
            hub.wait_ready()
            # Both taken in before the first candle: the strategies then spread over both.
            wait_for(lambda: all(w["live"] for w in _minds(hub)["workers"].values()) and len(_minds(hub)["workers"]) == 2, "both workers taken in", DEADLINE_S)
            hub.step(candles, timeout=DEADLINE_S)
            minds = _minds(hub)
            assert {m["worker"] for m in minds["minds"].values()} == {"w1", "w2"}, minds
            assert sorted(minds["minds"]) == ["ema_cross", "rsi_reversion"], minds
            assert minds["counts"]["stale"] == 0 and minds["counts"]["undecodable"] == 0, minds
            # What an operator reads: each strategy's worker, and the workers.
            shown = subprocess.run(
                [sys.executable, "-m", "bot", "ctl", "--config", str(config), "status"], capture_output=True, text=True, cwd=config.parent, timeout=DEADLINE_S,
            ).stdout
            for sid, mind in minds["minds"].items():
                assert re.search(rf"{sid}\s.*\sactive\s.*{mind['worker']} \(epoch {mind['epoch']}\)", shown), shown
            assert re.search(r"w1\s.*\syes\s.*\s1\s", shown) and re.search(r"w2\s.*\syes\s.*\s1\s", shown), shown
            metrics = result(hub.socket, "metrics")["strategies"]
            assert all(m["decision_wait_p99_us"] > 0 and m["waiting"] == 0 and m["protecting"] == 0 for m in metrics.values()), metrics
        finally:
            assert hub.stop() == 0, hub.log.read_text()[-3000:]
        for worker in running.values():
            assert worker.proc.poll() is None, worker.log.read_text()
    assert _book(short_tmp / "hub") == expected
    # Nothing left awaiting a decision: every turn numbered was decided.
    for key, value in journal_rows(short_tmp / "hub", "SELECT key, value FROM meta WHERE key LIKE 'cluster.lane:%'"):
        lane = orjson.loads(value)
        assert lane["pending"] is None and lane["decided"] == lane["n"] > 0, (key, lane)


def test_what_the_hub_cannot_take_on_its_subjects_is_counted_logged_once_and_survived(start_nats: StartServer, short_tmp: Path) -> None:
    server = start_nats()
    config = _config(short_tmp / "hub", {"url": server.url, "placement": "workers", "lease_ttl_s": TTL_S})
    with workers(config, server.url, "w1"):
        hub = DaemonProcess(config, stepped=True)
        try:
            hub.wait_ready()
            wait_for(lambda: _minds(hub)["workers"], "w1 taken in", DEADLINE_S)
            hub.step(5, timeout=DEADLINE_S)
            other = Fingerprint(bot_version="0.0.0-other", protocol=PROTOCOL, codec=1, strategies={})
            replies = asyncio.run(_send_to_hub(server.url, [
                b"not json", msgspec.json.encode({"v": PROTOCOL, "t": "hello"}), b'{"v": 99, "t": "hello"}',
                encode(Welcome(accepted=True, problems=[])),
                encode(Hello(worker="w9", pid=1, host="elsewhere", fingerprint=other)),
            ]))
            # Garbage gets no answer (it is counted and logged); a Hello of another bot version is refused naming it.
            assert replies[:4] == [None] * 4, replies
            refused = replies[4]
            assert isinstance(refused, Welcome) and not refused.accepted and "bot version 0.0.0-other on the worker" in refused.problems[0], refused
            minds = _minds(hub)
            assert minds["counts"]["undecodable"] == 4 and "w9" not in minds["workers"], minds
            # Still deciding.
            hub.step(5, timeout=DEADLINE_S)
            assert result(hub.socket, "metrics")["strategies"]["ema_cross"]["waiting"] == 0
        finally:
            assert hub.stop() == 0, hub.log.read_text()[-3000:]
    log = hub.log.read_text()
    assert log.count("does not decode") == 1, log  # once a minute per subject: the two that do not decode, one line
    assert "refused worker w9 (pid 1 on elsewhere): bot version 0.0.0-other on the worker" in log


async def _send_to_hub(url: str, messages: list[bytes]) -> list[Message | None]:
    """Each message as a request on the hub's Hello subject: its decoded reply, or None when none comes."""
    client = await nats.connect(url)
    replies: list[Message | None] = []
    try:
        for data in messages:
            try:
                reply = await client.request(hello_subject("main"), data, timeout=1.0)
            except nats.errors.TimeoutError:
                replies.append(None)
                continue
            replies.append(decode(reply.data))
    finally:
        await client.close()
    return replies
