"""A real replay on recorded candles, shared by the report tests."""
from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from bot.config.loader import load_config
from bot.replay.runner import Replay
from bot.replay.sources import resolve_sources
from tests.report.builders import write_replay_config


@pytest.fixture(scope="session")
def replay_dir(tmp_path_factory: pytest.TempPathFactory, btc_slice_file: Path) -> Path:
    """The output folder of a replay of three strategies over eight days of BTC 1m candles."""
    root = tmp_path_factory.mktemp("report_replay")
    loaded = load_config(write_replay_config(root, btc_slice_file))
    sources, problems = resolve_sources(loaded)
    assert not problems
    anyio.run(Replay(loaded, sources, root / "out").run)
    return root / "out"
