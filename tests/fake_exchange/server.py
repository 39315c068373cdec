"""FakeBinance: a local Binance spot exchange (REST + kline websocket) serving recorded candles."""
from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from tests.fake_exchange.faults import Faults
from tests.fake_exchange.orders import EIGHT, Account, BinanceError, Filters, Order, OrderRequest, Pair
from tests.fake_exchange.private import PrivateApi, parse_order_request
from tests.fake_exchange.rest import RestApi
from tests.fake_exchange.series import Series
from tests.fake_exchange.stream import StreamServer

HOST = "127.0.0.1"
# The environment variables `signed_exchange_config` names, filled by `credential_env`.
API_KEY_ENV = "FAKE_BINANCE_API_KEY"
SECRET_ENV = "FAKE_BINANCE_SECRET"
Amount = Decimal | str | float | int


def _decimal(value: Amount) -> Decimal:
    # Through str, so 0.1 means 0.1 and not the binary float nearest to it.
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _tick(text: str) -> Decimal:
    # Partial candles carry float text (0.08909999999999999): prices live on the 1e-8 tick.
    return Decimal(text).quantize(EIGHT, rounding=ROUND_HALF_EVEN)


@dataclass(eq=False)
class FakeMarket:
    """A spot market of the fake: unified symbol, Binance id (`ETHBTC`) and its recorded series."""

    symbol: str
    series: Series
    fake: "FakeBinance" = field(repr=False)
    # Whether STOP_LOSS (stop-market) is in the market's orderTypes and accepted: set by
    # FakeBinance(stop_loss=...), read once when the account is built (changing it later has no effect on the account).
    stop_loss: bool = True

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
            # STOP_LOSS_LIMIT and TAKE_PROFIT_LIMIT are listed but refused (-1116): the fake does not model them.
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", *(["STOP_LOSS"] if self.stop_loss else []), "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
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

    It also keeps one spot account (see orders.py) behind Binance's signed endpoints: ccxt
    needs `credentials()`; MARKET orders fill at `price(symbol)`, resting LIMIT orders as the
    pushes reach their price, STOP_LOSS orders as the pushes reach their stopPrice.
    `stop_loss=False` serves every market without STOP_LOSS in its orderTypes (and refuses it).
    """

    def __init__(
        self,
        markets: dict[str, Path],
        start: int = 0,
        updates_per_candle: int = 3,
        timeframe: str = "1m",
        api_key: str = "fake-api-key",
        secret: str = "fake-secret",
        commission_rate: Amount = "0.001",
        stop_loss: bool = True,
    ) -> None:
        self.faults = Faults()
        self.updates_per_candle = updates_per_candle
        self.markets: dict[str, FakeMarket] = {
            symbol: FakeMarket(symbol, Series.load(path, timeframe), self, stop_loss) for symbol, path in markets.items()
        }
        self.markets_by_id = {m.id: m for m in self.markets.values()}
        first = next(iter(self.markets.values())).series
        self.now_ms = first.stamps[start] if start < len(first) else first.stamps[-1] + first.tf_ms
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.api_key = api_key
        self.secret = secret
        self.account = Account(
            {m.id: Pair(m.id, m.base, m.quote, Filters.from_info(m.info()), m.stop_loss) for m in self.markets.values()},
            _decimal(commission_rate),
        )
        # Parameters (signature left out) of every POST /api/v3/order received, faulted ones too.
        self.order_requests: list[dict[str, str]] = []
        # Per market: the close of the latest kline push, the price MARKET orders fill at.
        self._last_close: dict[str, Decimal] = {}
        self._stopping = asyncio.Event()
        self.rest = RestApi(self)
        self.private = PrivateApi(self)
        self.ws = StreamServer(self)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Listen on 127.0.0.1 with an ephemeral port."""
        self._stopping.clear()
        app = web.Application(middlewares=[self.rest.middleware])
        app.add_routes(self.rest.routes() + self.private.routes() + self.ws.routes())
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Close every websocket, release held responses, and stop listening."""
        self._stopping.set()
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
        import ccxt.pro  # type: ignore[import-untyped]

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

    def credentials(self) -> dict[str, str]:
        """ccxt's credential fields for the fake's account: `{"apiKey": ..., "secret": ...}`."""
        return {"apiKey": self.api_key, "secret": self.secret}

    def credential_env(self) -> dict[str, str]:
        """An environment holding the credentials under the names `signed_exchange_config` gives."""
        return {API_KEY_ENV: self.api_key, SECRET_ENV: self.secret}

    def signed_exchange_config(self, **overrides: Any) -> dict[str, Any]:
        """`exchange_config` with api_key_env/secret_env naming `credential_env`'s variables."""
        return self.exchange_config(**{"api_key_env": API_KEY_ENV, "secret_env": SECRET_ENV, **overrides})

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

    def on_push(self, market: FakeMarket, index: int, step: int) -> None:
        """The clock reached push `step` of candle `index`: the price moves, resting orders (and stops) it reaches fill.

        Called for every push, sent or withheld by a stream fault: faults hit the websocket, not the market.
        """
        series = market.series
        updates = self.updates_per_candle
        open_, high, low, close, _ = series.values[index] if step >= updates else series.partial(index, step, updates)
        self._last_close[market.symbol] = _tick(close)
        self.account.trade_through(market.id, _tick(high), _tick(low), self.now_ms, _tick(open_), series.stamps[index])

    def kline_requests(self) -> list[dict[str, str]]:
        """Query parameters of every /api/v3/klines request so far."""
        return [query for path, query in self.requests if path == "/api/v3/klines"]

    # -- the account ------------------------------------------------------------------------
    def price(self, symbol: str) -> Decimal:
        """The price a MARKET order of `symbol` fills at now, on the 1e-8 tick.

        The close of the market's latest kline push (partial or closing); before any push, the
        close of the last candle closed at the start (the first candle's open if none is).
        """
        last = self._last_close.get(symbol)
        if last is not None:
            return last
        series = self.markets[symbol].series
        closed = series.index_at_or_after(self.now_ms - series.tf_ms + 1) - 1
        return _tick(series.values[closed][3] if closed >= 0 else series.values[0][0])

    def _market_price(self, market_id: str) -> Decimal:
        market = self.markets_by_id.get(market_id)
        if market is None:
            raise BinanceError(400, -1121, "Invalid symbol.")
        return self.price(market.symbol)

    def submit(self, request: OrderRequest) -> Order:
        """Book an order at the current price and clock (what POST /api/v3/order does), or raise its BinanceError."""
        return self.account.place(request, self._market_price(request.symbol), self.now_ms)

    def check(self, request: OrderRequest) -> None:
        """Raise the BinanceError the order would get from its market's filters (POST /api/v3/order/test)."""
        self.account.check(request, self._market_price(request.symbol))

    def place_order(
        self,
        symbol: str,
        side: str,
        type: str,
        quantity: Amount,
        price: Amount | None = None,
        client_id: str | None = None,
        time_in_force: str | None = None,
        stop_price: Amount | None = None,
    ) -> Order:
        """Book an order from outside the API (a previous run of the bot, the user): same rules, no faults.

        `symbol` is unified (ETH/BTC); side and type are Binance's or ccxt's (buy, limit,
        stop_loss with `stop_price`); LIMIT orders default to GTC. Raises BinanceError as the
        endpoint would refuse it.
        """
        kind = type.upper()
        params = {"symbol": self.markets[symbol].id, "side": side.upper(), "type": kind, "quantity": f"{_decimal(quantity):f}"}
        if price is not None:
            params["price"] = f"{_decimal(price):f}"
        if stop_price is not None:
            params["stopPrice"] = f"{_decimal(stop_price):f}"
        if kind == "LIMIT":
            params["timeInForce"] = time_in_force or "GTC"
        if client_id is not None:
            params["newClientOrderId"] = client_id
        request, _ = parse_order_request(params)
        return self.submit(request)

    def set_balance(self, asset: str, free: Amount) -> None:
        """Set an asset's free amount; what open orders lock stays locked."""
        self.account.set_balance(asset, _decimal(free))

    def balances(self) -> dict[str, tuple[Decimal, Decimal]]:
        """Every asset of the account: (free, locked)."""
        return {asset: (b.free, b.locked) for asset, b in self.account.balances.items()}

    @property
    def orders(self) -> list[Order]:
        """Every order the fake accepted, oldest first (client_id, status, executed_qty, avg_price, fills...)."""
        return self.account.orders

    async def hold(self, delay_s: float) -> None:
        """Wait `delay_s` seconds, or less if the fake stops meanwhile (a held response must not stall shutdown)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay_s)
