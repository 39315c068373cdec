"""ClusterConnection against a real nats-server: JetStream with dedup, refusals that name the setting, kill -9 and restart, TLS."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.cluster.access import ClusterConnectError
from bot.config.cluster import ClusterConfig
from tests.cluster.certs import TestCa
from tests.cluster.conftest import StartServer
from tests.cluster.nats_server import NatsServer, ServerTls, unavailable

try:
    from nats.js.api import StreamConfig

    from bot.cluster.connection import ClusterConnection, Health
except ImportError as missing:
    unavailable(f"nats-py is not installed (bash scripts/setup.sh --cluster): {missing}")

# A bound on every wait for something the server or the client must do: a failure, never a timing assertion.
DEADLINE_S = 20.0
USER, PASSWORD = "bot", "pw-3c1d9e7a-not-in-any-message"
CREDENTIAL_ENV = {"BOT_NATS_USER": USER, "BOT_NATS_PASSWORD": PASSWORD}
LOGGER = "bot.test.cluster"


def _config(server: NatsServer, **settings: Any) -> ClusterConfig:
    # Short reconnect delays: a restarted server is found again at once.
    return ClusterConfig.model_validate({"url": server.url, "reconnect_min_s": 0.02, "reconnect_max_s": 0.1, **settings})


def _credentials() -> dict[str, str]:
    return {"user_env": "BOT_NATS_USER", "password_env": "BOT_NATS_PASSWORD"}


@asynccontextmanager
async def connected(config: ClusterConfig, environ: dict[str, str] | None = None, base_dir: Path = Path()) -> AsyncIterator[ClusterConnection]:
    """A connected ClusterConnection, closed after the block."""
    connection = ClusterConnection(config, base_dir, logging.getLogger(LOGGER), label="test", environ=environ or {})
    async with asyncio.timeout(DEADLINE_S):
        await connection.connect()
    try:
        yield connection
    finally:
        await connection.close()


async def _refusal(config: ClusterConfig, environ: dict[str, str] | None = None) -> tuple[str, ClusterConnection]:
    """The message of the ClusterConnectError that connecting with `config` ends in, and the connection."""
    connection = ClusterConnection(config, Path(), logging.getLogger(LOGGER), label="test", environ=environ or {})
    with pytest.raises(ClusterConnectError) as refused:
        async with asyncio.timeout(DEADLINE_S):
            await connection.connect()
    return str(refused.value), connection


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Poll `condition` (a counter the client updates) until true; fail naming `what` at the deadline."""
    try:
        async with asyncio.timeout(DEADLINE_S):
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"never happened: {what}")


@pytest.mark.asyncio
async def test_a_jetstream_publish_with_a_msg_id_is_stored_once_and_its_repeat_is_acked_as_a_duplicate(nats_server: NatsServer) -> None:
    async with connected(_config(nats_server)) as connection:
        assert connection.health.state == "connected"
        js = connection.jetstream()
        await js.add_stream(StreamConfig(name="MD_test", subjects=["md.test.>"]))
        first = await js.publish("md.test.paper.BTC_USD.1m", b"candle 1", headers={"Nats-Msg-Id": "paper:BTC/USD:1m:0"})
        again = await js.publish("md.test.paper.BTC_USD.1m", b"candle 1", headers={"Nats-Msg-Id": "paper:BTC/USD:1m:0"})
        other = await js.publish("md.test.paper.BTC_USD.1m", b"candle 2", headers={"Nats-Msg-Id": "paper:BTC/USD:1m:60000"})
        assert (first.seq, first.duplicate) == (1, None)
        assert (again.seq, again.duplicate) == (1, True)
        assert (other.seq, other.duplicate) == (2, None)
        assert (await js.stream_info("MD_test")).state.messages == 2
        message = await js.get_msg("MD_test", seq=1)
        assert message.data == b"candle 1"
    assert connection.health == Health("closed", "closed by this process")


@pytest.mark.asyncio
async def test_credentials_come_from_the_environment_variables_the_config_names(start_nats: StartServer) -> None:
    server = start_nats(user=USER, password=PASSWORD)
    async with connected(_config(server, **_credentials()), CREDENTIAL_ENV) as connection:
        assert connection.health.state == "connected"


@pytest.mark.asyncio
async def test_a_wrong_password_is_refused_naming_the_url_and_the_variables_and_never_the_secret(start_nats: StartServer, caplog: pytest.LogCaptureFixture) -> None:
    server = start_nats(user=USER, password=PASSWORD)
    wrong = "wrong-7f1e0b-secret"
    message, connection = await _refusal(_config(server, **_credentials()), {"BOT_NATS_USER": USER, "BOT_NATS_PASSWORD": wrong})
    assert server.url in message
    assert "BOT_NATS_USER/BOT_NATS_PASSWORD" in message
    assert "authorization violation" in message
    logged = caplog.text + repr(connection.health)
    for secret in (wrong, PASSWORD):
        assert secret not in message and secret not in logged
    assert connection.health.state == "closed"


@pytest.mark.asyncio
async def test_a_server_requiring_credentials_when_none_are_configured_says_which_settings_to_set(start_nats: StartServer) -> None:
    server = start_nats(user=USER, password=PASSWORD)
    message, _ = await _refusal(_config(server))
    assert message == f"{server.url} requires credentials: set cluster.user_env and cluster.password_env to the environment variables holding them"


@pytest.mark.asyncio
@pytest.mark.parametrize("unset", ["BOT_NATS_USER", "BOT_NATS_PASSWORD"])
async def test_an_unset_credential_variable_is_named_before_any_connection(unset: str) -> None:
    # Nothing listens at the url: the refusal comes before an attempt.
    config = ClusterConfig.model_validate({"url": "nats://127.0.0.1:9", **_credentials()})
    message, _ = await _refusal(config, {k: v for k, v in CREDENTIAL_ENV.items() if k != unset})
    setting = "user_env" if unset == "BOT_NATS_USER" else "password_env"
    assert message == f"cluster.{setting}: the environment variable {unset} is not set or empty"


@pytest.mark.asyncio
async def test_kill_9_of_the_server_degrades_the_health_and_a_restart_on_the_same_store_reconnects_with_the_stream_kept(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with connected(_config(nats_server)) as connection:
        js = connection.jetstream()
        await js.add_stream(StreamConfig(name="EVT_test", subjects=["evt.test.>"]))
        for n in range(5):
            await js.publish("evt.test.s1.signal", f"event {n}".encode(), headers={"Nats-Msg-Id": f"test:{n}"})

        nats_server.kill9()
        async with asyncio.timeout(DEADLINE_S):
            degraded = await connection.wait_for("degraded")
        assert degraded.detail == f"reconnecting to {nats_server.url}"
        # Many refused attempts while the server is down: each kind of error is logged once, without a traceback.
        await _until(lambda: connection.errors_seen >= 6, "six errors reported by nats-py while the server is down")

        assert connection.reconnects == 0
        nats_server.restart()
        async with asyncio.timeout(DEADLINE_S):
            await connection.wait_for("connected")
            assert await connection.wait_reconnect(0) == 1
        info = await js.stream_info("EVT_test")
        assert (info.state.messages, info.state.last_seq) == (5, 5)
        # The dedup table survived the kill: a retry of an acked message is still a duplicate.
        assert (await js.publish("evt.test.s1.signal", b"event 4", headers={"Nats-Msg-Id": "test:4"})).duplicate is True
        assert (await js.publish("evt.test.s1.signal", b"event 5", headers={"Nats-Msg-Id": "test:5"})).seq == 6

    ours = [r for r in caplog.records if r.name == LOGGER]
    assert [r for r in caplog.records if r.exc_info is not None] == []
    warnings = [r.getMessage() for r in ours if r.levelno == logging.WARNING]
    refused = [line for line in warnings if "ConnectionRefusedError" in line]
    assert len(refused) == 1, warnings
    assert len(warnings) == len(set(warnings)), warnings
    assert any(r.getMessage().startswith(f"cluster: reconnected to {nats_server.url}") for r in ours)


@pytest.mark.asyncio
async def test_a_server_not_up_yet_is_retried_with_health_degraded_until_it_starts(nats_server: NatsServer) -> None:
    assert nats_server.stop() == 0
    connection = ClusterConnection(_config(nats_server), Path(), logging.getLogger(LOGGER), label="test", environ={})
    connecting = asyncio.create_task(connection.connect())
    try:
        await _until(lambda: connection.errors_seen >= 3, "three refused attempts")
        assert connection.health.state == "degraded"
        assert connection.health.detail.startswith(f"connecting to {nats_server.url}: ConnectionRefusedError")
        assert not connecting.done()
        nats_server.restart()
        async with asyncio.timeout(DEADLINE_S):
            await connecting
        assert connection.health == Health("connected")
    finally:
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await connecting
        await connection.close()


@pytest.mark.asyncio
async def test_a_wait_for_a_reconnect_ends_with_an_error_when_the_connection_closes(nats_server: NatsServer) -> None:
    async with connected(_config(nats_server)) as connection:
        waiting = asyncio.create_task(connection.wait_reconnect(0))
        await connection.close()
        with pytest.raises(ClusterConnectError) as closed:
            async with asyncio.timeout(DEADLINE_S):
                await waiting
        assert str(closed.value) == f"the connection to {nats_server.url} is closed by this process: no reconnect will come"


@pytest.fixture
def ca(tmp_path: Path) -> TestCa:
    return TestCa(tmp_path / "tls")


@pytest.mark.asyncio
async def test_tls_with_the_ca_in_the_config_connects_and_a_client_without_that_ca_is_refused_clearly(start_nats: StartServer, ca: TestCa) -> None:
    issued = ca.issue("server")
    server = start_nats(tls=ServerTls(issued.cert, issued.key))
    assert server.url.startswith("tls://127.0.0.1:")
    async with connected(_config(server, tls={"ca_file": str(ca.ca)})) as connection:
        js = connection.jetstream()
        await js.add_stream(StreamConfig(name="T", subjects=["t"]))
        assert (await js.publish("t", b"over TLS")).seq == 1

    message, connection = await _refusal(_config(server, tls={}))
    assert message.startswith(f"{server.url}: the server's certificate is not trusted by the system's CAs: ")
    assert connection.health.state == "closed"

    other = TestCa(ca.folder / "other", name="another CA")
    message, _ = await _refusal(_config(server, tls={"ca_file": str(other.ca)}))
    assert message.startswith(f"{server.url}: the server's certificate is not trusted by the CA in cluster.tls.ca_file ({other.ca}): ")


@pytest.mark.asyncio
async def test_mutual_tls_with_credentials_connects_with_a_client_certificate_and_refuses_a_client_without_one(start_nats: StartServer, ca: TestCa) -> None:
    issued = ca.issue("server")
    client = ca.issue("worker", client=True)
    server = start_nats(tls=ServerTls(issued.cert, issued.key, ca=ca.ca), user=USER, password=PASSWORD)
    tls = {"ca_file": str(ca.ca), "cert_file": str(client.cert), "key_file": str(client.key)}
    async with connected(_config(server, tls=tls, **_credentials()), CREDENTIAL_ENV) as connection:
        assert connection.health.state == "connected"

    message, _ = await _refusal(_config(server, tls={"ca_file": str(ca.ca)}, **_credentials()), CREDENTIAL_ENV)
    assert message == f"{server.url} requires a client certificate: set cluster.tls.cert_file and key_file"


@pytest.mark.asyncio
async def test_tls_files_are_read_relative_to_the_config_folder_and_a_missing_one_is_named(tmp_path: Path, ca: TestCa) -> None:
    config = ClusterConfig.model_validate({"url": "tls://127.0.0.1:9", "tls": {"ca_file": "tls/missing.pem"}})
    connection = ClusterConnection(config, tmp_path, logging.getLogger(LOGGER), label="test", environ={})
    with pytest.raises(ClusterConnectError) as refused:
        await connection.connect()
    assert str(refused.value) == f"cluster.tls.ca_file: {tmp_path / 'tls' / 'missing.pem'} is not a file"


@pytest.mark.asyncio
@pytest.mark.parametrize("scheme", ["tls", "nats"])
async def test_tls_settings_never_speak_plaintext_so_a_server_without_tls_never_sees_the_credentials(start_nats: StartServer, scheme: str) -> None:
    # A plaintext server where a url with TLS settings points (say, someone answering in the real server's place): nats-py
    # would follow its INFO into plaintext and send the CONNECT, credentials and all. The handshake comes first instead,
    # for a tls:// url and for a nats:// one with a tls section alike.
    plain = start_nats(user=USER, password=PASSWORD)
    url = plain.url.replace("nats://", f"{scheme}://")
    config = ClusterConfig.model_validate({"url": url, "reconnect_min_s": 0.02, "reconnect_max_s": 0.1, "tls": {}, **_credentials()})
    message, connection = await _refusal(config, CREDENTIAL_ENV)
    assert message.startswith(f"{url}: TLS failed: "), message
    assert PASSWORD not in message
    assert connection.health.state == "closed"
