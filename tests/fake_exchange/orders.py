"""The fake's spot account: balances, orders, and the matching of MARKET/LIMIT/STOP_LOSS orders against recorded prices.

Simplifications (documented so tests do not mistake them for Binance's behaviour):
- there is no order book: a marketable order fills at once, whole, at the current price
  (MARKET) or at its own limit price (LIMIT), and a resting LIMIT fills whole, at its price,
  on the first kline push (partial or closing) after it was placed whose low (BUY) or high
  (SELL) reaches it;
- a resting STOP_LOSS (stop-market) order triggers on the first kline push after it was placed
  whose low (SELL) or high (BUY) reaches its stopPrice, and then fills whole, as a taker, at
  the stopPrice, or at the candle's open when the candle opened beyond it (a gap) and the
  order was placed before that candle's first push. Like LIMIT matching, the test uses the
  pushed kline's whole range so far, the part before the order was placed included: a stop
  placed mid-candle inside the candle's range so far triggers at the next push (at its
  stopPrice). A triggered BUY stop that the free quote (its lock released) no longer pays
  for, the gap included, EXPIRES unfilled. A stop triggering while the fake's faults say the
  book is thin (`Faults.thin_stop`) fills only that much and EXPIRES with the rest, as a
  stop-market order does on Binance. trailingDelta is not modelled (stopPrice is
  required). STOP_LOSS_LIMIT, TAKE_PROFIT and TAKE_PROFIT_LIMIT are refused (-1116);
- commission is charged in the QUOTE asset on both sides, at one rate for makers and takers,
  so a BUY needs quote for the cost plus the commission; with `buyer_commission_in_base` a BUY
  pays it as Binance spot does without BNB, in the asset received (quantity * rate of it);
- amounts are exact Decimals, never rounded (cost = quantity * price, commission = cost * rate),
  so tests can check balances exactly; they are written with 8 decimals like Binance's, or
  with more where they have more (Binance would round those).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

EIGHT = Decimal("0.00000001")
OPEN_STATUSES = frozenset({"NEW", "PARTIALLY_FILLED"})


class BinanceError(Exception):
    """A request Binance would refuse: the HTTP status and the `{"code", "msg"}` body."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(f"{status} {code} {msg}")
        self.status = status
        self.code = code
        self.msg = msg


def insufficient() -> BinanceError:
    return BinanceError(400, -2010, "Account has insufficient balance for requested action.")


def text(value: Decimal) -> str:
    """An amount as Binance writes it: fixed point, 8 decimals (more if it has more: nothing is rounded away)."""
    eight = f"{value:.8f}"
    return eight if Decimal(eight) == value else f"{value.normalize():f}"


@dataclass(frozen=True, slots=True)
class Filters:
    """A market's PRICE_FILTER, LOT_SIZE and NOTIONAL bounds, read from its exchangeInfo entry."""

    min_price: Decimal
    max_price: Decimal
    tick: Decimal
    min_qty: Decimal
    max_qty: Decimal
    step: Decimal
    min_notional: Decimal
    min_notional_market: bool

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> Filters:
        """Read the filters from a /api/v3/exchangeInfo `symbols` entry, so the two cannot disagree."""
        by_type = {f["filterType"]: f for f in info["filters"]}
        price, lot, notional = by_type["PRICE_FILTER"], by_type["LOT_SIZE"], by_type["NOTIONAL"]
        return cls(
            Decimal(price["minPrice"]), Decimal(price["maxPrice"]), Decimal(price["tickSize"]),
            Decimal(lot["minQty"]), Decimal(lot["maxQty"]), Decimal(lot["stepSize"]),
            Decimal(notional["minNotional"]), bool(notional["applyMinToMarket"]),
        )

    def check(self, quantity: Decimal, price: Decimal, limit: bool) -> None:
        """Raise Binance's -1013 filter failure if the order breaks a filter."""
        if limit and not (self.min_price <= price <= self.max_price and (price - self.min_price) % self.tick == 0):
            raise BinanceError(400, -1013, "Filter failure: PRICE_FILTER")
        if not (self.min_qty <= quantity <= self.max_qty and (quantity - self.min_qty) % self.step == 0):
            raise BinanceError(400, -1013, "Filter failure: LOT_SIZE")
        if (limit or self.min_notional_market) and quantity * price < self.min_notional:
            raise BinanceError(400, -1013, "Filter failure: NOTIONAL")


@dataclass(frozen=True, slots=True)
class Pair:
    """A market as the account sees it: Binance id, base and quote assets, filters, whether STOP_LOSS is enabled."""

    id: str
    base: str
    quote: str
    filters: Filters
    stop_loss: bool = True


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A validated new-order request (what POST /api/v3/order carries, parsed)."""

    symbol: str
    side: str
    type: str
    time_in_force: str
    quantity: Decimal | None
    quote_order_qty: Decimal | None
    price: Decimal | None
    client_id: str | None
    stop_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Fill:
    """One trade of an order: all of it, or for a stop under a thin book what it could fill (the fake never fills in parts)."""

    trade_id: int
    order_id: int
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    time_ms: int
    maker: bool


@dataclass(eq=False, slots=True)
class Order:
    """One order the fake accepted: what was asked, its status, and its fills."""

    order_id: int
    symbol: str
    client_id: str
    side: str
    type: str
    time_in_force: str
    quantity: Decimal
    price: Decimal
    quote_order_qty: Decimal
    created_ms: int
    updated_ms: int
    status: str = "NEW"
    fills: list[Fill] = field(default_factory=list)
    # The asset and amount this order holds in `locked` while it rests.
    lock: tuple[str, Decimal] | None = None
    # STOP_LOSS orders: the trigger price, and when it triggered (None while it waits).
    stop_price: Decimal | None = None
    triggered_ms: int | None = None

    @property
    def working_ms(self) -> int:
        """Binance's workingTime: when the order reached the book; -1 for a stop that has not triggered."""
        if self.stop_price is None:
            return self.created_ms
        return self.triggered_ms if self.triggered_ms is not None else -1

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def executed_qty(self) -> Decimal:
        return sum((f.qty for f in self.fills), Decimal(0))

    @property
    def quote_qty(self) -> Decimal:
        return sum((f.quote_qty for f in self.fills), Decimal(0))

    @property
    def avg_price(self) -> Decimal | None:
        executed = self.executed_qty
        return self.quote_qty / executed if executed else None


@dataclass(slots=True)
class Balance:
    """One asset of the account."""

    free: Decimal = Decimal(0)
    locked: Decimal = Decimal(0)


class Account:
    """The fake's single spot account: balances and orders, matched against the prices it is given."""

    def __init__(
        self,
        pairs: Mapping[str, Pair],
        commission_rate: Decimal,
        buyer_commission_in_base: bool = False,
        stop_depth: Callable[[], Decimal | None] = lambda: None,
    ) -> None:
        self.pairs = dict(pairs)
        # How much the stop triggering now can fill (None: all of it).
        self._stop_depth = stop_depth
        self.commission_rate = commission_rate
        self.buyer_commission_in_base = buyer_commission_in_base
        self.balances: dict[str, Balance] = {}
        for pair in self.pairs.values():
            self.balances.setdefault(pair.base, Balance())
            self.balances.setdefault(pair.quote, Balance())
        self.orders: list[Order] = []
        self.fills: list[Fill] = []
        self._by_id: dict[int, Order] = {}
        self._next_trade = 1

    def set_balance(self, asset: str, free: Decimal) -> None:
        """Set an asset's free amount (its locked amount is left to the orders holding it)."""
        self.balances.setdefault(asset, Balance()).free = free

    def pair(self, symbol: str) -> Pair:
        pair = self.pairs.get(symbol)
        if pair is None:
            raise BinanceError(400, -1121, "Invalid symbol.")
        return pair

    # -- orders -------------------------------------------------------------------------------
    def check(self, request: OrderRequest, market_price: Decimal) -> tuple[Pair, Decimal, Decimal]:
        """The order's market, quantity and price if it passes the market's filters, else the BinanceError."""
        pair = self.pair(request.symbol)
        if request.type == "STOP_LOSS":
            if not pair.stop_loss:
                raise BinanceError(400, -2010, "Stop loss orders are not supported for this symbol.")
            # The filters check the stopPrice (PRICE_FILTER) and quantity * stopPrice (NOTIONAL).
            assert request.stop_price is not None
            price = request.stop_price
        else:
            price = request.price if request.price is not None else market_price
        quantity = request.quantity
        if quantity is None:
            # quoteOrderQty: as much base as that much quote buys (or sells for) now, in whole steps.
            assert request.quote_order_qty is not None
            quantity = (request.quote_order_qty / price).quantize(pair.filters.step, rounding=ROUND_DOWN)
        pair.filters.check(quantity, price, limit=request.type != "MARKET")
        return pair, quantity, price

    def place(self, request: OrderRequest, market_price: Decimal, now_ms: int) -> Order:
        """Accept (and fill, if marketable) an order, or raise the BinanceError Binance would answer."""
        pair, quantity, price = self.check(request, market_price)
        if request.client_id is not None and any(
            o.is_open and o.symbol == pair.id and o.client_id == request.client_id for o in self.orders
        ):
            raise BinanceError(400, -2010, "Duplicate order sent.")
        if request.type == "STOP_LOSS":
            if price <= market_price if request.side == "BUY" else price >= market_price:
                raise BinanceError(400, -2010, "Stop price would trigger immediately.")
            marketable = False
        else:
            marketable = request.type == "MARKET" or (price >= market_price if request.side == "BUY" else price <= market_price)
        if request.type == "LIMIT_MAKER" and marketable:
            raise BinanceError(400, -2010, "Order would immediately match and take.")
        cost, commission = self._cost(quantity, price)
        if request.side == "BUY":
            needed, asset = cost + (0 if self.buyer_commission_in_base else commission), pair.quote
        else:
            needed, asset = quantity, pair.base
        balance = self.balances.setdefault(asset, Balance())
        if balance.free < needed:
            raise insufficient()
        order_id = len(self.orders) + 1
        order = Order(
            order_id, pair.id, request.client_id or f"fakeauto{order_id}", request.side, request.type,
            request.time_in_force, quantity, request.price or Decimal(0), request.quote_order_qty or Decimal(0),
            now_ms, now_ms, stop_price=request.stop_price,
        )
        self.orders.append(order)
        self._by_id[order_id] = order
        if marketable:
            self._fill(order, price, now_ms, maker=False)
        elif request.time_in_force in ("IOC", "FOK"):
            order.status = "EXPIRED"
        else:
            balance.free -= needed
            balance.locked += needed
            order.lock = (asset, needed)
        return order

    def find(self, symbol: str, order_id: int | None, client_id: str | None) -> Order:
        """The order with that id or client id (the latest, if a client id was reused); -2013 if none."""
        self.pair(symbol)
        for order in reversed(self.orders):
            if order.symbol == symbol and (order.order_id == order_id if order_id is not None else order.client_id == client_id):
                return order
        raise BinanceError(400, -2013, "Order does not exist.")

    def cancel(self, symbol: str, order_id: int | None, client_id: str | None, now_ms: int) -> Order:
        """Cancel an open order, unlocking its funds; -2011 if it is unknown or no longer open."""
        try:
            order = self.find(symbol, order_id, client_id)
        except BinanceError as exc:
            if exc.code == -2013:
                raise BinanceError(400, -2011, "Unknown order sent.") from None
            raise
        if not order.is_open:
            raise BinanceError(400, -2011, "Unknown order sent.")
        self._unlock(order)
        order.status = "CANCELED"
        order.updated_ms = now_ms
        return order

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Open orders, oldest first, of one market or all."""
        return [o for o in self.orders if o.is_open and (symbol is None or o.symbol == symbol)]

    def order_fills(self, symbol: str, order_id: int | None = None) -> list[tuple[Order, Fill]]:
        """Fills of one market (or of one of its orders), oldest first, with their orders."""
        return [
            (self._by_id[f.order_id], f) for f in self.fills
            if self._by_id[f.order_id].symbol == symbol and (order_id is None or f.order_id == order_id)
        ]

    # -- the market moving --------------------------------------------------------------------
    def trade_through(
        self, symbol: str, high: Decimal, low: Decimal, now_ms: int,
        open: Decimal | None = None, opened_ms: int | None = None,
    ) -> list[Order]:
        """Fill every resting order of `symbol` whose price the range [low, high] reaches; the filled orders.

        `open` and `opened_ms` are the pushed candle's open price and open time: a stop placed
        before the candle's first push (created at or before `opened_ms`) that the open is
        already beyond fills at the open.
        """
        filled = []
        for order in self.open_orders(symbol):
            if order.stop_price is not None:
                if self._trigger(order, high, low, now_ms, open, opened_ms):
                    filled.append(order)
            elif (low <= order.price) if order.side == "BUY" else (high >= order.price):
                self._unlock(order)
                self._fill(order, order.price, now_ms, maker=True)
                filled.append(order)
        return filled

    def _trigger(
        self, order: Order, high: Decimal, low: Decimal, now_ms: int, open: Decimal | None, opened_ms: int | None,
    ) -> bool:
        """Trigger a resting stop the range reaches: fill it as a taker (True), or expire it if a BUY cannot pay."""
        stop = order.stop_price
        assert stop is not None
        buy = order.side == "BUY"
        if not (high >= stop if buy else low <= stop):
            return False
        price = stop
        if open is not None and opened_ms is not None and order.created_ms <= opened_ms and (open > stop if buy else open < stop):
            price = open
        self._unlock(order)
        order.triggered_ms = now_ms
        if buy:
            cost, commission = self._cost(order.quantity, price)
            if self.balances[self.pairs[order.symbol].quote].free < cost + (0 if self.buyer_commission_in_base else commission):
                order.status = "EXPIRED"
                order.updated_ms = now_ms
                return False
        self._fill(order, price, now_ms, maker=False, quantity=self._stop_depth())
        return True

    # -- bookkeeping --------------------------------------------------------------------------
    def _cost(self, quantity: Decimal, price: Decimal) -> tuple[Decimal, Decimal]:
        cost = quantity * price
        return cost, cost * self.commission_rate

    def _unlock(self, order: Order) -> None:
        if order.lock is not None:
            asset, amount = order.lock
            balance = self.balances[asset]
            balance.locked -= amount
            balance.free += amount
            order.lock = None

    def _fill(self, order: Order, price: Decimal, now_ms: int, maker: bool, quantity: Decimal | None = None) -> None:
        """Fill the order whole, or `quantity` of it and expire the rest."""
        pair = self.pairs[order.symbol]
        filled = order.quantity if quantity is None else min(quantity, order.quantity)
        cost, commission = self._cost(filled, price)
        base, quote = self.balances.setdefault(pair.base, Balance()), self.balances.setdefault(pair.quote, Balance())
        asset = pair.quote
        if order.side == "BUY" and self.buyer_commission_in_base:
            commission, asset = filled * self.commission_rate, pair.base
            quote.free -= cost
            base.free += filled - commission
        elif order.side == "BUY":
            quote.free -= cost + commission
            base.free += filled
        else:
            base.free -= filled
            quote.free += cost - commission
        fill = Fill(self._next_trade, order.order_id, price, filled, cost, commission, asset, now_ms, maker)
        self._next_trade += 1
        order.fills.append(fill)
        self.fills.append(fill)
        order.status = "FILLED" if filled == order.quantity else "EXPIRED"
        order.updated_ms = now_ms
