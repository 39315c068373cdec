"""The `cluster` section as the command line shows it: refused without its secrets, and what `bot run` does with it said once."""
from __future__ import annotations

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
    "every strategy still runs in this process (workers for bot run are not built yet)"
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
