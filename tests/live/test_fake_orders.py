"""The fake exchange's signed spot endpoints behave as ccxt's binance expects Binance's to (orders, balances, faults)."""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import aiohttp
import ccxt.async_support as ccxt
import pytest

from bot.config.exchange import ExchangeConfig
from bot.live.exchange import build_exchange
from tests.fake_exchange import FakeBinance
from tests.fake_exchange.orders import BinanceError
from tests.live.support import ETH
from tests.support import ETH_1M

START = 1200
RATE = Decimal("0.001")


@asynccontextmanager
async def trading(btc: str = "1", eth: str = "0", stop_loss: bool = True) -> AsyncIterator[tuple[FakeBinance, Any]]:
    """A fake at candle START with a funded account, and ccxt.async_support.binance signed in to it."""
    async with FakeBinance({ETH: ETH_1M}, start=START, stop_loss=stop_loss) as fake:
        fake.set_balance("BTC", btc)
        fake.set_balance("ETH", eth)
        config = ExchangeConfig.model_validate(fake.signed_exchange_config())
        exchange, _ = build_exchange(config, fake.credential_env(), streaming=False)
        assert isinstance(exchange, ccxt.binance)
        try:
            yield fake, exchange
        finally:
            await exchange.close()


def first_reaching(fake: FakeBinance, price: Decimal, side: str) -> int:
    """Index of the first candle from START whose low (buy) or high (sell) reaches `price`."""
    values = fake.market(ETH).series.values
    column = 2 if side == "buy" else 1
    return next(i for i in range(START, len(values)) if (Decimal(values[i][column]) <= price) == (side == "buy"))


@pytest.mark.asyncio
async def test_market_buy_fills_at_the_current_price_with_fee_and_moves_balances() -> None:
    async with trading(btc="1") as (fake, exchange):
        price = fake.price(ETH)
        assert price == Decimal(fake.market(ETH).series.values[START - 1][3])  # the last closed candle's close
        order = await exchange.create_order(ETH, "market", "buy", 0.5)
        cost = Decimal("0.5") * price
        assert order["status"] == "closed" and order["filled"] == 0.5 and order["remaining"] == 0
        assert order["average"] == pytest.approx(float(price)) and order["cost"] == pytest.approx(float(cost))
        assert order["fee"] == {"currency": "BTC", "cost": pytest.approx(float(cost * RATE))}
        assert order["trades"][0]["price"] == pytest.approx(float(price))
        assert fake.balances() == {"BTC": (1 - cost - cost * RATE, Decimal(0)), "ETH": (Decimal("0.5"), Decimal(0))}
        balance = await exchange.fetch_balance()
        assert balance["ETH"]["free"] == 0.5 and balance["BTC"]["total"] == pytest.approx(float(1 - cost * (1 + RATE)))
        # The price moves with the pushes: a sell after a candle and one partial push gets that push's close.
        series = fake.market(ETH).series
        await fake.stream(1)
        assert fake.price(ETH) == Decimal(series.values[START][3])
        await fake.advance(fake.now_ms + 20_000)
        sell_price = Decimal(series.partial(START + 1, 1, fake.updates_per_candle)[3]).quantize(Decimal("1e-8"))
        assert fake.price(ETH) == sell_price != Decimal(series.values[START][3])
        sell = await exchange.create_order(ETH, "market", "sell", 0.2)
        assert sell["average"] == pytest.approx(float(sell_price)) and sell["status"] == "closed"
        proceeds = Decimal("0.2") * sell_price
        assert fake.balances()["BTC"] == (1 - cost * (1 + RATE) + proceeds * (1 - RATE), Decimal(0))
        trades = await exchange.fetch_my_trades(ETH)
        assert [(t["side"], t["takerOrMaker"], t["order"]) for t in trades] == [("buy", "taker", order["id"]), ("sell", "taker", sell["id"])]
        assert [o.status for o in fake.orders] == ["FILLED", "FILLED"] and len(fake.order_requests) == 2


@pytest.mark.asyncio
async def test_insufficient_funds_raise_and_book_nothing() -> None:
    async with trading(btc="0.01") as (fake, exchange):
        with pytest.raises(ccxt.InsufficientFunds):
            await exchange.create_order(ETH, "market", "buy", 1)
        with pytest.raises(ccxt.InsufficientFunds):
            await exchange.create_order(ETH, "limit", "sell", 0.1, 0.1)  # no ETH at all
        # The commission counts: exactly the cost is not enough for a BUY.
        price = fake.price(ETH)
        fake.set_balance("BTC", Decimal("0.1") * price)
        with pytest.raises(ccxt.InsufficientFunds):
            await exchange.create_order(ETH, "market", "buy", 0.1)
        assert fake.orders == [] and len(fake.order_requests) == 3
        assert fake.balances() == {"BTC": (Decimal("0.1") * price, Decimal(0)), "ETH": (Decimal(0), Decimal(0))}


@pytest.mark.asyncio
async def test_a_limit_order_rests_locks_its_funds_and_fills_when_the_clock_reaches_its_price() -> None:
    async with trading(btc="1") as (fake, exchange):
        limit = Decimal("0.0899")
        assert limit < fake.price(ETH)  # not marketable: it rests
        reached = first_reaching(fake, limit, "buy")
        assert reached > START + 1
        order = await exchange.create_order(ETH, "limit", "buy", 2, float(limit), {"clientOrderId": "rest-1"})
        locked = 2 * limit * (1 + RATE)
        assert order["status"] == "open" and order["filled"] == 0 and order["clientOrderId"] == "rest-1"
        assert fake.balances()["BTC"] == (1 - locked, locked)
        assert [o["id"] for o in await exchange.fetch_open_orders(ETH)] == [order["id"]]
        assert (await exchange.fetch_balance())["BTC"]["used"] == pytest.approx(float(locked))
        await fake.stream(reached - START)  # every candle before the one reaching it, closed
        assert (await exchange.fetch_order(order["id"], ETH))["status"] == "open"
        await fake.stream(1)
        filled = await exchange.fetch_order(order["id"], ETH)
        assert filled["status"] == "closed" and filled["filled"] == 2 and filled["average"] == pytest.approx(float(limit))
        assert await exchange.fetch_open_orders(ETH) == []
        assert fake.balances() == {"BTC": (1 - locked, Decimal(0)), "ETH": (Decimal(2), Decimal(0))}
        trades = await exchange.fetch_order_trades(order["id"], ETH)
        assert len(trades) == 1 and trades[0]["takerOrMaker"] == "maker"
        opened = fake.market(ETH).series.stamps[reached]
        assert opened < trades[0]["timestamp"] <= opened + 60_000  # at a push of the candle that reached it


@pytest.mark.asyncio
async def test_a_marketable_limit_fills_at_once_at_its_price_and_an_unfilled_ioc_expires() -> None:
    async with trading(btc="1", eth="1") as (fake, exchange):
        above = fake.price(ETH) + Decimal("0.001")
        order = await exchange.create_order(ETH, "limit", "buy", 1, float(above))
        assert order["status"] == "closed" and order["average"] == pytest.approx(float(above))
        ioc = await exchange.create_order(ETH, "limit", "sell", 1, 0.2, {"timeInForce": "IOC"})
        assert ioc["status"] == "expired" and fake.balances()["ETH"] == (Decimal(2), Decimal(0))


@pytest.mark.asyncio
async def test_cancel_unlocks_and_a_second_cancel_is_order_not_found() -> None:
    async with trading(btc="1", eth="3") as (fake, exchange):
        buy = await exchange.create_order(ETH, "limit", "buy", 1, 0.05)
        sell = await exchange.create_order(ETH, "limit", "sell", 2, 0.2)
        assert fake.balances() == {"BTC": (1 - Decimal("0.05") * (1 + RATE), Decimal("0.05") * (1 + RATE)), "ETH": (1, 2)}
        canceled = await exchange.cancel_order(buy["id"], ETH)
        assert canceled["status"] == "canceled" and canceled["id"] == buy["id"]
        assert canceled["info"]["origClientOrderId"] == buy["clientOrderId"]  # clientOrderId is the cancel's own
        await exchange.cancel_order(None, ETH, {"origClientOrderId": sell["clientOrderId"]})
        assert fake.balances() == {"BTC": (Decimal(1), Decimal(0)), "ETH": (Decimal(3), Decimal(0))}
        assert await exchange.fetch_open_orders(ETH) == []
        with pytest.raises(ccxt.OrderNotFound):
            await exchange.cancel_order(buy["id"], ETH)
        assert [o.status for o in fake.orders] == ["CANCELED", "CANCELED"]


@pytest.mark.asyncio
async def test_fetch_order_by_client_id_finds_an_order_placed_from_outside_and_unknown_ones_are_not_found() -> None:
    async with trading(btc="1") as (fake, exchange):
        outside = fake.place_order(ETH, "buy", "limit", "0.5", "0.08", client_id="previous-run-1")
        found = await exchange.fetch_order(None, ETH, {"origClientOrderId": "previous-run-1"})
        assert found["id"] == str(outside.order_id) and found["status"] == "open" and found["amount"] == 0.5
        assert [o["clientOrderId"] for o in await exchange.fetch_open_orders(ETH)] == ["previous-run-1"]
        assert fake.order_requests == []  # not an API call
        with pytest.raises(ccxt.OrderNotFound):
            await exchange.fetch_order(None, ETH, {"origClientOrderId": "never-sent"})
        with pytest.raises(ccxt.OrderNotFound):
            await exchange.fetch_order("999", ETH)
        with pytest.raises(BinanceError, match="LOT_SIZE"):
            fake.place_order(ETH, "buy", "limit", "0.00001", "0.08")


@pytest.mark.asyncio
async def test_a_client_id_of_an_open_order_is_refused_and_free_again_once_it_closes() -> None:
    async with trading(btc="1") as (fake, exchange):
        first = await exchange.create_order(ETH, "limit", "buy", 1, 0.05, {"clientOrderId": "dup-1"})
        with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
            await exchange.create_order(ETH, "limit", "buy", 1, 0.05, {"clientOrderId": "dup-1"})
        with pytest.raises(ccxt.BadRequest, match="-1100"):
            await exchange.create_order(ETH, "limit", "buy", 1, 0.05, {"clientOrderId": "not valid!"})
        assert len(fake.orders) == 1
        await exchange.cancel_order(first["id"], ETH)
        again = await exchange.create_order(ETH, "limit", "buy", 1, 0.05, {"clientOrderId": "dup-1"})
        assert again["status"] == "open" and again["id"] != first["id"]


@pytest.mark.asyncio
async def test_a_timed_out_order_creation_was_booked_and_is_found_by_its_client_id() -> None:
    async with trading(btc="1") as (fake, exchange):
        fake.faults.order_timeout(1.0)
        exchange.timeout = 300
        # The timeout itself proves the client gave up before the answer held back 1 s (which would
        # have succeeded); no stopwatch: a busy machine (two test workers) may be slow to say so.
        with pytest.raises(ccxt.RequestTimeout):
            await exchange.create_order(ETH, "market", "buy", 0.5, None, {"clientOrderId": "slow-1"})
        found = await exchange.fetch_order(None, ETH, {"origClientOrderId": "slow-1"})
        assert found["status"] == "closed" and found["filled"] == 0.5
        assert fake.balances()["ETH"] == (Decimal("0.5"), Decimal(0))
        # Once only: the next order answers at once.
        assert (await exchange.create_order(ETH, "market", "buy", 0.1))["status"] == "closed"


@pytest.mark.asyncio
async def test_order_error_faults_refuse_orders_as_binance_does() -> None:
    async with trading(btc="1") as (fake, exchange):
        fake.faults.order_errors(400, -1013, "Filter failure: LOT_SIZE")
        with pytest.raises(ccxt.InvalidOrder, match="LOT_SIZE"):
            await exchange.create_order(ETH, "market", "buy", 0.5)
        fake.faults.order_errors(429, -1015, "Too many new orders; current limit is 50 orders per 10 SECOND.", count=2)
        for _ in range(2):
            with pytest.raises(ccxt.DDoSProtection, match="-1015"):
                await exchange.create_order(ETH, "market", "buy", 0.5)
        assert fake.orders == [] and len(fake.order_requests) == 3
        assert (await exchange.create_order(ETH, "market", "buy", 0.5))["status"] == "closed"
        # The REST fault still hits every /api/ path, signed ones included; a refused creation still counts as a request.
        fake.faults.rest_errors(503)
        with pytest.raises(ccxt.OperationFailed):
            await exchange.create_order(ETH, "market", "buy", 0.5)
        assert len(fake.orders) == 1 and len(fake.order_requests) == 5
        fake.faults.rest_errors(500)
        with pytest.raises(ccxt.OperationFailed):
            await exchange.fetch_balance()
        assert fake.requests[-1][0] == "/api/v3/account"
        assert (await exchange.fetch_balance())["ETH"]["free"] == 0.5


@pytest.mark.asyncio
async def test_a_bad_signature_or_key_is_refused() -> None:
    async with trading(btc="1") as (fake, exchange):
        exchange.secret = "not-the-secret"
        with pytest.raises(ccxt.AuthenticationError, match="-1022"):
            await exchange.create_order(ETH, "market", "buy", 0.5)
        exchange.secret, exchange.apiKey = fake.secret, "someone-else"
        with pytest.raises(ccxt.AuthenticationError, match="-2015"):
            await exchange.fetch_balance()
        assert fake.orders == []
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{fake.http_url}/api/v3/account", params={"timestamp": "1", "signature": "00"}) as response:
                assert response.status == 401 and (await response.json())["code"] == -2014
            headers = {"X-MBX-APIKEY": fake.api_key}
            async with session.get(f"{fake.http_url}/api/v3/account", params={"timestamp": "1", "signature": "00"}, headers=headers) as response:
                assert response.status == 400 and (await response.json())["code"] == -1022


# -- STOP_LOSS (stop-market) orders -----------------------------------------------------------
def stop_loss(qty: float, stop: Decimal, client_id: str | None = None) -> tuple[Any, ...]:
    """create_order arguments of a stop-market order, as the bot sends them (side and symbol left out)."""
    params: dict[str, Any] = {"stopLossPrice": float(stop)}
    if client_id is not None:
        params["clientOrderId"] = client_id
    return ("market", qty, None, params)


async def place_stop(exchange: Any, side: str, qty: float, stop: Decimal, client_id: str | None = None) -> dict[str, Any]:
    kind, amount, price, params = stop_loss(qty, stop, client_id)
    order: dict[str, Any] = await exchange.create_order(ETH, kind, side, amount, price, params)
    return order


@pytest.mark.asyncio
async def test_a_stop_loss_rests_open_with_its_trigger_price_and_locks_its_funds() -> None:
    async with trading(btc="1", eth="2") as (fake, exchange):
        price = fake.price(ETH)
        assert "STOP_LOSS" in (await exchange.load_markets())[ETH]["info"]["orderTypes"]
        sell_stop, buy_stop = price - Decimal("0.001"), price + Decimal("0.001")
        sell = await place_stop(exchange, "sell", 1.5, sell_stop, "stop-1")
        assert fake.order_requests[-1] | {"timestamp": "", "recvWindow": ""} == {
            "symbol": "ETHBTC", "side": "SELL", "type": "STOP_LOSS", "quantity": "1.5", "stopPrice": f"{sell_stop:f}",
            "newClientOrderId": "stop-1", "newOrderRespType": "FULL", "timestamp": "", "recvWindow": "",
        }
        assert sell["status"] == "open" and sell["type"] == "market" and sell["clientOrderId"] == "stop-1"
        assert sell["triggerPrice"] == pytest.approx(float(sell_stop)) and sell["filled"] == 0 and sell["average"] is None
        assert sell["info"]["type"] == "STOP_LOSS" and sell["info"]["stopPrice"] == f"{sell_stop:.8f}"
        assert fake.balances()["ETH"] == (Decimal("0.5"), Decimal("1.5"))
        buy = await place_stop(exchange, "buy", 1, buy_stop)
        locked = buy_stop * (1 + RATE)
        assert buy["status"] == "open" and buy["triggerPrice"] == pytest.approx(float(buy_stop))
        assert fake.balances()["BTC"] == (1 - locked, locked)
        # Resting stops are open orders (what reconciliation reads), and fetch_order sees them too.
        listed = await exchange.fetch_open_orders(ETH)
        assert [(o["id"], o["status"], o["info"]["type"]) for o in listed] == [(sell["id"], "open", "STOP_LOSS"), (buy["id"], "open", "STOP_LOSS")]
        assert [o["triggerPrice"] for o in listed] == [pytest.approx(float(sell_stop)), pytest.approx(float(buy_stop))]
        fetched = await exchange.fetch_order(sell["id"], ETH)
        assert fetched["status"] == "open" and fetched["triggerPrice"] == pytest.approx(float(sell_stop))
        assert fetched["info"]["isWorking"] is False and fetched["info"]["workingTime"] == -1
        # The funds a stop locks count: what is left free is all a second stop may take.
        with pytest.raises(ccxt.InsufficientFunds):
            await place_stop(exchange, "sell", 0.6, sell_stop)
        # One placed from outside the API (a previous run) is listed as well.
        outside = fake.place_order(ETH, "sell", "stop_loss", "0.5", stop_price=sell_stop, client_id="previous-stop")
        assert outside.status == "NEW" and fake.balances()["ETH"] == (Decimal(0), Decimal(2))
        assert [o["clientOrderId"] for o in await exchange.fetch_open_orders(ETH)][-1] == "previous-stop"


@pytest.mark.asyncio
async def test_canceling_a_stop_loss_unlocks_its_funds() -> None:
    async with trading(btc="1", eth="2") as (fake, exchange):
        stop = fake.price(ETH) - Decimal("0.001")
        order = await place_stop(exchange, "sell", 2, stop)
        assert fake.balances()["ETH"] == (Decimal(0), Decimal(2))
        canceled = await exchange.cancel_order(order["id"], ETH)
        assert canceled["status"] == "canceled" and canceled["triggerPrice"] == pytest.approx(float(stop))
        assert fake.balances()["ETH"] == (Decimal(2), Decimal(0))
        assert await exchange.fetch_open_orders(ETH) == []
        [listed] = await exchange.fetch_orders(ETH)
        assert listed["status"] == "canceled" and listed["info"]["type"] == "STOP_LOSS" and listed["triggerPrice"] == pytest.approx(float(stop))
        # Canceled, it never triggers.
        await fake.stream(20)
        assert fake.orders[0].status == "CANCELED" and fake.balances()["ETH"] == (Decimal(2), Decimal(0))


@pytest.mark.asyncio
async def test_a_kline_reaching_a_sell_stop_fills_it_whole_at_the_stop_price_as_a_taker() -> None:
    async with trading(btc="1", eth="1") as (fake, exchange):
        stop = Decimal("0.0899")
        reached = first_reaching(fake, stop, "buy")  # the first candle whose low is at or under the stop
        series = fake.market(ETH).series
        assert reached > START + 1 and Decimal(series.values[reached][0]) > stop  # it opens above: no gap
        order = await place_stop(exchange, "sell", 1, stop, "stop-cross")
        await fake.stream(reached - START)  # every candle before the one reaching it, closed
        assert (await exchange.fetch_order(order["id"], ETH))["status"] == "open"
        assert fake.balances()["ETH"] == (Decimal(0), Decimal(1))
        await fake.stream(1)
        filled = await exchange.fetch_order(order["id"], ETH)
        assert filled["status"] == "closed" and filled["filled"] == 1 and filled["remaining"] == 0
        assert filled["average"] == pytest.approx(float(stop)) and filled["triggerPrice"] == pytest.approx(float(stop))
        assert filled["info"]["type"] == "STOP_LOSS" and filled["info"]["isWorking"] is True
        assert await exchange.fetch_open_orders(ETH) == []
        assert fake.balances() == {"BTC": (1 + stop * (1 - RATE), Decimal(0)), "ETH": (Decimal(0), Decimal(0))}
        [trade] = await exchange.fetch_my_trades(ETH)
        assert trade["order"] == order["id"] and trade["takerOrMaker"] == "taker" and trade["side"] == "sell"
        assert trade["price"] == pytest.approx(float(stop)) and trade["fee"]["cost"] == pytest.approx(float(stop * RATE))
        opened = series.stamps[reached]
        assert opened < trade["timestamp"] <= opened + 60_000  # at a push of the candle that reached it
        assert filled["info"]["workingTime"] == trade["timestamp"]


@pytest.mark.asyncio
async def test_a_stop_the_candle_opens_beyond_fills_at_the_open() -> None:
    async with trading(btc="1", eth="1") as (fake, exchange):
        values = fake.market(ETH).series.values
        # The first candle opening at least two ticks under the previous close: a gap down.
        gap = next(i for i in range(START + 1, len(values)) if Decimal(values[i - 1][3]) - Decimal(values[i][0]) >= Decimal("2e-8"))
        opening, before = Decimal(values[gap][0]), Decimal(values[gap - 1][3])
        await fake.stream(gap - START)  # up to the gap candle's open
        assert fake.price(ETH) == before
        stop = opening + Decimal("1e-8")
        assert opening < stop < before
        order = await place_stop(exchange, "sell", 1, stop)
        await fake.stream(1)
        filled = await exchange.fetch_order(order["id"], ETH)
        assert filled["status"] == "closed" and filled["filled"] == 1 and filled["info"]["cummulativeQuoteQty"] == f"{opening:.8f}"
        assert fake.balances() == {"BTC": (1 + opening * (1 - RATE), Decimal(0)), "ETH": (Decimal(0), Decimal(0))}
        [trade] = await exchange.fetch_order_trades(order["id"], ETH)
        assert trade["info"]["price"] == f"{opening:.8f}" and trade["takerOrMaker"] == "taker"


@pytest.mark.asyncio
async def test_a_stop_that_would_trigger_at_once_is_refused() -> None:
    async with trading(btc="1", eth="1") as (fake, exchange):
        price = fake.price(ETH)
        for side, stop in (("sell", price), ("sell", price + Decimal("0.001")), ("buy", price), ("buy", price - Decimal("0.001"))):
            with pytest.raises(ccxt.OrderImmediatelyFillable, match="Stop price would trigger immediately"):
                await place_stop(exchange, side, 1, stop)
        assert fake.orders == [] and len(fake.order_requests) == 4
        assert fake.balances() == {"BTC": (Decimal(1), Decimal(0)), "ETH": (Decimal(1), Decimal(0))}


@pytest.mark.asyncio
async def test_a_stop_loss_without_stop_price_or_with_a_price_is_refused() -> None:
    async with trading(btc="1", eth="1") as (fake, exchange):
        request = {"symbol": "ETHBTC", "side": "SELL", "type": "STOP_LOSS", "quantity": "1"}
        with pytest.raises(ccxt.BadRequest, match="Mandatory parameter 'stopPrice' was not sent"):
            await exchange.private_post_order(request)
        stop = f"{fake.price(ETH) - Decimal('0.001'):f}"
        with pytest.raises(ccxt.BadRequest, match="Parameter 'price' sent when not required"):
            await exchange.private_post_order(request | {"stopPrice": stop, "price": stop})
        with pytest.raises(ccxt.BadRequest, match="Mandatory parameter 'quantity' was not sent"):
            await exchange.private_post_order({"symbol": "ETHBTC", "side": "SELL", "type": "STOP_LOSS", "stopPrice": stop})
        with pytest.raises(ccxt.InvalidOrder, match="PRICE_FILTER"):
            await exchange.private_post_order(request | {"stopPrice": "0.0000001"})
        assert fake.orders == [] and fake.balances()["ETH"] == (Decimal(1), Decimal(0))


@pytest.mark.asyncio
async def test_a_market_without_stop_loss_makes_ccxt_refuse_the_stop_before_sending_it() -> None:
    async with trading(btc="1", eth="1", stop_loss=False) as (fake, exchange):
        assert "STOP_LOSS" not in (await exchange.load_markets())[ETH]["info"]["orderTypes"]
        stop = fake.price(ETH) - Decimal("0.001")
        with pytest.raises(ccxt.InvalidOrder, match="triggerPrice parameter is not allowed for ETH/BTC market orders"):
            await place_stop(exchange, "sell", 1, stop)
        assert fake.order_requests == []
        # Sent anyway, Binance refuses it.
        with pytest.raises(ccxt.InvalidOrder, match="Stop loss orders are not supported for this symbol"):
            await exchange.private_post_order({"symbol": "ETHBTC", "side": "SELL", "type": "STOP_LOSS", "quantity": "1", "stopPrice": f"{stop:f}"})
        assert fake.orders == [] and fake.balances()["ETH"] == (Decimal(1), Decimal(0))


@pytest.mark.asyncio
async def test_a_buy_stop_whose_gap_the_free_quote_cannot_pay_expires_and_unlocks() -> None:
    async with trading(btc="1") as (fake, exchange):
        values = fake.market(ETH).series.values
        # The first candle opening at least two ticks over the previous close: a gap up.
        gap = next(i for i in range(START + 1, len(values)) if Decimal(values[i][0]) - Decimal(values[i - 1][3]) >= Decimal("2e-8"))
        opening = Decimal(values[gap][0])
        await fake.stream(gap - START)
        stop = opening - Decimal("1e-8")
        assert fake.price(ETH) < stop
        fake.set_balance("BTC", stop * (1 + RATE))  # exactly the lock: the open costs more
        order = await place_stop(exchange, "buy", 1, stop)
        assert fake.balances()["BTC"] == (Decimal(0), stop * (1 + RATE))
        await fake.stream(1)
        expired = await exchange.fetch_order(order["id"], ETH)
        assert expired["status"] == "expired" and expired["filled"] == 0
        assert fake.balances() == {"BTC": (stop * (1 + RATE), Decimal(0)), "ETH": (Decimal(0), Decimal(0))}
        assert await exchange.fetch_my_trades(ETH) == []
