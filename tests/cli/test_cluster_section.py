"""The `cluster` section as the command line shows it: refused without its secrets, and what `bot run` does with it said once."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.cli.test_cli import error_lines, flat, run_bot
from tests.config.builders import valid_strategy, write_setup
from tests.daemon.process import DaemonProcess, short_tmp, write_daemon_config
from tests.support import BTC_1M

__all__ = ["short_tmp"]

CANDLES = {"replay": {"candles": {"BTC/USD": {"path": str(BTC_1M)}}}}


@pytest.mark.parametrize("url", ["natss://bot:hunter2@127.0.0.1:4222", "wss://bot:hunter2@nats.example.net:443"])
def test_validate_refuses_a_url_with_a_password_without_printing_it(tmp_path: Path, url: str) -> None:
    write_setup(tmp_path, {"a.json": valid_strategy()}, {**CANDLES, "cluster": {"url": url}})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        "error: config.json: cluster.url: credentials never go in the url: name their environment variables in user_env and password_env"
    ], flat(result.stderr)
    assert "hunter2" not in result.stdout + result.stderr


USE = (
    "config.json: cluster section: candles and events are published to nats://127.0.0.1:4222 (streams MD_main, EVT_main); "
    "every strategy decides in this process (placement hub)"
)


def test_bot_run_says_once_at_start_what_the_cluster_section_is_used_for(short_tmp: Path) -> None:
    daemon = DaemonProcess(write_daemon_config(short_tmp, cluster={}))
    try:
        daemon.wait_ready()
    finally:
        code = daemon.stop()
    log = daemon.log.read_text()
    assert code == 0, log
    warned = [line for line in log.splitlines() if USE in line]
    assert len(warned) == 1 and "WARNING" in warned[0], log


@pytest.mark.parametrize("cluster", [True, False], ids=["with-cluster", "without"])
def test_validate_notes_what_the_cluster_section_is_used_for(tmp_path: Path, cluster: bool) -> None:
    write_setup(tmp_path, {"a.json": valid_strategy()}, {**CANDLES, **({"cluster": {}} if cluster else {})})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("config.json: OK (1 strategies")
    assert result.stderr.splitlines() == ([f"note: {USE}"] if cluster else [])


def test_bot_run_refuses_a_cluster_section_whose_credential_variable_is_unset_before_touching_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main

    cluster = {"user_env": "BOT_TEST_NATS_USER", "password_env": "BOT_TEST_NATS_PASSWORD"}
    write_setup(tmp_path, {"a.json": valid_strategy()}, {**CANDLES, "cluster": cluster, "journal": {"path": "journal.db"}})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BOT_TEST_NATS_USER", "bot")
    monkeypatch.delenv("BOT_TEST_NATS_PASSWORD", raising=False)
    assert main(["run", "--config", "config.json"]) == 2
    assert error_lines(capsys.readouterr().err) == [
        "error: config.json: cluster.password_env: the environment variable BOT_TEST_NATS_PASSWORD is not set or empty"
    ]
    assert not (tmp_path / "journal.db").exists()


def test_without_the_cluster_extra_run_and_validate_refuse_a_cluster_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    write_setup(tmp_path, {"a.json": valid_strategy()}, {**CANDLES, "cluster": {}, "journal": {"path": "journal.db"}})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "nats", None)  # as if nats-py were not installed
    for command in ("validate", "run"):
        assert main([command, "--config", "config.json"]) == 2
        err = capsys.readouterr().err
        assert "config.json: cluster section: the cluster needs the cluster extra (nats-py): run bash scripts/setup.sh --cluster" in flat(err), err
    assert not (tmp_path / "journal.db").exists()


@pytest.mark.parametrize("sid", ["ema..cross", "ema."])
def test_placement_workers_refuses_a_strategy_id_that_cannot_name_its_lease(tmp_path: Path, sid: str) -> None:
    # Valid ids in one process, but each strategy's mind is placed by a KV key named after it (no empty token between dots).
    write_setup(tmp_path, {"a.json": valid_strategy(id=sid)}, {**CANDLES, "cluster": {"placement": "workers"}})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2, flat(result.stdout + result.stderr)
    rule = "1-64 letters, digits, '_', '-' or '.' (not at either end, not two in a row)"
    assert error_lines(result.stderr) == [f"error: config.json: cluster.placement workers: strategy id {sid!r} cannot name a lease: {rule}"], flat(result.stderr)
    write_setup(tmp_path, {"a.json": valid_strategy(id=sid)}, {**CANDLES, "cluster": {"placement": "hub"}})
    assert run_bot("validate", "--config", "config.json", cwd=tmp_path).returncode == 0
