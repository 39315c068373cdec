"""The test server itself: ready with its ports read from its log, stopped cleanly, and a failure to start shows its output."""
from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from tests.cluster.conftest import StartServer
from tests.cluster.nats_server import NatsServer, NatsServerError


def test_the_server_is_ready_on_free_loopback_ports_and_stops_cleanly(start_nats: StartServer) -> None:
    server = start_nats()
    assert server.url == f"nats://127.0.0.1:{server.port}"
    assert server.monitor_port is not None and server.monitor_port != server.port
    with urllib.request.urlopen(f"http://127.0.0.1:{server.monitor_port}/healthz?js-enabled-only=true", timeout=10) as answer:
        assert (answer.status, json.loads(answer.read())) == (200, {"status": "ok"})
    assert "Version:  2.15.1" in server.output()
    assert server.stop() == 0
    assert not server.running
    assert server.stop() is None  # stopped already: nothing to do


def test_a_restart_after_kill_9_keeps_the_client_port_and_the_store(start_nats: StartServer) -> None:
    server = start_nats()
    port = server.port
    server.kill9()
    assert not server.running
    server.restart()
    assert server.port == port
    assert server.output().count("Server is ready") == 2
    assert str(server.store / "jetstream") in server.output()


def test_a_server_that_cannot_start_fails_with_its_output(start_nats: StartServer, tmp_path: Path) -> None:
    first = start_nats()
    second = NatsServer(tmp_path / "second")
    second.port = first.port  # taken: the second exits before it is ready
    with pytest.raises(NatsServerError) as failed:
        second.start()
    message = str(failed.value)
    assert message.startswith("nats-server was not ready within 20.0 s (exit code 1):")
    assert f"127.0.0.1:{first.port}" in message and "address already in use" in message
    assert not second.running
    assert first.running


def test_credentials_are_given_together() -> None:
    with pytest.raises(ValueError, match="both user and password"):
        NatsServer(Path("unused"), user="bot")
