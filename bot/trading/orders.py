"""Orders and fills: plain slotted records passed between a strategy and its exchange account."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OrderSide = Literal["buy", "sell"]
Intent = Literal["open", "close"]


@dataclass(slots=True)
class Order:
    """A market order submitted for one strategy; its client id starts with the strategy id."""

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


@dataclass(frozen=True, slots=True)
class Fill:
    """An execution of (part of) an order at a price, with its fee."""

    order: Order
    price: float
    quantity: float
    fee: float
    ts: int
    liquidity: Literal["maker", "taker"]
