"""The test server itself: ready with its ports read from its log, stopped cleanly, and a failure to start shows its output."""
from __future__ import annotations

import json
import os
import select
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.cluster.conftest import StartServer
from tests.cluster.nats_server import NATS_SERVER, SERVER_CONFIG, NatsServer, NatsServerError, unavailable
from tests.support import REPO

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG, /proc and pidfd are Linux's")
# Run by a plain Python child (no pytest run, no fixtures): start a server, say its pid, wait to be killed.
_CHILD = """
import sys
from pathlib import Path
from tests.cluster.nats_server import NatsServer
server = NatsServer(Path(sys.argv[1]), user="bot", password="pw-child")
server.start()
print(server.pid, flush=True)
sys.stdin.read()  # until the test kills this process
"""
DEADLINE_S = 20.0


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


@linux_only
def test_the_password_is_in_an_owner_only_file_not_on_the_command_line(start_nats: StartServer) -> None:
    server = start_nats(user="bot", password="pw-5e0c-not-on-any-command-line")
    command = Path(f"/proc/{server.pid}/cmdline").read_bytes().split(b"\0")
    assert not any(b"pw-5e0c" in part for part in command), command
    assert stat.S_IMODE((server.store / SERVER_CONFIG).stat().st_mode) == 0o600


def test_control_characters_in_credentials_are_refused() -> None:
    with pytest.raises(ValueError, match="control characters"):
        NatsServer(Path("unused"), user="bot", password="pw\n")


def _line_within(stream: int, timeout: float) -> bytes:
    """The first line written to the pipe `stream` within `timeout` seconds (b"" when none)."""
    deadline = time.monotonic() + timeout
    buffer = b""
    while b"\n" not in buffer:
        readable, _, _ = select.select([stream], [], [], max(deadline - time.monotonic(), 0))
        chunk = os.read(stream, 4096) if readable else b""
        if not chunk:
            break
        buffer += chunk
    return buffer


@linux_only
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_the_server_dies_with_a_test_process_killed_without_cleanup(tmp_path: Path, sig: signal.Signals) -> None:
    if not NATS_SERVER.is_file():
        unavailable(f"no nats-server at {NATS_SERVER} (bash scripts/setup.sh --cluster)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path / "store")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    server: int | None = None  # a pidfd of the child's server: it names that process even after its pid is reused
    try:
        assert child.stdout is not None
        line = _line_within(child.stdout.fileno(), DEADLINE_S)
        assert line.strip().isdigit(), (line, child.poll())
        pid = int(line)
        server = os.pidfd_open(pid)
        assert Path(f"/proc/{pid}/cmdline").read_bytes().startswith(str(NATS_SERVER).encode())
        child.send_signal(sig)
        assert child.wait(DEADLINE_S) == -sig
        # Readable once the server has exited: awaited, not slept on.
        gone, _, _ = select.select([server], [], [], DEADLINE_S)
        assert gone, f"nats-server {pid} outlived the process that started it"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(DEADLINE_S)
        for stream in (child.stdin, child.stdout, child.stderr):
            if stream is not None:
                stream.close()
        if server is not None:
            # After a failure: stop the orphan anyway (init reaps it).
            if not select.select([server], [], [], 0)[0]:
                signal.pidfd_send_signal(server, signal.SIGKILL)
            os.close(server)
