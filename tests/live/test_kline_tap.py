"""BinanceKlineTap's choice of market for a kline whose id names several, through ccxt's real binance and websocket clients.

Binance ids one pair's spot market and its USDT-M perpetual alike (BTCUSDT). ccxt subscribes
to their klines under a key that, up to at least ccxt 4.3.50, says nothing of the market
(`btcusdt@kline_1m`, the same on both connections): only the connection's url tells them
apart. These tests give the tap real ccxt websocket clients carrying subscriptions of that
shape, on the urls ccxt uses for each market, and feed it the fake's kline messages through
ccxt's own message dispatch.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import ccxt.pro
import pytest
import pytest_asyncio

from bot.live.kline_tap import BinanceKlineTap
from bot.ohlcv import Candle
from tests.fake_exchange import FakeBinance, Series
from tests.fake_exchange.stream import kline_message
from tests.support import BTC_1M

PERP = "BTC/USDT:USDT"
SPOT = "BTC/USDT"
DAY_MS = 86_400_000
START = 1200
TF = {"1m": 60_000}


class Tapped:
    """A real ccxt.pro binance (markets from the fake) with a tap on it, and what the tap reported."""

    def __init__(self, fake: FakeBinance, exchange: Any) -> None:
        self.fake = fake
        self.exchange = exchange
        self.malformed: list[tuple[Any, BaseException]] = []
        self.unfiled: list[str] = []
        self.tap = BinanceKlineTap(exchange, TF, lambda message, exc: self.malformed.append((message, exc)), self.unfiled.append)

    def client(self, venue: str) -> Any:
        """ccxt's websocket client (not connected) on `venue`'s (spot, futures) websocket host, with a 4.3.50-shaped kline subscription."""
        urls = self.exchange.urls["api"]["ws"]
        # USDT-M's key was `future` before ccxt named it `linear`.
        client = self.exchange.client((urls["spot"] if venue == "spot" else urls.get("linear") or urls["future"]) + "/0")
        client.subscriptions = {"btcusdt@kline_1m": {"id": 1}}  # what binance 4.3.50's watch_ohlcv registers
        return client

    def push(self, client: Any, symbol: str, index: int, step: int) -> dict[str, Any]:
        """The fake's kline message for push `step` of candle `index` of `symbol`, through ccxt's message dispatch."""
        market = self.fake.market(symbol)
        message = kline_message(market, index, step, market.series.stamps[index])
        self.exchange.handle_message(client, message)
        return message


@pytest_asyncio.fixture
async def tapped() -> AsyncIterator[Tapped]:
    perp = Series.load(BTC_1M, "1m")
    # The spot market serves the same recording a day later: no candle of one equals the other's.
    async with FakeBinance({PERP: perp, SPOT: perp.shifted(-DAY_MS)}, start=START) as fake:
        exchange = ccxt.pro.binance({"urls": fake.ccxt_urls(), "options": fake.ccxt_options(), "enableRateLimit": False})
        try:
            await exchange.load_markets()
            assert [m["symbol"] for m in exchange.markets_by_id["BTCUSDT"]] == [SPOT, PERP]
            yield Tapped(fake, exchange)
        finally:
            await exchange.close()


def candle(series: Series, index: int) -> Candle:
    return Candle(series.stamps[index], *(float(v) for v in series.values[index]))


@pytest.mark.asyncio
async def test_a_kline_of_an_id_both_markets_share_is_filed_by_its_connection_whatever_the_subscription_key(tapped: Tapped) -> None:
    tapped.tap.watch(SPOT, "1m")
    tapped.tap.watch(PERP, "1m")
    spot, perp = tapped.fake.market(SPOT).series, tapped.fake.market(PERP).series
    updates = tapped.fake.updates_per_candle
    tapped.push(tapped.client("spot"), SPOT, START, updates)
    tapped.push(tapped.client("futures"), PERP, START, updates)
    assert tapped.tap.drain(SPOT, "1m") == [(candle(spot, START), True)]
    assert tapped.tap.drain(PERP, "1m") == [(candle(perp, START), True)]
    assert tapped.malformed == [] and tapped.unfiled == []
    # Passed on to ccxt, which filed each under the same market.
    assert tapped.exchange.ohlcvs[SPOT]["1m"][-1][0] == spot.stamps[START]
    assert tapped.exchange.ohlcvs[PERP]["1m"][-1][0] == perp.stamps[START]


@pytest.mark.asyncio
async def test_a_kline_whose_market_cannot_be_decided_goes_to_ccxt_and_is_reported_once(tapped: Tapped) -> None:
    # A second contract market under the perpetual's id: its connection (a futures one) now
    # matches two markets. Binance has no such pair of markets; a future listing might.
    twin = {**tapped.exchange.markets[PERP], "symbol": "BTC/USDT:USDT-TWIN"}
    tapped.exchange.markets_by_id["BTCUSDT"].append(twin)
    tapped.tap.watch(PERP, "1m")
    futures = tapped.client("futures")
    for step in (1, 2):
        message = tapped.push(futures, PERP, START, step)
    assert tapped.tap.pending(PERP, "1m") == 0
    assert tapped.malformed == []
    assert len(tapped.unfiled) == 1, tapped.unfiled
    assert "market id BTCUSDT names BTC/USDT, BTC/USDT:USDT, BTC/USDT:USDT-TWIN" in tapped.unfiled[0]
    assert futures.url in tapped.unfiled[0]
    # ccxt got both messages all the same: its cache holds the candle's latest push.
    assert tapped.exchange.ohlcvs[PERP]["1m"][-1][4] == float(message["k"]["c"])
