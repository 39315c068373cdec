"""The optional TCP control listener: loopback only, and only with the token from the environment."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import anyio
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from bot.config.models import TcpControlConfig
from tests.daemon.process import DaemonProcess, write_daemon_config

TOKEN = "s3cret-token-for-tests-only"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_tcp_listener_requires_the_token(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = _free_port()
    monkeypatch.setenv("BOT_TEST_TOKEN", TOKEN)
    config = write_daemon_config(short_tmp, control={"socket": "bot.sock", "tcp": {"port": port, "token_env": "BOT_TEST_TOKEN"}})
    daemon = DaemonProcess(config)
    try:
        daemon.wait_ready()
        uri = f"ws://127.0.0.1:{port}"

        async def without_token() -> None:
            async with connect(uri):
                pass

        with pytest.raises(InvalidStatus) as refused:
            anyio.run(without_token)
        assert refused.value.response.status_code == 401

        async def with_token(token: str) -> dict[str, object]:
            async with connect(uri, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
                await ws.send(orjson.dumps({"id": 1, "cmd": "status", "args": {}}).decode())
                reply: dict[str, object] = orjson.loads(await ws.recv())
                return reply

        with pytest.raises(InvalidStatus):
            anyio.run(with_token, "wrong-token-of-some-length")
        reply = anyio.run(with_token, TOKEN)
        assert reply["ok"] is True and reply["id"] == 1
    finally:
        assert daemon.stop() == 0


def test_tcp_without_a_token_in_the_environment_refuses_to_start(short_tmp: Path) -> None:
    config = write_daemon_config(short_tmp, control={"socket": "bot.sock", "tcp": {"port": _free_port(), "token_env": "BOT_UNSET_TOKEN"}})
    env = {k: v for k, v in os.environ.items() if k != "BOT_UNSET_TOKEN"}
    done = subprocess.run([sys.executable, "-m", "bot", "run", "--config", str(config)], cwd=short_tmp, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "BOT_UNSET_TOKEN" in done.stderr


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "example.com"])
def test_a_non_loopback_host_is_refused_by_config(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        TcpControlConfig(host=host, port=8765)
