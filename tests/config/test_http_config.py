"""The `http` section of config.json: off without it, loopback by default, another address only with allow_remote and a token, every problem at its field."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.config.http import DEFAULT_HTTP_LISTEN, HttpConfig
from bot.strategy.config_load import load_config
from tests.cli.test_cli import error_lines, flat, run_bot
from tests.config.builders import problems_of, valid_strategy, write_setup
from tests.support import BTC_1M

CANDLES = {"replay": {"candles": {"BTC/USD": {"path": str(BTC_1M)}}}}


def _problem(tmp_path: Path, http: Any) -> tuple[str, str]:
    """The field and reason of the one problem config.json with this `http` section has."""
    path = write_setup(tmp_path, {"a.json": valid_strategy()}, {"http": http})
    problems = problems_of(path)
    assert len(problems) == 1, problems
    assert problems[0].file == str(path)
    return problems[0].field, problems[0].reason


def _http(tmp_path: Path, http: Any) -> HttpConfig | None:
    return load_config(write_setup(tmp_path, {"a.json": valid_strategy()}, {"http": http})).bot.http


def test_without_an_http_section_there_is_no_server(tmp_path: Path) -> None:
    assert load_config(write_setup(tmp_path, {"a.json": valid_strategy()})).bot.http is None


def test_an_empty_http_section_serves_loopback_port_8080_without_a_token(tmp_path: Path) -> None:
    http = _http(tmp_path, {})
    assert http == HttpConfig()
    assert http is not None
    assert DEFAULT_HTTP_LISTEN == "127.0.0.1:8080"
    assert (http.listen, http.host, http.port) == ("127.0.0.1:8080", "127.0.0.1", 8080)
    assert (http.token_env, http.allow_remote, http.public_read, http.max_body_bytes) == (None, False, False, 65_536)


def test_a_full_http_section_loads(tmp_path: Path) -> None:
    section = {
        "listen": "0.0.0.0:9000", "token_env": "BOT_HTTP_TOKEN", "allow_remote": True, "public_read": True, "max_body_bytes": 4096,
        "allowed_hosts": ["bot.example.net", "192.0.2.7"],
    }
    http = _http(tmp_path, section)
    assert http is not None
    assert http.model_dump() == {**section, "allowed_hosts": ("bot.example.net", "192.0.2.7")}
    assert (http.host, http.port) == ("0.0.0.0", 9000)


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("127.0.0.1:0", "127.0.0.1", 0),  # any free port
        ("127.0.0.2:8080", "127.0.0.2", 8080),
        ("localhost:8080", "localhost", 8080),
        ("[::1]:8080", "::1", 8080),
        ("127.0.0.1:65535", "127.0.0.1", 65_535),
    ],
)
def test_a_loopback_address_needs_neither_allow_remote_nor_a_token(tmp_path: Path, listen: str, host: str, port: int) -> None:
    http = _http(tmp_path, {"listen": listen})
    assert http is not None
    assert (http.host, http.port, http.token_env) == (host, port, None)


@pytest.mark.parametrize("listen", ["0.0.0.0:8080", "192.168.1.10:8080", "[::]:8080", "10.0.0.5:0"])
def test_a_network_address_is_refused_without_allow_remote(tmp_path: Path, listen: str) -> None:
    field, reason = _problem(tmp_path, {"listen": listen, "token_env": "BOT_HTTP_TOKEN"})
    assert field == "http"
    assert f"listen {listen}" in reason and "not a loopback address" in reason and "allow_remote" in reason, reason
    assert "TLS" in reason, reason


@pytest.mark.parametrize("listen", ["0.0.0.0:8080", "[::]:8080"])
def test_a_network_address_with_allow_remote_still_needs_token_env(tmp_path: Path, listen: str) -> None:
    field, reason = _problem(tmp_path, {"listen": listen, "allow_remote": True})
    assert field == "http"
    assert f"listen {listen}" in reason and "needs token_env" in reason, reason


def test_a_network_address_with_allow_remote_and_token_env_loads(tmp_path: Path) -> None:
    http = _http(tmp_path, {"listen": "192.0.2.7:8080", "allow_remote": True, "token_env": "BOT_HTTP_TOKEN"})
    assert http is not None and http.host == "192.0.2.7"


@pytest.mark.parametrize("listen", ["0.0.0.0:8080", "[::]:8080"])
def test_every_address_needs_the_names_clients_reach_it_by(tmp_path: Path, listen: str) -> None:
    # Its Host header is checked against them (a DNS-rebinding guard): a wildcard address names no host of its own.
    field, reason = _problem(tmp_path, {"listen": listen, "allow_remote": True, "token_env": "BOT_HTTP_TOKEN"})
    assert field == "http" and "allowed_hosts" in reason, reason
    http = _http(tmp_path, {"listen": listen, "allow_remote": True, "token_env": "BOT_HTTP_TOKEN", "allowed_hosts": ["Bot.Example.net"]})
    assert http is not None and http.allowed_hosts == ("bot.example.net",)


@pytest.mark.parametrize("name", ["http://bot.example", "bot.example:8080", "bad host", "-bot.example", ""])
def test_an_allowed_host_that_is_not_a_name_is_refused(tmp_path: Path, name: str) -> None:
    field, reason = _problem(tmp_path, {"allowed_hosts": [name]})
    assert field == "http.allowed_hosts" and "not a host name or address" in reason, (field, reason)


@pytest.mark.parametrize(
    ("http", "field", "phrase"),
    [
        ({"listen": "127.0.0.1"}, "http.listen", "'127.0.0.1' is not host:port, such as 127.0.0.1:8080"),
        ({"listen": "127.0.0.1:"}, "http.listen", "is not host:port"),
        ({"listen": ":8080"}, "http.listen", "is not host:port"),
        ({"listen": "127.0.0.1:-1"}, "http.listen", "is not host:port"),
        ({"listen": "127.0.0.1:http"}, "http.listen", "is not host:port"),
        ({"listen": "127.0.0.1:70000"}, "http.listen", "port 70000 is not between 0 (any free port) and 65535"),
        ({"listen": "example.com:8080"}, "http.listen", "'example.com' is not an IP address (or localhost)"),
        ({"listen": "bot.internal:0"}, "http.listen", "listens on an address, not a name"),
        ({"listen": 8080}, "http.listen", "valid string"),
        ({"token_env": "s3cret token"}, "http.token_env", "must be the name of an environment variable, not a token"),
        ({"token_env": "1ABC"}, "http.token_env", "must be the name of an environment variable"),
        ({"max_body_bytes": 1023}, "http.max_body_bytes", "greater than or equal to 1024"),
        ({"max_body_bytes": 16 * 1024 * 1024 + 1}, "http.max_body_bytes", "less than or equal to 16777216"),
        ({"public_read": "maybe"}, "http.public_read", "valid boolean"),
        ({"token": "hunter2"}, "http.token", "Extra inputs are not permitted"),
    ],
)
def test_a_bad_http_setting_is_reported_at_its_field(tmp_path: Path, http: dict[str, Any], field: str, phrase: str) -> None:
    found_field, reason = _problem(tmp_path, http)
    assert (found_field, phrase in reason) == (field, True), reason


def test_an_http_section_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    assert _problem(tmp_path, "127.0.0.1:8080")[0] == "http"


@pytest.mark.parametrize("listen", ["127.0.0.1:\u0668\u0660\u0668\u0660", "127.0.0.1:80\u00b2"])
def test_a_port_of_other_than_ascii_digits_is_not_host_port(tmp_path: Path, listen: str) -> None:
    field, reason = _problem(tmp_path, {"listen": listen})
    assert (field, "is not host:port" in reason) == ("http.listen", True), reason


# --- bot validate ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("http", "message"),
    [
        (
            {"listen": "0.0.0.0:8080"},
            "http: listen 0.0.0.0:8080: not a loopback address; set allow_remote (with token_env, and TLS in front) to serve a network",
        ),
        (
            {"listen": "0.0.0.0:8080", "allow_remote": True},
            "http: listen 0.0.0.0:8080: a server off loopback needs token_env (a bearer token for every /api/v1 route)",
        ),
        ({"listen": "127.0.0.1"}, "http.listen: '127.0.0.1' is not host:port, such as 127.0.0.1:8080"),
        ({"listen": "127.0.0.1:70000"}, "http.listen: '127.0.0.1:70000': port 70000 is not between 0 (any free port) and 65535"),
        (
            {"listen": "example.com:8080"},
            "http.listen: 'example.com:8080': 'example.com' is not an IP address (or localhost): the server listens on an address, not a name",
        ),
    ],
    ids=["no-allow-remote", "no-token-env", "no-port", "port-70000", "host-name"],
)
def test_validate_refuses_a_bad_http_section_with_exit_2(tmp_path: Path, http: dict[str, Any], message: str) -> None:
    write_setup(tmp_path, {"a.json": valid_strategy()}, {**CANDLES, "http": http})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert error_lines(result.stderr) == [f"error: config.json: {message}"], flat(result.stderr)
    assert "Traceback" not in result.stderr


def test_validate_takes_a_loopback_http_section_without_its_token_set(tmp_path: Path) -> None:
    # validate checks the file; whether the token's variable is set is `bot run`'s to say.
    write_setup(tmp_path, {"a.json": valid_strategy()}, {**CANDLES, "http": {"listen": "127.0.0.1:0", "token_env": "BOT_TEST_HTTP_TOKEN_NEVER_SET"}})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("config.json: OK (1 strategies")
    assert error_lines(result.stderr) == []
