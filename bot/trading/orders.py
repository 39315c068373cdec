"""Orders and fills: plain slotted records passed between a strategy and its exchange account."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OrderSide = Literal["buy", "sell"]
Intent = Literal["open", "close"]
OrderType = Literal["market", "limit"]


@dataclass(slots=True)
class Order:
    """A market or limit order submitted for one strategy; its client id starts with the strategy id."""

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


@dataclass(frozen=True, slots=True)
class Fill:
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
