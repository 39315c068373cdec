"""FakeBinance: a local Binance (spot and USDT-M futures REST + kline websockets) serving recorded candles."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from tests.fake_exchange.faults import Faults
from tests.fake_exchange.markets import SPOT, VENUES, FakeMarket, Venue
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


class FakeBinance:
    """A Binance look-alike on 127.0.0.1 (ephemeral port) for tests; use as an async context manager.

    `markets` maps unified symbols to recorded candles (a CSV, or a Series, say one shifted in
    time): `ETH/BTC` is a spot market (/api/v3, the spot websocket), `BTC/USDT:USDT` a USDT-M
    perpetual (/fapi/v1, the USDT-M websocket), both may share an id (BTCUSDT); `BTC/USD:BTC` a
    COIN-M perpetual (/dapi/v1, the COIN-M websocket).
    Its clock is its own: it starts at the open time of candle `start` of the first market
    (so REST has every earlier candle, closed) and moves only as `advance`/`stream` push
    candles over the websockets. Each candle is pushed `updates_per_candle` times: partial
    (`x: false`) updates, then the closing one (`x: true`). `faults` schedules misbehaviour.

    It also keeps one spot account (see orders.py) behind Binance's spot signed endpoints: ccxt
    needs `credentials()`; MARKET orders fill at `price(symbol)`, resting LIMIT orders as the
    pushes reach their price, STOP_LOSS orders as the pushes reach their stopPrice.
    `stop_loss=False` serves every market without STOP_LOSS in its orderTypes (and refuses it).
    `lot_step` is every spot market's LOT_SIZE step (and minQty, when larger than 0.0001);
    `buyer_commission_in_base` charges a BUY's commission in the asset bought, as Binance spot does without BNB.
    """

    def __init__(
        self,
        markets: Mapping[str, Path | Series],
        start: int = 0,
        updates_per_candle: int = 3,
        timeframe: str = "1m",
        api_key: str = "fake-api-key",
        secret: str = "fake-secret",
        commission_rate: Amount = "0.001",
        stop_loss: bool = True,
        lot_step: str = "0.00000001",
        buyer_commission_in_base: bool = False,
    ) -> None:
        self.faults = Faults()
        self.updates_per_candle = updates_per_candle
        self.markets: dict[str, FakeMarket] = {
            symbol: FakeMarket(symbol, source if isinstance(source, Series) else Series.load(source, timeframe), self, stop_loss, lot_step)
            for symbol, source in markets.items()
        }
        for market in self.markets.values():
            if market.series.timeframe != timeframe:
                raise ValueError(f"{market.symbol}: a {market.series.timeframe} series in a {timeframe} fake")
        # Spot markets by Binance id: what the spot endpoints and the account know.
        self.markets_by_id = self.venue_markets(SPOT)
        first = next(iter(self.markets.values())).series
        self.now_ms = first.stamps[start] if start < len(first) else first.stamps[-1] + first.tf_ms
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.api_key = api_key
        self.secret = secret
        self.account = Account(
            {m.id: Pair(m.id, m.base, m.quote, Filters.from_info(m.info()), m.stop_loss) for m in self.markets_by_id.values()},
            _decimal(commission_rate),
            buyer_commission_in_base,
            self.faults.take_thin_stop,
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
        self.faults.release_holds()
        await self.ws.disconnect_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
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

    def ccxt_urls(self, exchange_id: str = "binance") -> dict[str, Any]:
        """ccxt `urls` override: every API url (REST and websocket) of a binance class pointed at the fake.

        Not only the ones the tests use: an endpoint ccxt was not expected to call then fails
        loudly with a 404 from the fake instead of reaching the real exchange. REST urls keep
        their path (/api/v3, /fapi/v1, /dapi/v1); a websocket url's host becomes its first path segment
        (wss://fstream.binance.com/ws -> /fstream/ws), as ccxt tells spot from futures
        connections by it.
        """
        import ccxt.pro

        def rewrite(value: Any) -> Any:
            if isinstance(value, dict):
                return {key: rewrite(item) for key, item in value.items()}
            if isinstance(value, str) and "://" in value:
                scheme, rest = value.split("://", 1)
                host, _, path = rest.partition("/")
                if scheme.startswith("ws"):
                    return f"{self.ws_url}/{host.split('.')[0]}/{path}"
                return f"{self.http_url}/{path}"
            return value

        exchange = getattr(ccxt.pro, exchange_id)()
        return {"api": rewrite(exchange.urls["api"])}

    def ccxt_options(self, exchange_id: str = "binance") -> dict[str, Any]:
        """ccxt options: binance loads the kinds of markets the fake has (binanceusdm, binancecoinm their own); no margin or (private) currency calls."""
        options: dict[str, Any] = {"fetchMargins": False, "fetchCurrencies": False}
        if exchange_id == "binance":
            types = [venue.ccxt_type for venue in VENUES if self.venue_markets(venue)]
            options.update(defaultType="spot", fetchMarkets={"types": types})
        return options

    def exchange_config(self, exchange_id: str = "binance", **overrides: Any) -> dict[str, Any]:
        """An `exchange` config section (plain data) pointing ccxt's `exchange_id` (binance, binanceusdm, binancecoinm) at this fake."""
        config: dict[str, Any] = {
            "id": exchange_id, "urls": self.ccxt_urls(exchange_id), "options": self.ccxt_options(exchange_id), "rate_limit_ms": 1,
        }
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

    def venue_markets(self, venue: Venue) -> dict[str, FakeMarket]:
        """The markets one venue serves, by Binance id."""
        return {m.id: m for m in self.markets.values() if m.venue is venue}

    async def stream(self, candles: int, pause: float = 0.0) -> None:
        """Advance the clock by `candles` candles of the first market, pushing every update on the way."""
        first = next(iter(self.markets.values())).series
        await self.ws.advance(self.now_ms + candles * first.tf_ms, pause)

    async def advance(self, until_ms: int, pause: float = 0.0) -> None:
        """Advance the clock to `until_ms`, pushing every update due by then."""
        await self.ws.advance(until_ms, pause)

    async def wait_subscribed(self, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until `count` stream subscriptions have been made in total (since start)."""
        await self.ws.wait_subscribed(count, timeout)

    def on_push(self, market: FakeMarket, index: int, step: int) -> None:
        """The clock reached push `step` of candle `index`: the price moves, resting orders (and stops) it reaches fill.

        Called for every push, sent or withheld by a stream fault: faults hit the websocket, not the market.
        """
        series = market.series
        updates = self.updates_per_candle
        open_, high, low, close, _ = series.values[index] if step >= updates else series.partial(index, step, updates)
        self._last_close[market.symbol] = _tick(close)
        if market.venue is not SPOT:
            return  # the account is spot only: nothing rests on a futures market
        self.account.trade_through(market.id, _tick(high), _tick(low), self.now_ms, _tick(open_), series.stamps[index])

    def kline_requests(self, venue: Venue | None = None) -> list[dict[str, str]]:
        """Query parameters of every klines request so far (/api/v3, /fapi/v1, /dapi/v1), or of one venue's."""
        paths = {f"{v.rest}/klines" for v in (VENUES if venue is None else (venue,))}
        return [query for path, query in self.requests if path in paths]

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

    async def held_until(self, released: asyncio.Event) -> None:
        """Wait until `released` is set, or the fake stops (a held request must not stall shutdown)."""
        stopping = asyncio.ensure_future(self._stopping.wait())
        release = asyncio.ensure_future(released.wait())
        try:
            await asyncio.wait((stopping, release), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            release.cancel()

    async def hold(self, delay_s: float) -> None:
        """Wait `delay_s` seconds, or less if the fake stops meanwhile (a held response must not stall shutdown)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay_s)
