"""The journalled feed position: only what every strategy processed, and never back over it."""
from __future__ import annotations

from pathlib import Path

from bot.daemon.feed_position import FeedPosition
from bot.daemon.inbox import CandleWork
from bot.daemon.recovery import FEED_POSITION
from bot.journal import Journal


def test_an_older_close_published_later_never_moves_the_journalled_position_back(tmp_path: Path) -> None:
    """A source added mid-run publishes closes older than the feed's newest: a restart must still resume after the newest."""
    journal = Journal(tmp_path / "journal.sqlite")
    try:
        queued = CandleWork()
        position = FeedPosition(journal, queued)
        position.published(2_000)
        assert journal.get_meta(FEED_POSITION) == "2000"
        position.published(1_000)  # the added source's first candle
        assert journal.get_meta(FEED_POSITION) == "2000"
        queued.n = 1  # a candle still waits in an inbox: nothing is journalled until it is processed
        position.published(3_000)
        assert journal.get_meta(FEED_POSITION) == "2000"
        queued.n = 0
        position.processed()
        assert journal.get_meta(FEED_POSITION) == "3000"
    finally:
        journal.close()
