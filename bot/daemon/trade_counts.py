"""Closed trades per strategy, all and today's, counted without reading the journal on each request."""
from __future__ import annotations

from collections import Counter
from typing import Final

import anyio

from bot.events import Event, PositionClosed
from bot.journal import JournalError
from bot.journal.reader import JournalReader, TradesBefore
from bot.ohlcv import timeframe_ms

_DAY_MS: Final[int] = timeframe_ms("1d")
# UTC days a strategy's count of this run keeps apart (a trade may close a little after midnight with the day before's time).
_DAYS_KEPT: Final[int] = 3


class TradeCounts:
    """A bus subscriber (PositionClosed): each strategy's closed trades in this run, by UTC day; with the journal's
    earlier trades, counted once in a worker thread (`load`), every strategy's total and today's at no cost a request.

    `first_new` is the number the journal's next trade row gets (read at the start, before any trade of this
    run): rows below it are the earlier runs', counted by `load`; every later one is a PositionClosed here.
    """

    def __init__(self, first_new: int) -> None:
        self._first_new = first_new
        # strategy -> trades closed in this run, and those of its newest UTC days (older days are only in the total).
        self._total: Counter[str] = Counter()
        self._days: dict[str, Counter[int]] = {}
        self._before: dict[str, TradesBefore] = {}
        self._loaded = anyio.Event()
        self._failure: str | None = None

    def __call__(self, event: Event) -> None:
        """Count a closed trade (delivered once journalled)."""
        if isinstance(event, PositionClosed):
            sid = event.strategy_id
            self._total[sid] += 1
            days = self._days.get(sid)
            if days is None:
                days = self._days[sid] = Counter()
            days[event.trade.exit_ts // _DAY_MS] += 1
            if len(days) > _DAYS_KEPT:
                del days[min(days)]

    async def load(self, reader: JournalReader) -> None:
        """Count the earlier runs' trades (in a worker thread); requests wait for it. A failure is tried again by the next request."""
        try:
            self._before = await reader.trades_before(self._first_new)
            self._failure = None
        except JournalError as exc:
            self._failure = str(exc)
        except BaseException:
            # Cancelled or a bug: counted as a failure, so the next request counts again rather than report this run's only.
            self._failure = "the earlier trades were not counted"
            raise
        finally:
            self._loaded.set()

    async def counts(self, reader: JournalReader, strategy_ids: list[str], now_ms: int) -> dict[str, tuple[int, int]]:
        """(all, closed today, UTC by `now_ms`) of each strategy; JournalError when the earlier trades could not be read."""
        if not self._loaded.is_set():  # waiting on a set event still yields: the caller's slice would go on after a round begun then
            await self._loaded.wait()
        if self._failure is not None:
            # Rows numbered below first_new never change: counting them again later is as exact.
            await self.load(reader)
            if self._failure is not None:
                raise JournalError(self._failure)
        today = now_ms // _DAY_MS
        counts = {}
        for sid in strategy_ids:
            before = self._before.get(sid)
            days = self._days.get(sid)
            earlier, earlier_today = (before.total, before.last_day_count if before.last_day == today else 0) if before is not None else (0, 0)
            counts[sid] = (earlier + self._total[sid], earlier_today + (days[today] if days else 0))
        return counts
