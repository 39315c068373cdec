"""Where a restart resumes the feed: the newest close published, journalled once every strategy has processed it."""
from __future__ import annotations

from bot.daemon.inbox import CandleWork
from bot.daemon.recovery import FEED_POSITION
from bot.journal import Journal


class FeedPosition:
    """The feed's restart point in the journal: the feed reports each close it publishes, the delivery each time it drained.

    Built before both, with the count of candles queued in the delivery's inboxes, so neither
    needs the other to exist (the delivery is built with the bot, the feed after it).
    """

    def __init__(self, journal: Journal, queued: CandleWork) -> None:
        self._journal = journal
        self._queued = queued
        # The candle work it watches: long reads pause for it too (bot.daemon.read_slices).
        self.work = queued
        # The newest close published while playing: what a restart resumes after once it is processed.
        self.last_close: int | None = None
        # The close journalled last: each is written once (not once per lane that finishes a round).
        self._written: int | None = None

    def published(self, close_ts: int) -> None:
        """A candle closing at `close_ts` went out (after the hub routed it)."""
        if self.last_close is None or close_ts > self.last_close:
            self.last_close = close_ts
        # Only once every strategy has processed what was published (its turn committed): a restart
        # resumes after this point, and must not skip candles still queued or in hand at a crash.
        if self._queued.drained:
            self._write()

    def processed(self) -> None:
        """Every inbox is empty and no lane holds a candle: all published candles have been processed."""
        self._write()

    def _write(self) -> None:
        # The newest close, not the one just published: a source added later publishes closes older
        # than what went out already, and the position must never move back over processed candles.
        if self.last_close is not None and self.last_close != self._written:
            self._journal.set_meta(FEED_POSITION, str(self.last_close))
            self._written = self.last_close
