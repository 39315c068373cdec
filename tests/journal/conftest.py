"""Fixtures for the journal tests: real candles and one journalled two-strategy run shared by the read-only tests."""
from __future__ import annotations

import pytest

from bot.candles.model import Candle
from bot.candles.reader import read_candles
from bot.journal import Journal
from tests.journal.builders import JournalledRun, journalled_rig, strategies
from tests.support import BTC_1M


@pytest.fixture(scope="session")
def btc_candles() -> list[Candle]:
    """The first 12,000 one-minute BTC-PERP candles (about 8 days)."""
    candles = []
    for candle in read_candles(BTC_1M):
        candles.append(candle)
        if len(candles) == 12_000:
            break
    return candles


@pytest.fixture(scope="session")
def journalled_run(tmp_path_factory: pytest.TempPathFactory, btc_candles: list[Candle]) -> JournalledRun:
    """Strategies a and b traded over the candles with a journal subscribed; the journal is closed."""
    path = tmp_path_factory.mktemp("run") / "journal.sqlite"
    with Journal(path) as journal:
        rig = journalled_rig(journal)
        rig.start(*strategies())
        rig.feed("BTC/USD", btc_candles)
    return JournalledRun(rig, path)
