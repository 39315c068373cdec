"""A real replay on recorded candles, shared by the report tests."""
from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from bot.kernel.replay import build_replay
from bot.replay.sources import resolve_sources
from bot.strategy.config_load import load_config
from tests.cli.test_cli import run_bot
from tests.report.builders import write_replay_config, write_two_currency_config


@pytest.fixture(scope="session")
def replay_dir(tmp_path_factory: pytest.TempPathFactory, btc_slice_file: Path) -> Path:
    """The output folder of a replay of three strategies over eight days of BTC 1m candles."""
    root = tmp_path_factory.mktemp("report_replay")
    loaded = load_config(write_replay_config(root, btc_slice_file))
    sources, problems = resolve_sources(loaded)
    assert not problems
    anyio.run(build_replay(loaded, sources, root / "out").run)
    return root / "out"


@pytest.fixture(scope="session")
def two_currency_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output folder of a replay of the catalog's ema_cross (BTC/USD, in USD) and pairs_arbitrage
    (ETH/BTC against XMR/BTC, in BTC) over the bundled candles."""
    root = tmp_path_factory.mktemp("two_currencies")
    # The real command line, in its own process: the browser tests' Playwright already runs an event loop here.
    result = run_bot("replay", "--config", write_two_currency_config(root), "--out", root / "out", "--quiet", cwd=root)
    assert result.returncode == 0, result.stderr
    return root / "out"
