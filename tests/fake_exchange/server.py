"""FakeBinance: a local Binance spot exchange (REST + kline websocket) serving recorded candles."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from tests.fake_exchange.faults import Faults
from tests.fake_exchange.rest import RestApi
from tests.fake_exchange.series import Series
from tests.fake_exchange.stream import StreamServer

HOST = "127.0.0.1"


@dataclass(eq=False)
class FakeMarket:
    """A spot market of the fake: unified symbol, Binance id (`ETHBTC`) and its recorded series."""

    symbol: str
    series: Series
    fake: "FakeBinance" = field(repr=False)

    @property
    def base(self) -> str:
        return self.symbol.split("/")[0]

    @property
    def quote(self) -> str:
        return self.symbol.split("/")[1]

    @property
    def id(self) -> str:
        return self.base + self.quote

    @property
    def stream(self) -> str:
        return f"{self.id.lower()}@kline_{self.series.timeframe}"

    def info(self) -> dict[str, Any]:
        """The market's entry in /api/v3/exchangeInfo `symbols`."""
        return {
            "symbol": self.id,
            "status": "TRADING",
            "baseAsset": self.base,
            "baseAssetPrecision": 8,
            "quoteAsset": self.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
            "icebergAllowed": True,
            "ocoAllowed": True,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": True,
            "cancelReplaceAllowed": True,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": "0.00000100", "maxPrice": "922327.00000000", "tickSize": "0.00000001"},
                {"filterType": "LOT_SIZE", "minQty": "0.00010000", "maxQty": "100000.00000000", "stepSize": "0.00000001"},
                {"filterType": "NOTIONAL", "minNotional": "0.00010000", "applyMinToMarket": True, "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        }


class FakeBinance:
    """A Binance spot look-alike on 127.0.0.1 (ephemeral port) for tests; use as an async context manager.

    Its clock is its own: it starts at the open time of candle `start` of the first market
    (so REST has every earlier candle, closed) and moves only as `advance`/`stream` push
    candles over the websocket. Each candle is pushed `updates_per_candle` times: partial
    (`x: false`) updates, then the closing one (`x: true`). `faults` schedules misbehaviour.
    """

    def __init__(self, markets: dict[str, Path], start: int = 0, updates_per_candle: int = 3, timeframe: str = "1m") -> None:
        self.faults = Faults()
        self.updates_per_candle = updates_per_candle
        self.markets: dict[str, FakeMarket] = {
            symbol: FakeMarket(symbol, Series.load(path, timeframe), self) for symbol, path in markets.items()
        }
        self.markets_by_id = {m.id: m for m in self.markets.values()}
        first = next(iter(self.markets.values())).series
        self.now_ms = first.stamps[start] if start < len(first) else first.stamps[-1] + first.tf_ms
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.rest = RestApi(self)
        self.ws = StreamServer(self)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Listen on 127.0.0.1 with an ephemeral port."""
        app = web.Application(middlewares=[self.rest.middleware])
        app.add_routes(self.rest.routes() + self.ws.routes())
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Close every websocket and stop listening."""
        await self.ws.disconnect_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "FakeBinance":
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    # -- how ccxt reaches it ----------------------------------------------------------------
    @property
    def http_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}"

    def ccxt_urls(self) -> dict[str, Any]:
        """ccxt `urls` override: every binance API url (REST and websocket) pointed at the fake.

        Not only the spot ones: an endpoint ccxt was not expected to call then fails loudly
        with a 404 from the fake instead of reaching the real exchange.
        """
        import ccxt.pro

        def rewrite(value: Any) -> Any:
            if isinstance(value, dict):
                return {key: rewrite(item) for key, item in value.items()}
            if isinstance(value, str) and "://" in value:
                scheme, rest = value.split("://", 1)
                path = rest.split("/", 1)[1] if "/" in rest else ""
                base = self.ws_url if scheme.startswith("ws") else self.http_url
                if scheme.startswith("ws"):
                    # The kline streams live at /ws whatever the real host's layout.
                    return f"{base}/ws" if path.endswith("ws") or "/ws" in "/" + path else f"{base}/{path}"
                return f"{base}/{path}"
            return value

        exchange = ccxt.pro.binance()
        return {"api": rewrite(exchange.urls["api"])}

    @staticmethod
    def ccxt_options() -> dict[str, Any]:
        """ccxt options that keep binance on spot: no futures, margin or (private) currency calls."""
        return {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}, "fetchMargins": False, "fetchCurrencies": False}

    def exchange_config(self, **overrides: Any) -> dict[str, Any]:
        """An `exchange` config section (plain data) pointing ccxt's binance at this fake."""
        config: dict[str, Any] = {"id": "binance", "urls": self.ccxt_urls(), "options": self.ccxt_options(), "rate_limit_ms": 1}
        config.update(overrides)
        return config

    # -- driving it ---------------------------------------------------------------------------
    def market(self, symbol: str) -> FakeMarket:
        return self.markets[symbol]

    async def stream(self, candles: int, pause: float = 0.0) -> None:
        """Advance the clock by `candles` candles of the first market, pushing every update on the way."""
        first = next(iter(self.markets.values())).series
        await self.ws.advance(self.now_ms + candles * first.tf_ms, pause)

    async def advance(self, until_ms: int, pause: float = 0.0) -> None:
        """Advance the clock to `until_ms`, pushing every update due by then."""
        await self.ws.advance(until_ms, pause)

    async def wait_subscribed(self, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until `count` stream subscriptions have been made in total (since start)."""
        deadline = time.monotonic() + timeout
        while self.ws.subscriptions < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.ws.subscriptions} subscriptions, expected {count}")
            await asyncio.sleep(0.005)

    def kline_requests(self) -> list[dict[str, str]]:
        """Query parameters of every /api/v3/klines request so far."""
        return [query for path, query in self.requests if path == "/api/v3/klines"]
