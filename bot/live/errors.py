"""The exchange's failures as the bot sees them, grouped by what to do: retry, give up, or ask what happened.

ccxt's exceptions become these in one place, bot.live.exchange_errors; nothing else catches
ccxt's. This module does not import ccxt, so code that only handles failures never loads it.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bot.errors import BotError


class ExchangeSetupError(BotError):
    """The exchange cannot be built or used as configured (unknown id, missing key variable, bad symbol)."""


# Not a BotError: code that catches BotError shows its text as the whole story, while an exchange
# failure is shown with the name of what went wrong (`describe`), as before the translation.
class ExchangeFailure(Exception):
    """An exchange request failed; `kind` is its stable category, `source` the exchange library's name for it."""

    def __init__(self, message: str, *, kind: str, source: str) -> None:
        super().__init__(message)
        # insufficient_funds, invalid_order, rate_limited, not_permitted, bad_symbol, network or
        # exchange_error: what `order_rejected` events and the stop keeper go by.
        self.kind = kind
        self.source = source


class ExchangeRetryable(ExchangeFailure):
    """Transient (the network, a timeout, the exchange busy, down or failing this time): worth another try after a pause."""


class ExchangeRateLimited(ExchangeRetryable):
    """The exchange said we are too fast (HTTP 429/418, Binance -1003/-1015); `retry_after_s` when it said how long to wait."""

    def __init__(self, message: str, *, kind: str, source: str, retry_after_s: float | None = None) -> None:
        super().__init__(message, kind=kind, source=source)
        self.retry_after_s = retry_after_s


class ExchangeRefused(ExchangeFailure):
    """The exchange refused the request (funds, the order, the symbol, the keys): trying again changes nothing."""


class OrderNotFound(ExchangeRefused):
    """The exchange has no order under the id asked about."""


class OrderTypeRefused(ExchangeRefused):
    """The market does not take the order's type (ccxt checks this before sending)."""


class OrderOutcomeUnknown(ExchangeFailure):
    """An order was sent and the answer lost (network, timeout, the exchange's "failed this time"): it may be booked."""


class OrderAlreadyPlaced(OrderOutcomeUnknown):
    """The exchange refused an order because its client id is in use: an earlier attempt of it landed."""


def retry_after_s(headers: Mapping[str, Any] | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form), if the last response carried one."""
    if not headers:
        return None
    for key, value in headers.items():
        if str(key).lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                return None  # an HTTP date: rare from exchanges; the backoff decides instead
    return None


def describe(exc: BaseException, redact: Callable[[str], str] | None = None) -> str:
    """A one-line description of an exchange error for logs and events, secrets masked by `redact`.

    Masked before it is cut to length: a secret cut in half would no longer be recognised.
    """
    full = str(exc).strip()
    if redact is not None:
        full = redact(full)
    text = full.splitlines()[0] if full else ""
    name = exc.source if isinstance(exc, ExchangeFailure) else type(exc).__name__
    return f"{name}: {text[:300]}" if text else name
