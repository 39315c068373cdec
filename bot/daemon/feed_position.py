"""Where a restart resumes the feed: the newest close published, journalled once every strategy has processed it."""
from __future__ import annotations

from bot.daemon.inbox import QueuedCounter
from bot.daemon.recovery import FEED_POSITION
from bot.journal import Journal


class FeedPosition:
    """The feed's restart point in the journal: the feed reports each close it publishes, the delivery each time it drained.

    Built before both, with the count of candles queued in the delivery's inboxes, so neither
    needs the other to exist (the delivery is built with the bot, the feed after it).
    """

    def __init__(self, journal: Journal, queued: QueuedCounter) -> None:
        self._journal = journal
        self._queued = queued
        # The newest close published while playing: what a restart resumes after once it is processed.
        self.last_close: int | None = None

    def published(self, close_ts: int) -> None:
        """A candle closing at `close_ts` went out (after the hub routed it)."""
        if self.last_close is None or close_ts > self.last_close:
            self.last_close = close_ts
        # Only once every strategy has processed what was published: a restart resumes
        # after this point, and must not skip candles still queued at a crash.
        if self._queued.n == 0:
            # The newest close, not this one: a source added later publishes closes older than
            # what went out already, and the position must never move back over processed candles.
            self._journal.set_meta(FEED_POSITION, str(self.last_close))

    def processed(self) -> None:
        """Every inbox is empty: all published candles have been processed."""
        if self.last_close is not None:
            self._journal.set_meta(FEED_POSITION, str(self.last_close))
