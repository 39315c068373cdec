"""Reading ccxt's answers about an order: done or not, and the fill it amounts to."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from bot.trading.orders import Fill, Order

OrderStatus = Literal["open", "filled", "cancelled", "rejected"]
_DONE_WITHOUT_FILL: dict[str, Literal["cancelled", "rejected"]] = {"canceled": "cancelled", "cancelled": "cancelled", "expired": "cancelled", "rejected": "rejected"}


@dataclass(frozen=True, slots=True)
class OrderOutcome:
    """Where an order stands on the exchange: still open, or done with a fill (possibly partial) or none."""

    status: OrderStatus
    fill: Fill | None = None
    exchange_id: str | None = None
    reason: str = ""


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number


def _fees(order: dict[str, Any]) -> list[Any]:
    """ccxt's fee list of an order (`fees`, or the single `fee`)."""
    return order.get("fees") or ([order["fee"]] if order.get("fee") else [])


def has_fee(order: dict[str, Any]) -> bool:
    """Whether the exchange's order structure reports the fee it charged."""
    fees = _fees(order)
    return any(isinstance(fee, dict) and fee.get("cost") is not None for fee in fees)


def fee_in_quote(order: dict[str, Any], symbol: str, price: float, fallback: float) -> float:
    """The order's fees in the quote currency: base-currency fees valued at the fill price.

    A fee in a third currency (Binance's BNB discount) cannot be valued without its price:
    `fallback` (the configured fee rate) stands in for it.
    """
    base, _, quote = symbol.partition("/")
    quote = quote.split(":")[0]
    fees = _fees(order)
    total = 0.0
    for fee in fees:
        cost = _number(fee.get("cost")) if isinstance(fee, dict) else None
        if not cost:
            continue
        currency = fee.get("currency")
        if currency == quote:
            total += cost
        elif currency == base:
            total += cost * price
        else:
            return fallback
    return total if fees else fallback


def outcome_of(
    order: Order,
    reply: dict[str, Any],
    now_ms: int,
    fee_bps: float,
    sellable: Callable[[str, float], float] | None = None,
    spot: bool = True,
) -> OrderOutcome:
    """Turn ccxt's unified order structure into an outcome for `order` (the partial fills summed into one).

    `sellable(symbol, quantity)`: what of a spot buy's quantity less its fee in the base asset the
    market lets the account sell (its lot step); without it, all of it. With it, a buy whose fee
    is not reported is taken to have paid it in the coin bought, at `fee_bps`. Not `spot` (a
    perpetual): the position is the quantity filled, whatever currency the fee is in.
    """
    exchange_id = reply.get("id")
    status = str(reply.get("status") or "open").lower()
    filled = _number(reply.get("filled")) or 0.0
    if status == "open" or (status not in ("closed", *_DONE_WITHOUT_FILL) and filled < order.quantity * (1 - 1e-9)):
        return OrderOutcome("open", None, exchange_id)
    if filled <= 0:
        return OrderOutcome(_DONE_WITHOUT_FILL.get(status, "cancelled"), None, exchange_id, status)
    price = _number(reply.get("average"))
    if not price:
        cost = _number(reply.get("cost"))
        price = cost / filled if cost else (_number(reply.get("price")) or order.ref_price)
    fallback = price * filled * fee_bps / 10_000.0
    fee = fee_in_quote(reply, order.symbol, price, fallback)
    # Binance answers a stop order with workingTime -1 (not triggered yet), which ccxt takes for its time.
    ts = next((t for t in (reply.get("lastTradeTimestamp"), reply.get("timestamp")) if isinstance(t, (int, float)) and t > 0), now_ms)
    trades = reply.get("trades") or []
    taker_or_maker = next((t.get("takerOrMaker") for t in trades if isinstance(t, dict) and t.get("takerOrMaker")), None)
    liquidity: Literal["maker", "taker"] = "maker" if order.order_type == "limit" else "taker"
    if taker_or_maker == "maker" or taker_or_maker == "taker":
        liquidity = taker_or_maker
    quantity = filled
    in_base = 0.0
    if order.side == "buy" and spot:
        if has_fee(reply):
            in_base = base_fee(reply, order.symbol)
        elif sellable is not None:
            # The fee is not known (its trades could not be read): it may have been taken in the coin
            # bought. Holding less than the account has is safe, the rest stays on it; holding more
            # would make every close and stop of the position fail for want of funds.
            in_base = filled * fee_bps / 10_000.0
    if in_base:
        # Binance spot takes a buyer's commission in the asset bought: what the account holds is
        # the filled quantity less that fee (its value is in `fee`), and a close must not ask for more.
        # Nor for what is off the market's lot step: the exchange would sell the rest and leave dust
        # no order can close, and the position could then never be closed. That dust stays on the
        # account, outside the position, and its value is booked as part of the entry's fee.
        # Rounded to 12 places first: 0.3 - 0.0003 is 0.29969999999999997 in floats, a step short once truncated.
        quantity = max(0.0, round(filled - in_base, 12))
        if sellable is not None:
            held, quantity = quantity, sellable(order.symbol, quantity)
            fee += (held - quantity) * price
    return OrderOutcome("filled", Fill(order, price, quantity, fee, int(ts), liquidity), exchange_id)


def base_fee(order: dict[str, Any], symbol: str) -> float:
    """The part of an order's fees charged in the base currency, in base units."""
    base = symbol.partition("/")[0]
    fees = _fees(order)
    return sum(_number(fee.get("cost")) or 0.0 for fee in fees if isinstance(fee, dict) and fee.get("currency") == base)
