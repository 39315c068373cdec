"""The one place ccxt's exceptions are caught: each is translated into bot.live.errors' tree.

Every call into ccxt that can fail runs inside `translated(exchange)` (or, for an order's
creation, `translated(exchange, sending=True)`), so the rest of the bot catches only its own
classes: retryable, refused, or an order's outcome unknown. Where an exchange says what went
wrong in words only, the words are read here, in `_ORDER_WORDS`, and nowhere else.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ccxt

from bot.live.errors import (
    ExchangeFailure,
    ExchangeRateLimited,
    ExchangeRefused,
    ExchangeRetryable,
    OrderAlreadyPlaced,
    OrderNotFound,
    OrderOutcomeUnknown,
    OrderTypeRefused,
    retry_after_s,
)

# An order's refusal ccxt raises as a plain InvalidOrder, told apart by its words:
# (words, compared ignoring case, what it means).
_ORDER_WORDS: tuple[tuple[str, bool, type[ExchangeFailure]], ...] = (
    # Binance -2010 "Duplicate order sent.": the client id is taken, an earlier attempt landed.
    ("duplicate order", True, OrderAlreadyPlaced),
    # ccxt's binance (also bitrue, tokocrypto) before sending: "<type> is not a valid order type
    # for the <symbol> market", "triggerPrice parameter is not allowed for <symbol> <type> orders".
    ("is not a valid order type", False, OrderTypeRefused),
    ("parameter is not allowed", False, OrderTypeRefused),
)

# ccxt's classes, most specific first: the first that matches decides (class, kind).
# OperationFailed is NetworkError's parent: ccxt's "the exchange failed this time, try again"
# (Binance's -1001 internal error); its other children (BadResponse, CancelPending) are no network's.
_REFUSALS: tuple[tuple[type[BaseException], type[ExchangeRefused], str], ...] = (
    (ccxt.InsufficientFunds, ExchangeRefused, "insufficient_funds"),
    (ccxt.OrderNotFound, OrderNotFound, "invalid_order"),
    (ccxt.InvalidOrder, ExchangeRefused, "invalid_order"),
    # PermissionDenied, AccountSuspended and AccountNotEnabled are AuthenticationErrors.
    (ccxt.AuthenticationError, ExchangeRefused, "not_permitted"),
    (ccxt.BadSymbol, ExchangeRefused, "bad_symbol"),
)


def translate(exc: ccxt.BaseError, headers: Any = None, *, sending: bool = False) -> ExchangeFailure:
    """The bot's exception for a ccxt one; `headers`: the last response's (Retry-After); `sending`: it answered an order's creation."""
    message, source = str(exc), type(exc).__name__
    if isinstance(exc, (ccxt.RateLimitExceeded, ccxt.DDoSProtection)):
        # A definite "not now", even for an order: it was not booked.
        return ExchangeRateLimited(message, kind="rate_limited", source=source, retry_after_s=retry_after_s(headers))
    if isinstance(exc, ccxt.OperationFailed):
        kind = "network" if isinstance(exc, ccxt.NetworkError) else "exchange_error"
        # After an order went out, the failure hides whether it was booked.
        return (OrderOutcomeUnknown if sending else ExchangeRetryable)(message, kind=kind, source=source)
    if sending:
        if isinstance(exc, ccxt.DuplicateOrderId):
            return OrderAlreadyPlaced(message, kind="invalid_order", source=source)
        if isinstance(exc, ccxt.InvalidOrder):
            for words, ignore_case, meaning in _ORDER_WORDS:
                if words in (message.lower() if ignore_case else message):
                    return meaning(message, kind="invalid_order", source=source)
    for ccxt_class, refusal, kind in _REFUSALS:
        if isinstance(exc, ccxt_class):
            return refusal(message, kind=kind, source=source)
    return ExchangeRefused(message, kind="exchange_error", source=source)


@contextmanager
def translated(exchange: Any = None, *, sending: bool = False) -> Iterator[None]:
    """Raise the bot's exception for any ccxt one the block raises (chained to it); `exchange` for its last response's headers.

    `sending`: the block creates an order, so a network failure leaves its outcome unknown.
    """
    try:
        yield
    except ccxt.BaseError as exc:
        raise translate(exc, getattr(exchange, "last_response_headers", None), sending=sending) from exc


def network_failure(reason: str) -> ExchangeRetryable:
    """The bot's own network failure (a websocket gone, an exchange that cannot be asked), named as ccxt names its own."""
    return ExchangeRetryable(reason, kind="network", source=ccxt.NetworkError.__name__)


def cut(client: Any, reason: str) -> None:
    """Fail a ccxt.pro websocket client as ccxt does on a network error: its watch calls raise, the next one reconnects."""
    client.on_error(ccxt.NetworkError(reason))
