"""Binance spot SIGNED endpoints of the fake: orders, open orders, trades and the account, HMAC-checked."""
from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.fake_exchange.orders import EIGHT, BinanceError, Fill, Order, OrderRequest, text

if TYPE_CHECKING:
    from tests.fake_exchange.server import FakeBinance

Json = dict[str, Any] | list[Any]

NUMBER = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
INTEGER = re.compile(r"^[0-9]{1,20}$")
CLIENT_ID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
RESPONSE_TYPES = ("ACK", "RESULT", "FULL")
TIME_IN_FORCE = ("GTC", "IOC", "FOK")
DEFAULT_LIMIT = 500
MAX_LIMIT = 1000


def _error(exc: BinanceError) -> web.Response:
    return web.json_response({"code": exc.code, "msg": exc.msg}, status=exc.status)


def _mandatory(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise BinanceError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
    return value


def _not_sent(params: Mapping[str, str], *names: str) -> None:
    for name in names:
        if name in params:
            raise BinanceError(400, -1106, f"Parameter '{name}' sent when not required.")


def _decimal(params: Mapping[str, str], name: str) -> Decimal | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not NUMBER.match(raw):
        raise BinanceError(400, -1100, f"Illegal characters found in parameter '{name}'; legal range is '{NUMBER.pattern}'.")
    value = Decimal(raw)
    if value % EIGHT:
        raise BinanceError(400, -1111, "Precision is over the maximum defined for this asset.")
    return value


def _integer(params: Mapping[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not INTEGER.match(raw):
        raise BinanceError(400, -1100, f"Illegal characters found in parameter '{name}'; legal range is '{INTEGER.pattern}'.")
    return int(raw)


def _client_id(params: Mapping[str, str], name: str) -> str | None:
    raw = params.get(name)
    if raw is not None and not CLIENT_ID.match(raw):
        raise BinanceError(400, -1100, f"Illegal characters found in parameter '{name}'; legal range is '{CLIENT_ID.pattern}'.")
    return raw


def _limit(params: Mapping[str, str]) -> int:
    limit = _integer(params, "limit") or DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise BinanceError(400, -1130, "Invalid data sent for a parameter.")
    return limit


def parse_order_request(params: Mapping[str, str]) -> tuple[OrderRequest, str]:
    """A POST /api/v3/order request checked as Binance checks it (MARKET, LIMIT, LIMIT_MAKER, STOP_LOSS), and its response type."""
    symbol = _mandatory(params, "symbol")
    side = _mandatory(params, "side")
    if side not in ("BUY", "SELL"):
        raise BinanceError(400, -1117, "Invalid side.")
    kind = _mandatory(params, "type")
    quantity, quote_qty, price = _decimal(params, "quantity"), _decimal(params, "quoteOrderQty"), _decimal(params, "price")
    stop_price = _decimal(params, "stopPrice")
    if kind == "MARKET":
        _not_sent(params, "price", "timeInForce", "stopPrice")
        if quantity is None and quote_qty is None:
            raise BinanceError(400, -1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!")
        if quantity is not None and quote_qty is not None:
            raise BinanceError(400, -1106, "Parameter 'quoteOrderQty' sent when not required.")
        time_in_force = "GTC"
    elif kind in ("LIMIT", "LIMIT_MAKER"):
        _mandatory(params, "quantity")
        _mandatory(params, "price")
        _not_sent(params, "quoteOrderQty", "stopPrice")
        if kind == "LIMIT":
            time_in_force = _mandatory(params, "timeInForce")
            if time_in_force not in TIME_IN_FORCE:
                raise BinanceError(400, -1115, "Invalid timeInForce.")
        else:
            _not_sent(params, "timeInForce")
            time_in_force = "GTC"
    elif kind == "STOP_LOSS":
        # A stop-market order: quantity and stopPrice (trailingDelta is not modelled).
        _mandatory(params, "quantity")
        _mandatory(params, "stopPrice")
        _not_sent(params, "price", "timeInForce", "quoteOrderQty")
        time_in_force = "GTC"
    else:
        # STOP_LOSS_LIMIT and the take-profit types exist on Binance but the fake does not model them.
        raise BinanceError(400, -1116, "Invalid orderType.")
    respond = params.get("newOrderRespType", "FULL")
    if respond not in RESPONSE_TYPES:
        raise BinanceError(400, -1100, "Illegal characters found in parameter 'newOrderRespType'; legal range is 'ACK, RESULT, FULL'.")
    client_id = _client_id(params, "newClientOrderId")
    return OrderRequest(symbol, side, kind, time_in_force, quantity, quote_qty, price, client_id, stop_price), respond


# -- the JSON Binance answers with ------------------------------------------------------------
def order_ack(order: Order) -> dict[str, Any]:
    return {"symbol": order.symbol, "orderId": order.order_id, "orderListId": -1, "clientOrderId": order.client_id, "transactTime": order.created_ms}


def _order_body(order: Order) -> dict[str, Any]:
    # stopPrice is one of Binance's conditional fields: only stop orders carry it.
    stop = {"stopPrice": text(order.stop_price)} if order.stop_price is not None else {}
    return {
        "price": text(order.price),
        "origQty": text(order.quantity),
        "executedQty": text(order.executed_qty),
        "origQuoteOrderQty": text(order.quote_order_qty),
        "cummulativeQuoteQty": text(order.quote_qty),
        "status": order.status,
        "timeInForce": order.time_in_force,
        "type": order.type,
        "side": order.side,
        **stop,
    }


def order_result(order: Order, respond: str) -> dict[str, Any]:
    """The POST /api/v3/order answer for newOrderRespType ACK, RESULT or FULL."""
    body = order_ack(order)
    if respond == "ACK":
        return body
    body |= _order_body(order) | {"workingTime": order.working_ms, "selfTradePreventionMode": "EXPIRE_MAKER"}
    if respond == "FULL":
        body["fills"] = [
            {"price": text(f.price), "qty": text(f.qty), "commission": text(f.commission), "commissionAsset": f.commission_asset, "tradeId": f.trade_id}
            for f in order.fills
        ]
    return body


def order_status(order: Order) -> dict[str, Any]:
    """An order as GET /api/v3/order, /openOrders and /allOrders list it."""
    return {
        "symbol": order.symbol, "orderId": order.order_id, "orderListId": -1, "clientOrderId": order.client_id,
        **_order_body(order),
        "stopPrice": text(order.stop_price or Decimal(0)), "icebergQty": text(Decimal(0)),
        "time": order.created_ms, "updateTime": order.updated_ms,
        # A stop is not working (workingTime -1) until it triggers.
        "isWorking": order.working_ms != -1, "workingTime": order.working_ms,
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }


def cancel_result(order: Order, cancel_id: str, now_ms: int) -> dict[str, Any]:
    """The DELETE /api/v3/order answer: `clientOrderId` is the cancel's own id, the order's is `origClientOrderId`."""
    return {
        "symbol": order.symbol, "origClientOrderId": order.client_id, "orderId": order.order_id, "orderListId": -1,
        "clientOrderId": cancel_id, "transactTime": now_ms, **_order_body(order), "selfTradePreventionMode": "EXPIRE_MAKER",
    }


def trade_row(order: Order, fill: Fill) -> dict[str, Any]:
    """One GET /api/v3/myTrades row."""
    return {
        "symbol": order.symbol, "id": fill.trade_id, "orderId": order.order_id, "orderListId": -1,
        "price": text(fill.price), "qty": text(fill.qty), "quoteQty": text(fill.quote_qty),
        "commission": text(fill.commission), "commissionAsset": fill.commission_asset, "time": fill.time_ms,
        "isBuyer": order.side == "BUY", "isMaker": fill.maker, "isBestMatch": True,
    }


class PrivateApi:
    """Answers the signed spot endpoints ccxt's binance uses to trade: order, openOrders, allOrders, myTrades, account."""

    def __init__(self, fake: FakeBinance) -> None:
        self._fake = fake
        self._cancels = 0

    def routes(self) -> list[web.RouteDef]:
        """The aiohttp routes, under /api/v3 like Binance."""
        return [
            web.post("/api/v3/order", self.new_order),
            web.post("/api/v3/order/test", self.test_order),
            web.get("/api/v3/order", self.get_order),
            web.delete("/api/v3/order", self.cancel_order),
            web.get("/api/v3/openOrders", self.open_orders),
            web.delete("/api/v3/openOrders", self.cancel_all),
            web.get("/api/v3/allOrders", self.all_orders),
            web.get("/api/v3/myTrades", self.my_trades),
            web.get("/api/v3/account", self.account),
        ]

    # -- authentication -----------------------------------------------------------------------
    async def read(self, request: web.Request) -> tuple[dict[str, str], str, str | None]:
        """Every parameter (query and form body), the text that was signed, and the signature."""
        body = await request.text()  # cached by aiohttp: the middleware may have read it already
        signed_parts: list[str] = []
        signature = None
        # Binance signs the query string followed by the body; ccxt puts everything in one of them.
        for raw in (request.rel_url.raw_query_string, body):
            kept = []
            for part in filter(None, raw.split("&")):
                if part.startswith("signature="):
                    signature = part.removeprefix("signature=")
                else:
                    kept.append(part)
            signed_parts.append("&".join(kept))
        params = dict(parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))
        params.pop("signature", None)
        return params, "".join(signed_parts), signature

    def _authenticate(self, request: web.Request, payload: str, signature: str | None, params: Mapping[str, str]) -> None:
        key = request.headers.get("X-MBX-APIKEY")
        if not key:
            raise BinanceError(401, -2014, "API-key format invalid.")
        if key != self._fake.api_key:
            raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        _mandatory(params, "timestamp")
        if not signature:
            raise BinanceError(400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
        expected = hmac.new(self._fake.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise BinanceError(400, -1022, "Signature for this request is not valid.")

    async def _serve(self, request: web.Request, answer: Callable[[dict[str, str]], Json]) -> web.Response:
        """Authenticate, then answer with `answer(params)` or the BinanceError it raises."""
        params, payload, signature = await self.read(request)
        try:
            self._authenticate(request, payload, signature, params)
            return web.json_response(answer(params))
        except BinanceError as exc:
            return _error(exc)

    # -- handlers -----------------------------------------------------------------------------
    async def new_order(self, request: web.Request) -> web.Response:
        """POST /api/v3/order, where the order faults apply."""
        fake = self._fake
        params, payload, signature = await self.read(request)
        try:
            self._authenticate(request, payload, signature, params)
            refusal = fake.faults.take_order_error()
            if refusal is not None:
                raise BinanceError(refusal.status, refusal.code, refusal.msg)
            order_request, respond = parse_order_request(params)
            order = fake.submit(order_request)
        except BinanceError as exc:
            return _error(exc)
        delay = fake.faults.take_order_delay()
        if delay is not None:
            await fake.hold(delay.delay_s)
        return web.json_response(order_result(order, respond))

    async def test_order(self, request: web.Request) -> web.Response:
        """POST /api/v3/order/test: checks the request like a real one, books nothing."""

        def answer(params: dict[str, str]) -> Json:
            order_request, _ = parse_order_request(params)
            self._fake.check(order_request)
            return {}

        return await self._serve(request, answer)

    def _target(self, params: Mapping[str, str]) -> tuple[str, int | None, str | None]:
        symbol = _mandatory(params, "symbol")
        order_id, client_id = _integer(params, "orderId"), _client_id(params, "origClientOrderId")
        if order_id is None and client_id is None:
            raise BinanceError(400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        return symbol, order_id, client_id

    async def get_order(self, request: web.Request) -> web.Response:
        """GET /api/v3/order by orderId or origClientOrderId (once `faults.lookups` lets it, when held)."""
        held = self._fake.faults.lookups
        if held is not None:
            await self._fake.held_until(held)
        return await self._serve(request, lambda params: order_status(self._fake.account.find(*self._target(params))))

    def _cancel(self, order: Order, params: Mapping[str, str]) -> dict[str, Any]:
        self._cancels += 1
        cancel_id = _client_id(params, "newClientOrderId") or f"fakecancel{self._cancels}"
        return cancel_result(order, cancel_id, self._fake.now_ms)

    async def cancel_order(self, request: web.Request) -> web.Response:
        """DELETE /api/v3/order: cancels an open order, unlocking its funds (once `faults.cancels` lets it, when held)."""
        held = self._fake.faults.cancels
        if held is not None:
            await self._fake.held_until(held)

        def answer(params: dict[str, str]) -> Json:
            order = self._fake.account.cancel(*self._target(params), self._fake.now_ms)
            return self._cancel(order, params)

        return await self._serve(request, answer)

    async def open_orders(self, request: web.Request) -> web.Response:
        """GET /api/v3/openOrders, of one symbol or all."""

        def answer(params: dict[str, str]) -> Json:
            symbol = params.get("symbol")
            if symbol is not None:
                self._fake.account.pair(symbol)
            return [order_status(o) for o in self._fake.account.open_orders(symbol)]

        return await self._serve(request, answer)

    async def cancel_all(self, request: web.Request) -> web.Response:
        """DELETE /api/v3/openOrders: cancels every open order of a symbol."""

        def answer(params: dict[str, str]) -> Json:
            account = self._fake.account
            symbol = _mandatory(params, "symbol")
            account.pair(symbol)
            orders = account.open_orders(symbol)
            if not orders:
                raise BinanceError(400, -2011, "Unknown order sent.")
            return [self._cancel(account.cancel(symbol, o.order_id, None, self._fake.now_ms), {}) for o in orders]

        return await self._serve(request, answer)

    async def all_orders(self, request: web.Request) -> web.Response:
        """GET /api/v3/allOrders: a symbol's orders from orderId (or the most recent), oldest first."""

        def answer(params: dict[str, str]) -> Json:
            symbol = _mandatory(params, "symbol")
            self._fake.account.pair(symbol)
            start, begin, end = _integer(params, "orderId"), _integer(params, "startTime"), _integer(params, "endTime")
            orders = [
                o for o in self._fake.account.orders
                if o.symbol == symbol and (start is None or o.order_id >= start)
                and (begin is None or o.created_ms >= begin) and (end is None or o.created_ms <= end)
            ]
            limit = _limit(params)
            return [order_status(o) for o in (orders[:limit] if start is not None or begin is not None else orders[-limit:])]

        return await self._serve(request, answer)

    async def my_trades(self, request: web.Request) -> web.Response:
        """GET /api/v3/myTrades: a symbol's fills (of one order, with orderId), oldest first."""

        def answer(params: dict[str, str]) -> Json:
            symbol = _mandatory(params, "symbol")
            self._fake.account.pair(symbol)
            from_id, begin, end = _integer(params, "fromId"), _integer(params, "startTime"), _integer(params, "endTime")
            rows = [
                (order, fill) for order, fill in self._fake.account.order_fills(symbol, _integer(params, "orderId"))
                if (from_id is None or fill.trade_id >= from_id)
                and (begin is None or fill.time_ms >= begin) and (end is None or fill.time_ms <= end)
            ]
            limit = _limit(params)
            rows = rows[:limit] if from_id is not None or begin is not None else rows[-limit:]
            return [trade_row(order, fill) for order, fill in rows]

        return await self._serve(request, answer)

    async def account(self, request: web.Request) -> web.Response:
        """GET /api/v3/account: commissions, permissions and every balance (zeros too, unless omitZeroBalances)."""

        def answer(params: dict[str, str]) -> Json:
            fake = self._fake
            omit_zero = params.get("omitZeroBalances") == "true"
            bps = int(fake.account.commission_rate * 10_000)
            rate = text(fake.account.commission_rate)
            return {
                "makerCommission": bps, "takerCommission": bps, "buyerCommission": 0, "sellerCommission": 0,
                "commissionRates": {"maker": rate, "taker": rate, "buyer": text(Decimal(0)), "seller": text(Decimal(0))},
                "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
                "requireSelfTradePrevention": False, "preventSor": False,
                "updateTime": fake.now_ms, "accountType": "SPOT",
                "balances": [
                    {"asset": asset, "free": text(b.free), "locked": text(b.locked)}
                    for asset, b in sorted(fake.account.balances.items())
                    if not (omit_zero and b.free == 0 and b.locked == 0)
                ],
                "permissions": ["SPOT"], "uid": 1,
            }

        return await self._serve(request, answer)
