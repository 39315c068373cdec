"""Binance public REST endpoints of the fake, spot (/api/v3), USDT-M (/fapi/v1) and COIN-M (/dapi/v1): ping, time, exchangeInfo, klines."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.typedefs import Handler

from tests.fake_exchange.markets import USDM, VENUES, Venue

if TYPE_CHECKING:
    from tests.fake_exchange.server import FakeBinance

# The path prefixes whose requests are recorded and suffer REST faults.
API_PREFIXES = tuple(f"/{venue.rest.strip('/').split('/')[0]}/" for venue in VENUES)


def _error(status: int, code: int, msg: str) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status)


def _int_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    return int(raw)


class RestApi:
    """Answers the public market-data endpoints ccxt's binance uses for load_markets and fetch_ohlcv."""

    def __init__(self, fake: FakeBinance) -> None:
        self._fake = fake

    def routes(self) -> list[web.RouteDef]:
        """The aiohttp routes, under each venue's prefix like Binance (/api/v3/klines, /fapi/v1/klines)."""
        routes: list[web.RouteDef] = []
        for venue in VENUES:
            for name, handler in (("ping", self.ping), ("time", self.time), ("exchangeInfo", self.exchange_info), ("klines", self.klines)):
                routes.append(web.get(f"{venue.rest}/{name}", _for_venue(handler, venue)))
        return routes

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Count requests and apply scheduled REST faults before the real handler runs."""
        if not request.path.startswith(API_PREFIXES):
            return await handler(request)
        self._fake.requests.append((request.path, dict(request.query)))
        if request.method == "POST" and request.path == "/api/v3/order":
            # Every attempt counts, one a fault refuses below too: its parameters are in the body.
            params, _, _ = await self._fake.private.read(request)
            self._fake.order_requests.append(params)
        fault = self._fake.faults.take_rest()
        if fault is None and request.path == "/api/v3/myTrades":
            fault = self._fake.faults.take_trades()
        if fault is not None:
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            if fault.status == 429:
                body = '{"code":-1003,"msg":"Too many requests; current limit is 6000 request weight per 1 MINUTE."}'
            else:
                body = '{"code":-1001,"msg":"Internal error; unable to process your request. Please try again."}'
            return web.Response(status=fault.status, text=body, content_type="application/json", headers=headers)
        hold = None
        if request.path == "/api/v3/myTrades":
            hold = self._fake.faults.take_trade_hold()
        elif request.method == "GET" and request.path == "/api/v3/order":
            hold = self._fake.faults.take_query_hold()
        if hold is not None:
            await hold.wait()
        return await handler(request)

    async def ping(self, request: web.Request, venue: Venue) -> web.Response:
        return web.json_response({})

    async def time(self, request: web.Request, venue: Venue) -> web.Response:
        return web.json_response({"serverTime": self._fake.now_ms})

    async def exchange_info(self, request: web.Request, venue: Venue) -> web.Response:
        info: dict[str, Any] = {
            "timezone": "UTC",
            "serverTime": self._fake.now_ms,
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            ],
            "exchangeFilters": [],
            "symbols": [market.info() for market in self._fake.venue_markets(venue).values()],
        }
        if venue is USDM:
            info["futuresType"] = "U_MARGINED"
            info["assets"] = [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}]
        return web.json_response(info)

    async def klines(self, request: web.Request, venue: Venue) -> web.Response:
        """GET klines: startTime/endTime filter open times inclusively, limit 500 by default, at most 1000 (spot) or 1500 (futures)."""
        market = self._fake.venue_markets(venue).get(request.query.get("symbol", ""))
        if market is None:
            return _error(400, -1121, "Invalid symbol.")
        series = market.series
        if request.query.get("interval") != series.timeframe:
            # Binance would aggregate other intervals; the fake serves the recorded one only.
            return _error(400, -1120, "Invalid interval.")
        try:
            start = _int_param(request, "startTime")
            end = _int_param(request, "endTime")
            limit = _int_param(request, "limit") or venue.default_limit
        except ValueError:
            return _error(400, -1100, "Illegal characters found in a parameter.")
        if not 1 <= limit <= venue.max_limit:
            return _error(400, -1130, "Invalid data sent for a parameter.")
        now = self._fake.now_ms
        # Nothing opens after the fake's "now": candles of the future do not exist yet.
        upper = series.index_at_or_after(now + 1)
        if end is not None:
            upper = min(upper, series.index_at_or_after(end + 1))
        if start is not None:
            lower = series.index_at_or_after(start)
            upper = min(upper, lower + limit)
        else:
            lower = max(0, upper - limit)
        updates = self._fake.updates_per_candle
        rows = [series.kline(i, now, updates, market.volumes) for i in range(lower, upper)]
        return web.json_response(rows)


def _for_venue(handler: Callable[[web.Request, Venue], Awaitable[web.Response]], venue: Venue) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        return await handler(request, venue)

    return handle
