"""ccxt's exceptions translated once, by bot.live.exchange_errors: every class ccxt has, and those the real client raises against the fake.

The kinds are the ones `order_rejected` events carry; a class ccxt adds fails
`test_every_ccxt_exception_class_has_a_decided_translation` until someone decides what it means.
"""
from __future__ import annotations

import ast
import inspect
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import ccxt
import ccxt.async_support
import pytest

import bot
from bot.config.exchange import ExchangeConfig
from bot.live.errors import (
    ExchangeFailure,
    ExchangeRateLimited,
    ExchangeRefused,
    ExchangeRetryable,
    OrderAlreadyPlaced,
    OrderNotFound,
    OrderOutcomeUnknown,
    OrderTypeRefused,
    describe,
)
from bot.live.exchange import build_exchange
from bot.live.exchange_errors import network_failure, translate, translated
from tests.fake_exchange import FakeBinance
from tests.live.support import ETH
from tests.support import ETH_1M

RETRY, LIMITED, REFUSED, NOT_FOUND = ExchangeRetryable, ExchangeRateLimited, ExchangeRefused, OrderNotFound
# ccxt class name -> (bot class, kind) for any request, and the bot class when it answered an order's creation.
EXPECTED: dict[str, tuple[type[ExchangeFailure], str, type[ExchangeFailure]]] = {
    "BaseError": (REFUSED, "exchange_error", REFUSED),
    "ExchangeError": (REFUSED, "exchange_error", REFUSED),
    "AuthenticationError": (REFUSED, "not_permitted", REFUSED),
    "PermissionDenied": (REFUSED, "not_permitted", REFUSED),
    "AccountNotEnabled": (REFUSED, "not_permitted", REFUSED),
    "AccountSuspended": (REFUSED, "not_permitted", REFUSED),
    "ArgumentsRequired": (REFUSED, "exchange_error", REFUSED),
    "BadRequest": (REFUSED, "exchange_error", REFUSED),
    "BadSymbol": (REFUSED, "bad_symbol", REFUSED),
    "OperationRejected": (REFUSED, "exchange_error", REFUSED),
    "NoChange": (REFUSED, "exchange_error", REFUSED),
    "MarginModeAlreadySet": (REFUSED, "exchange_error", REFUSED),
    "MarketClosed": (REFUSED, "exchange_error", REFUSED),
    "ManualInteractionNeeded": (REFUSED, "exchange_error", REFUSED),
    "RestrictedLocation": (REFUSED, "exchange_error", REFUSED),
    "InsufficientFunds": (REFUSED, "insufficient_funds", REFUSED),
    "InvalidAddress": (REFUSED, "exchange_error", REFUSED),
    "AddressPending": (REFUSED, "exchange_error", REFUSED),
    "InvalidOrder": (REFUSED, "invalid_order", REFUSED),
    "OrderNotFound": (NOT_FOUND, "invalid_order", NOT_FOUND),
    "OrderNotCached": (REFUSED, "invalid_order", REFUSED),
    "OrderImmediatelyFillable": (REFUSED, "invalid_order", REFUSED),
    "OrderNotFillable": (REFUSED, "invalid_order", REFUSED),
    "DuplicateOrderId": (REFUSED, "invalid_order", OrderAlreadyPlaced),
    "ContractUnavailable": (REFUSED, "invalid_order", REFUSED),
    "NotSupported": (REFUSED, "exchange_error", REFUSED),
    "InvalidProxySettings": (REFUSED, "exchange_error", REFUSED),
    "ExchangeClosedByUser": (REFUSED, "exchange_error", REFUSED),
    "UnsubscribeError": (REFUSED, "exchange_error", REFUSED),
    "OperationFailed": (RETRY, "exchange_error", OrderOutcomeUnknown),
    "NetworkError": (RETRY, "network", OrderOutcomeUnknown),
    "DDoSProtection": (LIMITED, "rate_limited", LIMITED),
    "RateLimitExceeded": (LIMITED, "rate_limited", LIMITED),
    "ExchangeNotAvailable": (RETRY, "network", OrderOutcomeUnknown),
    "OnMaintenance": (RETRY, "network", OrderOutcomeUnknown),
    "InvalidNonce": (RETRY, "network", OrderOutcomeUnknown),
    "ChecksumError": (RETRY, "network", OrderOutcomeUnknown),
    "RequestTimeout": (RETRY, "network", OrderOutcomeUnknown),
    "BadResponse": (RETRY, "exchange_error", OrderOutcomeUnknown),
    "NullResponse": (RETRY, "exchange_error", OrderOutcomeUnknown),
    "CancelPending": (RETRY, "exchange_error", OrderOutcomeUnknown),
}


def ccxt_error_classes() -> dict[str, type[BaseException]]:
    """Every exception class the installed ccxt defines (ccxt.base.errors)."""
    module = __import__("ccxt.base.errors", fromlist=["BaseError"])
    classes: dict[str, type[BaseException]] = {}
    for name, cls in inspect.getmembers(module, inspect.isclass):
        if issubclass(cls, ccxt.BaseError):
            classes[name] = cast(type[BaseException], cls)
    return classes


def test_every_ccxt_exception_class_has_a_decided_translation() -> None:
    assert sorted(ccxt_error_classes()) == sorted(EXPECTED), f"ccxt {ccxt.__version__} changed its exception classes: decide what each new one means"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_ccxt_exception_class_translates_to_its_class_and_kind(name: str) -> None:
    cls = ccxt_error_classes()[name]
    expected, kind, when_sending = EXPECTED[name]
    exc = cls(f"binance {name} happened")
    for sending, wanted in ((False, expected), (True, when_sending)):
        translated_exc = translate(exc, sending=sending)
        assert type(translated_exc) is wanted and translated_exc.kind == kind, (name, sending)
        # Logs and events read as before the translation: ccxt's name and words.
        assert describe(translated_exc) == describe(exc) == f"{name}: binance {name} happened"


def test_binances_duplicate_order_refusal_is_an_order_already_placed_though_ccxt_calls_it_an_invalid_order() -> None:
    duplicate = ccxt.InvalidOrder('binance {"code":-2010,"msg":"Duplicate order sent."}')
    assert type(translate(duplicate, sending=True)) is OrderAlreadyPlaced
    assert type(translate(ccxt.DuplicateOrderId("x"), sending=True)) is OrderAlreadyPlaced
    assert type(translate(ccxt.InvalidOrder('binance {"code":-1013,"msg":"Filter failure: LOT_SIZE"}'), sending=True)) is ExchangeRefused
    # Only an order's creation reads words: a lookup's refusal is what its class says.
    assert type(translate(duplicate)) is ExchangeRefused


def test_retry_after_comes_with_a_rate_limit_only() -> None:
    headers = {"retry-after": "7"}
    limited = translate(ccxt.RateLimitExceeded("slow down"), headers)
    assert isinstance(limited, ExchangeRateLimited) and limited.retry_after_s == 7.0
    assert isinstance(translate(ccxt.DDoSProtection("slow down"), {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}), ExchangeRateLimited)
    assert translate(ccxt.DDoSProtection("slow down"), {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}).retry_after_s is None  # type: ignore[attr-defined]
    assert not hasattr(translate(ccxt.NetworkError("down"), headers), "retry_after_s")


def test_the_bots_own_network_failure_reads_as_ccxts() -> None:
    failure = network_failure("websocket closed while waiting for candles")
    assert isinstance(failure, ExchangeRetryable) and failure.kind == "network"
    assert describe(failure) == describe(ccxt.NetworkError("websocket closed while waiting for candles"))


def test_a_translated_failure_is_chained_to_ccxts_and_other_exceptions_pass_untouched() -> None:
    original = ccxt.InsufficientFunds("binance Account has insufficient balance")
    with pytest.raises(ExchangeRefused) as caught, translated():
        raise original
    assert caught.value.__cause__ is original and caught.value.kind == "insufficient_funds"
    with pytest.raises(KeyError), translated():
        raise KeyError("not ccxt's")


# -- the real ccxt client against the fake exchange ---------------------------------------------

@asynccontextmanager
async def signed_in(btc: str = "1", stop_loss: bool = True) -> AsyncIterator[tuple[FakeBinance, Any]]:
    """The fake with a funded account, and ccxt.async_support.binance signed in to it, markets loaded."""
    async with FakeBinance({ETH: ETH_1M}, start=1200, stop_loss=stop_loss) as fake:
        fake.set_balance("BTC", btc)
        config = ExchangeConfig.model_validate(fake.signed_exchange_config())
        exchange, _ = build_exchange(config, fake.credential_env(), streaming=False)
        try:
            await exchange.load_markets()
            yield fake, exchange
        finally:
            await exchange.close()


async def failure(exchange: Any, call: Any, *, sending: bool = False) -> ExchangeFailure:
    """What `await call` raises once translated (it must raise)."""
    with pytest.raises(ExchangeFailure) as caught, translated(exchange, sending=sending):
        await call
    assert isinstance(caught.value.__cause__, ccxt.BaseError)
    return caught.value


@pytest.mark.asyncio
async def test_order_refusals_from_the_exchange_keep_their_kinds() -> None:
    async with signed_in(btc="0.01") as (fake, exchange):
        funds = await failure(exchange, exchange.create_order(ETH, "market", "buy", 5), sending=True)
        assert (type(funds), funds.kind, funds.source) == (ExchangeRefused, "insufficient_funds", "InsufficientFunds")
        fake.faults.order_errors(400, -1013, "Filter failure: LOT_SIZE")
        lot = await failure(exchange, exchange.create_order(ETH, "market", "buy", 0.1), sending=True)
        assert (type(lot), lot.kind) == (ExchangeRefused, "invalid_order") and "LOT_SIZE" in describe(lot)
        bad_id = await failure(exchange, exchange.create_order(ETH, "market", "buy", 0.1, None, {"clientOrderId": "not valid!"}), sending=True)
        assert (type(bad_id), bad_id.kind, bad_id.source) == (ExchangeRefused, "exchange_error", "BadRequest")
        unknown = await failure(exchange, exchange.fetch_order(None, ETH, {"clientOrderId": "nobody-1"}))
        assert (type(unknown), unknown.kind) == (OrderNotFound, "invalid_order")
        symbol = await failure(exchange, exchange.fetch_ohlcv("NOPE/BTC", "1m"))
        assert (type(symbol), symbol.kind) == (ExchangeRefused, "bad_symbol")
        exchange.secret = "not-the-secret"
        keys = await failure(exchange, exchange.fetch_balance())
        assert (type(keys), keys.kind) == (ExchangeRefused, "not_permitted") and "-1022" in str(keys)


@pytest.mark.asyncio
async def test_a_client_id_in_use_means_the_order_is_placed_already() -> None:
    async with signed_in() as (_, exchange):
        await exchange.create_order(ETH, "limit", "buy", 1, 0.05, {"clientOrderId": "dup-1"})
        again = await failure(exchange, exchange.create_order(ETH, "limit", "buy", 1, 0.05, {"clientOrderId": "dup-1"}), sending=True)
        assert type(again) is OrderAlreadyPlaced and again.source == "InvalidOrder" and "Duplicate order sent" in str(again)


@pytest.mark.asyncio
async def test_a_stop_the_market_does_not_take_is_an_order_type_refusal() -> None:
    async with signed_in(stop_loss=False) as (fake, exchange):
        stop = float(fake.price(ETH) - Decimal("0.001"))
        refused = await failure(exchange, exchange.create_order(ETH, "market", "sell", 1, None, {"stopLossPrice": stop}), sending=True)
        assert type(refused) is OrderTypeRefused and refused.kind == "invalid_order"


@pytest.mark.asyncio
async def test_a_lost_answer_to_an_order_is_an_unknown_outcome_and_to_anything_else_retryable() -> None:
    async with signed_in() as (fake, exchange):
        fake.faults.order_timeout(1.0)
        exchange.timeout = 300
        lost = await failure(exchange, exchange.create_order(ETH, "market", "buy", 0.5, None, {"clientOrderId": "slow-1"}), sending=True)
        assert (type(lost), lost.kind, lost.source) == (OrderOutcomeUnknown, "network", "RequestTimeout")
        fake.faults.rest_errors(503)
        failed = await failure(exchange, exchange.create_order(ETH, "market", "buy", 0.1), sending=True)
        assert (type(failed), failed.kind, failed.source) == (OrderOutcomeUnknown, "exchange_error", "OperationFailed")
        fake.faults.rest_errors(500)
        busy = await failure(exchange, exchange.fetch_balance())
        assert (type(busy), busy.kind) == (ExchangeRetryable, "exchange_error")


@pytest.mark.asyncio
async def test_a_rate_limit_carries_the_servers_retry_after_even_for_an_order() -> None:
    async with signed_in() as (fake, exchange):
        fake.faults.rest_errors(429, retry_after=7)
        limited = await failure(exchange, exchange.fetch_balance())
        assert isinstance(limited, ExchangeRateLimited) and limited.retry_after_s == 7.0 and limited.kind == "rate_limited"
        fake.faults.order_errors(429, -1015, "Too many new orders; current limit is 50 orders per 10 SECOND.")
        order = await failure(exchange, exchange.create_order(ETH, "market", "buy", 0.1), sending=True)
        assert isinstance(order, ExchangeRateLimited) and order.retry_after_s is None


@pytest.mark.asyncio
async def test_an_exchange_that_refuses_the_connection_is_retryable() -> None:
    with socket.socket() as bound:  # bound, never listening: connections to it are refused
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        exchange = ccxt.async_support.binance({"urls": {"api": {"public": f"http://127.0.0.1:{port}/api/v3"}}})
        try:
            down = await failure(exchange, exchange.fetch_time())
        finally:
            await exchange.close()
    assert (type(down), down.kind, down.source) == (ExchangeRetryable, "network", "ExchangeNotAvailable")


# -- nothing else catches ccxt's exceptions -------------------------------------------------------

ADAPTER = Path(bot.__file__).parent / "live" / "exchange_errors.py"


def ccxt_exception_names(path: Path) -> list[str]:
    """Where a module names a ccxt exception class (`ccxt.InvalidOrder`, `from ccxt... import BaseError`): line and name."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr[:1].isupper():
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id == "ccxt":
                found.append(f"{path}:{node.lineno}: ccxt...{node.attr}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "ccxt":
            found.extend(f"{path}:{node.lineno}: from {node.module} import {a.name}" for a in node.names if a.name[:1].isupper())
    return found


def test_only_the_adapter_names_ccxts_exceptions() -> None:
    package = Path(bot.__file__).parent
    found = [hit for path in sorted(package.rglob("*.py")) if path != ADAPTER for hit in ccxt_exception_names(path)]
    assert found == [], "catch bot.live.errors' classes; translate ccxt's in bot/live/exchange_errors.py only:\n" + "\n".join(found)
    assert ccxt_exception_names(ADAPTER), "the check must see the adapter's own names of ccxt's classes"
