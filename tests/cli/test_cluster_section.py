"""The `cluster` section as the command line shows it: refused without its secrets, and said to be unused by `bot run`."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_cli import error_lines, flat, run_bot
from tests.config.builders import valid_strategy, write_setup
from tests.support import BTC_1M

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
