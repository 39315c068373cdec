"""Fixtures for the journal tests: one journalled two-strategy run (on tests/conftest.py's candles) shared by the read-only tests."""
from __future__ import annotations

import pytest

from bot.journal import Journal
from bot.ohlcv import Candle
from tests.journal.builders import JournalledRun, journalled_rig, strategies


@pytest.fixture(scope="session")
def journalled_run(tmp_path_factory: pytest.TempPathFactory, btc_candles: list[Candle]) -> JournalledRun:
    """Strategies a and b traded over the candles with a journal subscribed; the journal is closed."""
    path = tmp_path_factory.mktemp("run") / "journal.sqlite"
    with Journal(path) as journal:
        rig = journalled_rig(journal)
        rig.start(*strategies())
        rig.feed("BTC/USD", btc_candles)
    return JournalledRun(rig, path)
