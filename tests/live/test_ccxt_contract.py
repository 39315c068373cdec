"""The ccxt internals the bot patches or reads are there, on the installed ccxt, with the shape the bot uses.

ccxt documents its unified methods (create_order, watch_ohlcv, ...), not these: a release may
rename or reshape them without notice. The bot relies on them in
- bot/live/kline_tap.py: wraps the instance's `handle_ohlcv(client, message)`; reads
  `find_timeframe`, `markets_by_id` (id -> list of markets), `is_spot_url(client)`, `client.url`;
- bot/live/ws_guard.py: wraps the instance's `handle_message(client, message)`, `client(url)`
  and each new client's `handle_text_or_binary_message(data)`; reads `clients` (url -> client);
- bot/live/connections.py: wraps `client(url)`, called by a watch from its own task; awaits
  `client.connected` (an asyncio Future);
- bot/live/ccxt_feed.py: reads the rows in `ohlcvs[symbol][timeframe]`; fails a websocket with
  `client.on_error(exc)` (bot.live.exchange_errors.cut), which a pending watch then raises;
- bot/live/rest.py, bot/live/exchange_errors.py: `last_response_headers` (Retry-After).
Each failure names the internal and the ccxt version. pyproject.toml pins ccxt below the next
minor release: to raise the pin, install the new ccxt and run this file (and tests/live).
"""
from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn

import anyio
import ccxt
import ccxt.pro
import pytest
import pytest_asyncio

from bot.live.exchange_errors import cut
from bot.live.kline_tap import BINANCE_LIKE
from tests.fake_exchange import FakeBinance
from tests.fake_exchange.stream import kline_message
from tests.live.support import ETH
from tests.support import ETH_1M

START = 1200


def broken(internal: str, what: str) -> NoReturn:
    """Fail with the one message that says which internal changed, in which ccxt, and what to do."""
    pytest.fail(
        f"ccxt {ccxt.__version__} changed an internal the bot relies on: {internal}: {what}. "
        "Adapt the module named for it in this test's docstring (or pin ccxt below this version in pyproject.toml).",
        pytrace=False,
    )


def expect_parameters(internal: str, function: Callable[..., Any], names: list[str]) -> None:
    """`function` (unbound) takes `self` and exactly these leading positional parameters, the rest optional."""
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError) as exc:
        broken(internal, f"no signature to read ({exc})")
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p.name for p in positional if p.default is p.empty]
    if required != ["self", *names] or [p.name for p in positional][: len(names) + 1] != ["self", *names]:
        broken(internal, f"expected parameters (self, {', '.join(names)}), found {inspect.signature(function)}")


def same_task(task: asyncio.Task[Any] | None, other: asyncio.Future[Any]) -> bool:
    return task is other


def exchange_class(exchange_id: str) -> Any:
    cls = getattr(ccxt.pro, exchange_id, None)
    if cls is None:
        broken(f"ccxt.pro.{exchange_id}", "no such exchange class")
    return cls


@pytest.mark.parametrize("exchange_id", sorted(BINANCE_LIKE))
def test_the_kline_handler_and_message_dispatch_the_tap_and_guard_wrap_take_client_and_message(exchange_id: str) -> None:
    cls = exchange_class(exchange_id)
    for name in ("handle_ohlcv", "handle_message"):
        if not callable(getattr(cls, name, None)):
            broken(f"ccxt.pro.{exchange_id}.{name}", "missing")
        expect_parameters(f"ccxt.pro.{exchange_id}.{name}", getattr(cls, name), ["client", "message"])
    if not callable(getattr(cls, "is_spot_url", None)):
        broken(f"ccxt.pro.{exchange_id}.is_spot_url", "missing (the tap would fall back to guessing from the url)")
    expect_parameters(f"ccxt.pro.{exchange_id}.is_spot_url", cls.is_spot_url, ["client"])
    expect_parameters(f"ccxt.pro.{exchange_id}.find_timeframe", cls.find_timeframe, ["timeframe"])


def test_the_websocket_client_methods_the_guard_and_feed_use_take_what_they_are_given() -> None:
    expect_parameters("ccxt.pro Exchange.client", ccxt.pro.Exchange.client, ["url"])
    try:
        from ccxt.async_support.base.ws.client import Client as client_class
    except ImportError as exc:
        broken("ccxt.async_support.base.ws.client.Client", f"cannot be imported ({exc})")
    expect_parameters("ccxt.pro Client.handle_text_or_binary_message", client_class.handle_text_or_binary_message, ["data"])
    expect_parameters("ccxt.pro Client.on_error", client_class.on_error, ["error"])


@pytest_asyncio.fixture
async def streaming() -> AsyncIterator[tuple[FakeBinance, Any]]:
    """The fake exchange, and a real ccxt.pro binance on it with its markets loaded."""
    async with FakeBinance({ETH: ETH_1M}, start=START) as fake:
        exchange = ccxt.pro.binance({"urls": fake.ccxt_urls(), "options": fake.ccxt_options(), "enableRateLimit": False})
        try:
            await exchange.load_markets()
            yield fake, exchange
        finally:
            await exchange.close()


@pytest.mark.asyncio
async def test_an_exchange_instance_has_the_attributes_the_bot_reads(streaming: tuple[FakeBinance, Any]) -> None:
    fake, exchange = streaming
    for name, kind in (("ohlcvs", dict), ("clients", dict), ("markets_by_id", dict), ("last_response_headers", (dict, type(None)))):
        if not isinstance(getattr(exchange, name, None), kind):
            broken(f"ccxt.pro.binance().{name}", f"expected {kind}, found {type(getattr(exchange, name, None)).__name__}")
    markets = exchange.markets_by_id.get(fake.market(ETH).id)
    if not (isinstance(markets, list) and markets and markets[0].get("symbol") == ETH):
        broken("ccxt.pro.binance().markets_by_id", f"expected a list of markets per id, found {markets!r}")
    if exchange.find_timeframe("1m") != "1m":
        broken("ccxt.pro.binance().find_timeframe", f"expected '1m' for Binance's interval '1m', found {exchange.find_timeframe('1m')!r}")
    client = exchange.client(fake.ws_url + "/ws")
    if exchange.clients.get(client.url) is not client:
        broken("ccxt.pro.binance().clients", "a client made by client(url) is not filed under its url")
    if not isinstance(getattr(client, "connected", None), asyncio.Future):
        broken("ccxt.pro Client.connected", f"expected an asyncio Future, found {type(getattr(client, 'connected', None)).__name__}")


@pytest.mark.asyncio
async def test_a_kline_dispatched_through_handle_message_reaches_the_instances_handle_ohlcv_and_lands_in_ohlcvs(
    streaming: tuple[FakeBinance, Any],
) -> None:
    fake, exchange = streaming
    market = fake.market(ETH)
    seen: list[tuple[Any, Any]] = []
    original = exchange.handle_ohlcv

    def handle_ohlcv(client: Any, message: Any) -> None:
        seen.append((client, message))
        original(client, message)

    exchange.handle_ohlcv = handle_ohlcv  # as the tap does: on the instance
    client = exchange.client(exchange.urls["api"]["ws"]["spot"] + "/0")
    message = kline_message(market, START, fake.updates_per_candle, market.series.stamps[START])
    exchange.handle_message(client, message)
    if seen != [(client, message)]:
        broken("ccxt.pro.binance.handle_message", "a kline message no longer goes to the instance's handle_ohlcv(client, message)")
    rows = ((exchange.ohlcvs.get(ETH) or {}).get("1m")) or []
    k = message["k"]
    expected = [k["t"], float(k["o"]), float(k["h"]), float(k["l"]), float(k["c"]), float(k["v"])]  # type: ignore[index]
    if not rows or list(rows[-1]) != expected:
        broken("ccxt.pro.binance.ohlcvs", f"a kline no longer lands as {expected} in ohlcvs[{ETH!r}]['1m'] (found {list(rows)[-1:]})")


@pytest.mark.asyncio
async def test_a_watch_asks_the_instances_client_from_its_task_decodes_through_the_client_and_raises_what_on_error_is_given(
    streaming: tuple[FakeBinance, Any],
) -> None:
    fake, exchange = streaming
    asked: list[tuple[asyncio.Task[Any] | None, Any]] = []
    decoded: list[Any] = []
    make_client = exchange.client

    def client(url: str) -> Any:
        made = make_client(url)
        if not asked:
            decode = made.handle_text_or_binary_message

            def counting_decode(data: Any) -> None:
                decoded.append(data)
                decode(data)

            made.handle_text_or_binary_message = counting_decode  # as the guard does: on the instance
        asked.append((asyncio.current_task(), made))
        return made

    exchange.client = client
    watch = asyncio.ensure_future(exchange.watch_ohlcv(ETH, "1m"))
    with anyio.fail_after(10):
        while not asked and not watch.done():
            await asyncio.sleep(0)
        if not asked:
            broken("ccxt.pro.binance.watch_ohlcv", f"never called the instance's client(url) (it ended with {watch.exception()!r})")
        connection = asked[0][1]
        if not same_task(asked[0][0], watch):
            broken("ccxt.pro.binance.watch_ohlcv", "does not ask client(url) from its own task (connections.py files clients by task)")
        await connection.connected
        await fake.wait_subscribed()
        await fake.stream(1)
        rows = await watch
    if not decoded:
        broken("ccxt.pro Client.handle_text_or_binary_message", "messages no longer go through the client instance's attribute")
    if not rows or not all(isinstance(row, list) and len(row) == 6 for row in rows):
        broken("ccxt.pro.binance.watch_ohlcv", f"expected rows [ts, o, h, l, c, v], found {rows!r}")
    pending = asyncio.ensure_future(exchange.watch_ohlcv(ETH, "1m"))
    with anyio.fail_after(10):
        # A watch registers its future in the step that asks for the client: after that, it waits on it.
        while len(asked) < 2 and not pending.done():
            await asyncio.sleep(0)
        cut(connection, "contract test")
        outcome = await asyncio.gather(pending, return_exceptions=True)
    if not isinstance(outcome[0], ccxt.NetworkError) or "contract test" not in str(outcome[0]):
        broken("ccxt.pro Client.on_error", f"a pending watch no longer raises the error given to on_error (it got {outcome[0]!r})")
