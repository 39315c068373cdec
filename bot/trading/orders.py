"""Orders and fills: plain slotted records passed between a strategy and its exchange account."""
from __future__ import annotations

from typing import Literal

from msgspec import Struct

OrderSide = Literal["buy", "sell"]
Intent = Literal["open", "close"]
# "stop": a stop-market order resting on the exchange, protecting a position (live accounts only).
OrderType = Literal["market", "limit", "stop"]


class Order(Struct):
    """A market, limit or stop order submitted for one strategy; its client id starts with the strategy id."""

    # A mutable Struct, not a dataclass: built in C, once per order on the hot path.

    client_id: str
    strategy_id: str
    symbol: str
    side: OrderSide
    quantity: float
    intent: Intent
    position_id: str
    reason: str
    submitted_ts: int
    ref_price: float
    order_type: OrderType = "market"
    limit_price: float | None = None
    stop_price: float | None = None
    # The 0-based take-profit rung this close takes (set by the ladder only): what recovery and
    # a refused close act on, never the reason text.
    rung: int | None = None


class Fill(Struct, frozen=True):
    """The execution of an order: quantity filled, average price and fee.

    One fill completes its order: an exchange's partial fills are summed into one. Its quantity
    is below the order's only when the rest was cancelled (a limit order cancelled part-filled).
    """

    order: Order
    price: float
    quantity: float
    fee: float
    ts: int
    liquidity: Literal["maker", "taker"]


class OrderNumbering:
    """Creates one strategy's orders with client ids `<strategy_id>-<n>`: the base of every exchange account."""

    __slots__ = ("strategy_id", "_next_id")

    def __init__(self, strategy_id: str) -> None:
        self.strategy_id = strategy_id
        self._next_id = 0

    def continue_numbering(self, last: int) -> None:
        """Number new orders after `last` (restored from the journal), so no client id is reused."""
        self._next_id = max(self._next_id, last)

    def new_order(
        self,
        symbol: str,
        side: OrderSide,
        quantity: float,
        intent: Intent,
        position_id: str,
        reason: str,
        ts: int,
        ref_price: float,
        order_type: OrderType = "market",
        limit_price: float | None = None,
        stop_price: float | None = None,
        rung: int | None = None,
    ) -> Order:
        """Create an order whose client id is `<strategy_id>-<n>`."""
        self._next_id += 1
        return Order(
            f"{self.strategy_id}-{self._next_id}", self.strategy_id, symbol, side, quantity, intent, position_id, reason, ts, ref_price,
            order_type, limit_price, stop_price, rung,
        )
