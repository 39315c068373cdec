"""Fixtures of the cluster tests: a real nats-server per test, stopped after it whatever happened."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cluster.nats_server import NATS_SERVER, NatsServer, unavailable

StartServer = Callable[..., NatsServer]


@pytest.fixture
def start_nats(tmp_path: Path) -> Iterator[StartServer]:
    """Starts NatsServer(store, **options) on demand (a store per server under tmp_path); every one is stopped after the test.

    Without the cluster extra's binary the test is skipped (failed under CI).
    """
    if not NATS_SERVER.is_file():
        unavailable(f"no nats-server at {NATS_SERVER} (bash scripts/setup.sh --cluster)")
    servers: list[NatsServer] = []

    def start(**options: object) -> NatsServer:
        server = NatsServer(tmp_path / f"nats-{len(servers)}", **options)  # type: ignore[arg-type]
        servers.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def nats_server(start_nats: StartServer) -> NatsServer:
    """A nats-server with JetStream on a free loopback port, no credentials, a temporary store."""
    return start_nats()
