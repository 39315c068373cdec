"""The two catalog configs in the repository run every strategy of the catalog side by side on the bundled data."""
from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from bot.kernel.replay import build_replay
from bot.replay.sources import resolve_sources
from bot.strategy.config_load import load_config
from tests.support import REPO

CATALOG = {"ema_cross", "momentum", "mean_reversion", "trend_mtf", "scalping", "pairs_arbitrage", "hybrid"}


@pytest.mark.parametrize("name", ["config.json", "config.replay.json"])
def test_each_catalog_config_names_the_whole_catalog_and_its_data_is_bundled(name: str) -> None:
    loaded = load_config(REPO / name)
    assert {s.id for s in loaded.enabled_strategies()} == CATALOG
    assert {s.module for s in loaded.strategies} == CATALOG
    sources, problems = resolve_sources(loaded)
    assert problems == []
    assert all(source.path.is_relative_to(REPO / "data") for source in sources)
    assert {s.symbol for s in sources} == {"BTC/USD", "ETH/BTC", "XMR/BTC"}


def test_the_replay_config_trades_every_strategy_of_the_catalog(tmp_path: Path) -> None:
    loaded = load_config(REPO / "config.replay.json")
    sources, _ = resolve_sources(loaded)
    result = anyio.run(build_replay(loaded, sources, tmp_path / "out").run)
    strategies = result.report["strategies"]
    assert set(strategies) == CATALOG
    for sid, summary in strategies.items():
        assert summary["state"] != "failed", (sid, summary)
        assert summary["trades"] > 0, f"{sid} never traded on the bundled data"
