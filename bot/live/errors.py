"""ccxt errors translated in one place: what to retry, how long to wait, what is the operator's to fix."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import ccxt

from bot.errors import BotError


class ExchangeSetupError(BotError):
    """The exchange cannot be built or used as configured (unknown id, missing key variable, bad symbol)."""


# Worth another try after a pause: the network, the exchange being busy or limiting our rate.
# OperationFailed is NetworkError's parent: ccxt's "the exchange failed this time, try again"
# (Binance's -1001 internal error). AuthenticationError, BadSymbol, NotSupported and the like
# are ExchangeErrors: retrying changes nothing.
RETRYABLE: tuple[type[BaseException], ...] = (ccxt.OperationFailed,)


def is_retryable(exc: BaseException) -> bool:
    """Whether an exception from ccxt is transient (network, rate limit, exchange unavailable)."""
    return isinstance(exc, RETRYABLE)


def is_rate_limit(exc: BaseException) -> bool:
    """Whether the exchange said we are too fast (HTTP 429/418, Binance -1003)."""
    return isinstance(exc, (ccxt.RateLimitExceeded, ccxt.DDoSProtection))


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
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__
