"""The fake's markets: spot, USDT-M and COIN-M perpetuals, where each is served (REST prefix, websocket) and its exchangeInfo entry."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tests.fake_exchange.series import Series

if TYPE_CHECKING:
    from tests.fake_exchange.server import FakeBinance


@dataclass(frozen=True, slots=True)
class Venue:
    """One of Binance's APIs: its REST path prefix, the websocket host it streams from, its klines limits.

    Real Binance serves spot, USDT-M and COIN-M futures from different hosts (api/stream,
    fapi/fstream, dapi/dstream .binance.com); the fake has one host, so the websocket host's
    first label becomes the first path segment (`/stream/ws`, `/fstream/market/ws`,
    `/dstream/ws`). That keeps the part of the url ccxt reads to tell a spot connection from
    a futures one.
    """

    name: str
    rest: str
    ws_host: str
    ccxt_type: str
    max_limit: int
    default_limit: int = 500


SPOT = Venue("spot", "/api/v3", "stream", "spot", 1000)
USDM = Venue("usdm", "/fapi/v1", "fstream", "linear", 1500)
COINM = Venue("coinm", "/dapi/v1", "dstream", "inverse", 1500)
VENUES = (SPOT, USDM, COINM)
# What one COIN-M contract is worth, in the quote currency (Binance: 100 USD for BTCUSD).
CONTRACT_SIZE = 100


def _parse_symbol(symbol: str) -> tuple[str, str, str | None]:
    """(base, quote, settle) of a unified symbol: `ETH/BTC` or `BTC/USDT:USDT`."""
    pair, _, settle = symbol.partition(":")
    base, _, quote = pair.partition("/")
    if not base or not quote:
        raise ValueError(f"{symbol!r} is not a unified symbol (BASE/QUOTE or BASE/QUOTE:SETTLE)")
    return base, quote, settle or None


@dataclass(eq=False)
class FakeMarket:
    """A market of the fake: unified symbol, Binance id (`ETHBTC`), venue, and its recorded series.

    `BASE/QUOTE` is a spot market; `BASE/QUOTE:QUOTE` a USDT-M perpetual (same id as the spot
    market of the pair, served under /fapi and on the USDT-M websocket); `BASE/QUOTE:BASE` a
    COIN-M perpetual (`BTCUSD_PERP`, under /dapi and on the COIN-M websocket).
    """

    symbol: str
    series: Series
    fake: FakeBinance = field(repr=False)
    # Whether STOP_LOSS (stop-market) is in the market's orderTypes and accepted: set by
    # FakeBinance(stop_loss=...), read once when the account is built (changing it later has no effect on the account).
    stop_loss: bool = True
    # A spot market's LOT_SIZE stepSize and minQty (FakeBinance(lot_step=...)): real ETHBTC trades in 0.0001 ETH steps.
    lot_step: str = "0.00000001"

    def __post_init__(self) -> None:
        base, quote, settle = _parse_symbol(self.symbol)
        if settle not in (None, quote, base):
            raise ValueError(f"{self.symbol}: a perpetual of the fake settles in its quote (USDT-M) or its base (COIN-M)")

    @property
    def base(self) -> str:
        return _parse_symbol(self.symbol)[0]

    @property
    def quote(self) -> str:
        return _parse_symbol(self.symbol)[1]

    @property
    def venue(self) -> Venue:
        _base, quote, settle = _parse_symbol(self.symbol)
        return SPOT if settle is None else USDM if settle == quote else COINM

    @property
    def id(self) -> str:
        return self.base + self.quote + ("_PERP" if self.venue is COINM else "")

    @property
    def settle(self) -> str | None:
        return _parse_symbol(self.symbol)[2]

    @property
    def stream(self) -> str:
        return f"{self.id.lower()}@kline_{self.series.timeframe}"

    def volumes(self, volume: str, close: str) -> tuple[str, str]:
        """(volume, its second figure) of a kline whose recorded volume is `volume`, as the venue writes them.

        Spot and USDT-M: the base volume, then the quote volume (not modelled: "0"). COIN-M: the
        volume in contracts, then the base asset volume, which ccxt takes as the candle's
        volume; the recorded volume is that base volume, and contracts are what it was worth
        in the quote at the close, in CONTRACT_SIZE units.
        """
        if self.venue is not COINM:
            return volume, "0"
        return repr(float(volume) * float(close) / CONTRACT_SIZE), volume

    def info(self) -> dict[str, Any]:
        """The market's entry in its venue's exchangeInfo `symbols`."""
        return self._spot_info() if self.venue is SPOT else self._perpetual_info()

    def _spot_info(self) -> dict[str, Any]:
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
                {"filterType": "LOT_SIZE", "minQty": max(self.lot_step, "0.00010000", key=Decimal), "maxQty": "100000.00000000", "stepSize": self.lot_step},
                {"filterType": "NOTIONAL", "minNotional": "0.00010000", "applyMinToMarket": True, "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        }

    def _perpetual_info(self) -> dict[str, Any]:
        # The fields of a /fapi/v1 or /dapi/v1 exchangeInfo entry; ccxt reads contractType and
        # marginAsset to make it the swap BASE/QUOTE:SETTLE. The fake takes no futures orders.
        coin = self.venue is COINM
        return {
            "symbol": self.id,
            "pair": self.base + self.quote,
            "contractType": "PERPETUAL",
            "deliveryDate": 4133404800000,
            "onboardDate": 1569398400000,
            # COIN-M names the status contractStatus, and a contract is worth `contractSize` quote units.
            **({"contractStatus": "TRADING", "contractSize": CONTRACT_SIZE} if coin else {"status": "TRADING"}),
            "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000",
            "baseAsset": self.base,
            "quoteAsset": self.quote,
            "marginAsset": self.settle,
            "pricePrecision": 8,
            "quantityPrecision": 3,
            "baseAssetPrecision": 8,
            "quotePrecision": 8,
            "underlyingType": "COIN",
            "underlyingSubType": [],
            "settlePlan": 0,
            "triggerProtect": "0.0500",
            "liquidationFee": "0.012500",
            "marketTakeBound": "0.05",
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": "0.00000100", "maxPrice": "4529764", "tickSize": "0.00000001"},
                {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000", "stepSize": "0.001"},
                {"filterType": "MARKET_LOT_SIZE", "minQty": "0.001", "maxQty": "120", "stepSize": "0.001"},
                {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                {"filterType": "MIN_NOTIONAL", "notional": "5"},
                {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500", "multiplierDecimal": "4"},
            ],
            "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
        }
