"""Loading an exchange's markets at start: retried while the exchange cannot be reached, for a bounded time."""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from bot.errors import BotError
from bot.live.backoff import Backoff
from bot.live.errors import ExchangeFailure, ExchangeRateLimited, ExchangeRetryable, ExchangeSetupError, describe
from bot.live.exchange_errors import translated


class ExchangeUnreachable(BotError):
    """The exchange did not answer at start within `exchange.start_timeout_s`."""


class MarketsAtStart:
    """Loads one exchange's markets, retrying transient failures until `timeout_s` has passed.

    The first request at start is where an exchange that cannot be reached shows: while it is
    retried, `problem` says so in words (the daemon's `status` lists it, health degraded). After
    `timeout_s` (the whole wait, requests in flight included) it raises ExchangeUnreachable; an
    error retrying cannot fix (bad keys, a proxy answering nonsense) is an ExchangeSetupError at
    once. A cancellation (a stop during the start) goes through untouched.
    """

    def __init__(
        self,
        exchange: Any,
        timeout_s: float,
        backoff: Callable[[], Backoff],
        logger: logging.Logger,
        *,
        redact: Callable[[str], str] = str,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._exchange = exchange
        self._timeout_s = timeout_s
        self._backoff = backoff
        self._log = logger
        self._redact = redact
        self._sleep = sleep
        self.attempts = 0
        # Why the exchange cannot be reached, while the start retries (None otherwise).
        self.problem: str | None = None

    async def load(self) -> None:
        """Load the markets (at once when they are loaded already); see the class docstring for failures."""
        backoff = self._backoff()
        last: str | None = None
        try:
            with anyio.move_on_after(self._timeout_s):
                while True:
                    self.attempts += 1
                    try:
                        with translated(self._exchange):
                            await self._exchange.load_markets()
                        return
                    except ExchangeRetryable as exc:
                        last = describe(exc, self._redact)
                        floor = exc.retry_after_s if isinstance(exc, ExchangeRateLimited) else None
                    except ExchangeFailure as exc:
                        raise ExchangeSetupError(f"{self._exchange.id}: loading markets failed: {describe(exc, self._redact)}") from None
                    self.problem = f"exchange unreachable at start: {last} (retrying, attempt {self.attempts})"
                    delay = backoff.next_delay(floor)
                    self._log.warning("%s: loading markets failed (%s); retry %d in %.2f s", self._exchange.id, last, self.attempts, delay)
                    await self._sleep(delay)
        finally:
            self.problem = None
        # Only the deadline gets here: success returned, errors and cancellation went through.
        answer = f"last error: {last}" if last is not None else "no answer"
        raise ExchangeUnreachable(
            f"exchange unreachable: {self._exchange.id}: markets not loaded within {self._timeout_s:g} s "
            f"(exchange.start_timeout_s; {self.attempts} {'attempt' if self.attempts == 1 else 'attempts'}); {answer}"
        )
