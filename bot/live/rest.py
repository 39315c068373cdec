"""Closed candles over REST: paginated fetch_ohlcv, each request retried on transient errors."""
from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from bot.live.backoff import Backoff
from bot.live.errors import ExchangeRateLimited, ExchangeRetryable, describe
from bot.live.exchange_errors import translated
from bot.live.rows import BadRow, to_candle
from bot.ohlcv import Candle

Sleep = Callable[[float], Awaitable[None]]
# (what was being fetched, the error, the delay before the next try)
RetryCallback = Callable[[str, str, float], None]


class RestCandles:
    """Fetches closed candles of one timeframe, page by page, respecting the exchange's rate limit.

    ccxt's own throttle (enableRateLimit) spaces the requests; on a transient error (network,
    HTTP 5xx, 429) the request is retried after an exponential backoff with jitter, never
    sooner than the server's Retry-After.
    """

    def __init__(
        self,
        exchange: Any,
        timeframe: str,
        tf_ms: int,
        page_limit: int,
        retries: int,
        backoff: Callable[[], Backoff],
        sleep: Sleep,
        logger: logging.Logger,
        redact: Callable[[str], str] = str,
        on_retry: RetryCallback | None = None,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._exchange = exchange
        self._timeframe = timeframe
        self._tf_ms = tf_ms
        self._page_limit = page_limit
        self._retries = retries
        self._backoff = backoff
        self._sleep = sleep
        self._log = logger
        self._redact = redact
        self._on_retry = on_retry
        self._wall_ms = wall_ms
        self.requests = 0

    async def call(self, what: str, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        """Await `fn(*args)`, retrying transient exchange errors up to the configured number of times."""
        backoff = self._backoff()
        while True:
            self.requests += 1
            try:
                with translated(self._exchange):
                    return await fn(*args, **kwargs)
            except ExchangeRetryable as exc:
                if backoff.attempts >= self._retries:
                    raise
                floor = exc.retry_after_s if isinstance(exc, ExchangeRateLimited) else None
                delay = backoff.next_delay(floor)
                reason = describe(exc, self._redact)
                self._log.warning("%s failed (%s); retry %d in %.2f s", what, reason, backoff.attempts, delay)
                if self._on_retry is not None:
                    self._on_retry(what, reason, delay)
                await self._sleep(delay)

    async def server_ms(self) -> int:
        """The exchange's clock when it has one (fetchTime), else ours: which candles are closed is its call."""
        if self._exchange.has.get("fetchTime"):
            return int(await self.call("fetch_time", self._exchange.fetch_time))
        return self._wall_ms()

    async def closed_until(self) -> int:
        """Open times below this are closed candles now (exclusive bound)."""
        return await self.server_ms() - self._tf_ms + 1

    async def pages(self, symbol: str, since: int, until: int) -> AsyncIterator[list[Candle]]:
        """Pages of valid candles opening in [since, until), oldest first; bad rows are logged and skipped."""
        cursor = since
        while cursor < until:
            rows = await self.call(
                f"fetch_ohlcv {symbol} {self._timeframe} since {cursor}",
                self._exchange.fetch_ohlcv, symbol, self._timeframe, cursor, self._page_limit,
            )
            page: list[Candle] = []
            newest = None
            for row in rows or ():
                ts = row[0] if row else None
                if not isinstance(ts, int) or ts < cursor:
                    if not isinstance(ts, int):
                        self._log.error("%s: skipped a malformed candle from fetch_ohlcv: %r (no timestamp)", symbol, row)
                    continue
                newest = ts if newest is None else max(newest, ts)
                if ts >= until:
                    continue
                try:
                    page.append(to_candle(row, self._tf_ms))
                except BadRow as exc:
                    self._log.error("%s: skipped a malformed candle from fetch_ohlcv: %r (%s)", symbol, row, exc)
            if page:
                page.sort()
                yield page
            if newest is None:
                return  # nothing at or after the cursor yet
            cursor = newest + self._tf_ms
