"""The `cluster` section of config.json: loopback by default, credentials only as variable names, every problem at its field."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.config.cluster import DEFAULT_CLUSTER_URL, ClusterConfig
from bot.strategy.config_load import load_config
from tests.config.builders import problems_of, valid_strategy, write_setup

CREDENTIALS = {"user_env": "BOT_NATS_USER", "password_env": "BOT_NATS_PASSWORD"}


def _problem(tmp_path: Path, cluster: Any) -> tuple[str, str]:
    """The field and reason of the one problem config.json with this `cluster` section has."""
    path = write_setup(tmp_path, {"a.json": valid_strategy()}, {"cluster": cluster})
    problems = problems_of(path)
    assert len(problems) == 1, problems
    assert problems[0].file == str(path)
    return problems[0].field, problems[0].reason


def test_without_a_cluster_section_there_is_no_cluster(tmp_path: Path) -> None:
    assert load_config(write_setup(tmp_path, {"a.json": valid_strategy()})).bot.cluster is None


def test_an_empty_cluster_section_is_a_server_on_this_machine_without_credentials(tmp_path: Path) -> None:
    cluster = load_config(write_setup(tmp_path, {"a.json": valid_strategy()}, {"cluster": {}})).bot.cluster
    assert cluster == ClusterConfig()
    assert (cluster.url, cluster.host, cluster.name) == (DEFAULT_CLUSTER_URL, "127.0.0.1", "main")
    assert (cluster.user_env, cluster.password_env, cluster.tls) == (None, None, None)
    assert cluster.lease_ttl_s == 10


def test_a_full_cluster_section_loads(tmp_path: Path) -> None:
    section = {
        "url": "tls://nats.example.net:4222",
        "name": "desk-2",
        **CREDENTIALS,
        "tls": {"ca_file": "tls/ca.pem", "cert_file": "tls/hub.pem", "key_file": "tls/hub-key.pem", "server_name": "nats.internal"},
        "lease_ttl_s": 15,
        "placement": "workers",
        "decision_timeout_s": 30,
        "reconnect_min_s": 0.5,
        "reconnect_max_s": 10,
    }
    cluster = load_config(write_setup(tmp_path, {"a.json": valid_strategy()}, {"cluster": section})).bot.cluster
    assert cluster is not None
    assert cluster.model_dump() == {**section, "lease_ttl_s": 15.0, "decision_timeout_s": 30.0, "reconnect_min_s": 0.5, "reconnect_max_s": 10.0}


@pytest.mark.parametrize(
    ("cluster", "field", "phrase"),
    [
        ({"url": "http://127.0.0.1:4222"}, "cluster.url", "is not a NATS url: nats://host:port or tls://host:port"),
        ({"url": "nats://bot:hunter2@127.0.0.1:4222"}, "cluster.url", "credentials never go in the url"),
        ({"url": "nats://127.0.0.1"}, "cluster.url", "needs a host and a port"),
        ({"url": "nats://127.0.0.1:70000"}, "cluster.url", "has no valid port"),
        ({"url": "nats://127.0.0.1:4222/x"}, "cluster.url", "nothing after"),
        ({"url": 4222}, "cluster.url", "valid string"),
        ({"name": "a.b"}, "cluster.name", "letters, digits, '_' or '-'"),
        ({"name": ""}, "cluster.name", "letters, digits, '_' or '-'"),
        ({"placement": "everywhere"}, "cluster.placement", "'hub' or 'workers'"),
        ({"lease_ttl_s": 30, "decision_timeout_s": 30}, "cluster.decision_timeout_s", "must be above lease_ttl_s + 5 (35)"),
        ({"user_env": "BOT_NATS_USER"}, "cluster.password_env", "required with user_env"),
        ({"password_env": "BOT_NATS_PASSWORD"}, "cluster.user_env", "required with password_env"),
        ({**CREDENTIALS, "password_env": "hunter2 secret"}, "cluster.password_env", "must be the name of an environment variable"),
        ({"lease_ttl_s": 1}, "cluster.lease_ttl_s", "greater than or equal to 2"),
        ({"lease_ttl_s": 601}, "cluster.lease_ttl_s", "less than or equal to 600"),
        ({"lease_ttl_s": "10"}, "cluster.lease_ttl_s", "a string is not a number"),
        ({"reconnect_min_s": 2, "reconnect_max_s": 1}, "cluster.reconnect_max_s", "must be at least reconnect_min_s (2.0)"),
        ({"url": "tls://127.0.0.1:4222"}, "cluster.tls", "required by a tls:// url"),
        ({"tls": {"cert_file": "hub.pem"}}, "cluster.tls.key_file", "required with cert_file"),
        ({"tls": {"key_file": "hub-key.pem"}}, "cluster.tls.cert_file", "required with key_file"),
        ({"tls": {"ca": "ca.pem"}}, "cluster.tls.ca", "Extra inputs are not permitted"),
        ({"url": "nats://10.0.0.5:4222", **CREDENTIALS}, "cluster.tls", "required for a server off this machine (10.0.0.5)"),
        ({"url": "tls://nats.example.net:4222", "tls": {}}, "cluster.user_env", "needs credentials: user_env and password_env, or tls.cert_file"),
        ({"password": "hunter2"}, "cluster.password", "Extra inputs are not permitted"),
    ],
)
def test_a_bad_cluster_setting_is_reported_at_its_field(tmp_path: Path, cluster: dict[str, Any], field: str, phrase: str) -> None:
    found_field, reason = _problem(tmp_path, cluster)
    assert (found_field, phrase in reason) == (field, True), reason


# Each URL would reach a different refusal were its credentials not checked first: none may show the secret.
@pytest.mark.parametrize(
    "url",
    [
        "natss://bot:hunter2@nats.example.net:4222",  # scheme
        "wss://bot:hunter2@nats.example.net:443",  # scheme
        "bot:hunter2@127.0.0.1:4222",  # no scheme at all
        "nats://bot:hunter2@127.0.0.1:70000",  # port
        "nats://bot:hunter2@127.0.0.1",  # no port
        "nats://bot:hunter2@127.0.0.1:4222/x",  # something after
        "nats:/bot:hunter2@127.0.0.1:4222",  # no netloc: urlsplit sees no userinfo
        "nats://hunter2@127.0.0.1:4222",  # a token: the user part is the secret
        "tls://bot:hunter2@10.0.0.5:4222",  # would fail later, for want of tls and credentials
    ],
)
def test_a_url_with_credentials_is_refused_without_showing_them(tmp_path: Path, url: str) -> None:
    path = write_setup(tmp_path, {"a.json": valid_strategy()}, {"cluster": {"url": url}})
    problems = problems_of(path)
    assert [(p.field, "credentials never go in the url" in p.reason) for p in problems] == [("cluster.url", True)], problems
    assert all("hunter2" not in str(p) and "hunter2" not in repr(p) for p in problems), problems


def test_a_cluster_section_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    assert _problem(tmp_path, "nats://127.0.0.1:4222")[0] == "cluster"


@pytest.mark.parametrize("url", ["nats://127.0.0.1:4222", "nats://localhost:4222", "nats://[::1]:4222", "nats://127.0.0.2:4222"])
def test_a_server_on_this_machine_needs_neither_tls_nor_credentials(url: str) -> None:
    assert ClusterConfig(url=url).url == url


def test_a_server_elsewhere_with_tls_and_a_client_certificate_needs_no_password() -> None:
    tls = {"ca_file": "ca.pem", "cert_file": "w1.pem", "key_file": "w1-key.pem"}
    assert ClusterConfig.model_validate({"url": "tls://10.0.0.5:4222", "tls": tls}).host == "10.0.0.5"
