"""What a strategy's position manager needs from its exchange account, paper or live."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal, Protocol

from bot.config.models import FeesConfig, FillConfig
from bot.ohlcv import Candle
from bot.trading.orders import Fill, Intent, Order, OrderSide, OrderType


class AccountSink(Protocol):
    """Where an account reports its orders' outcomes: the position manager it was opened for."""

    def apply_fill(self, fill: Fill) -> None:
        """Book a fill (it ends its order)."""

    def drop_order(self, order: Order, outcome: Literal["rejected", "cancelled"], kind: str, reason: str) -> None:
        """An order ended without a fill: refused by the exchange, or cancelled (by us, the exchange or a user).

        `reason` is the exchange's own words, `kind` a stable category for the event.
        """

    def announce_order(self, order: Order) -> None:
        """Announce an order the account created itself (a live account's exchange-side stop), like the manager's own."""


class ExchangeAccount(Protocol):
    """One strategy's account on an exchange: creates, sends and fills its orders.

    A paper account fills synchronously (the return values of `submit`, `trigger_fill`,
    `fill_now`, `on_candle`); a live account returns nothing there and reports each order's
    outcome later to the sink it was opened with, from the gateway's task.
    """

    strategy_id: str
    pending_orders: list[Order]
    # Whether `protect` may rest a stop on the exchange: False lets the manager skip the call per change.
    rests_stops: ClassVar[bool]

    def configure(self, fees: FeesConfig, fill: FillConfig) -> None: ...

    def continue_numbering(self, last: int) -> None: ...

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
    ) -> Order: ...

    def submit(self, order: Order) -> Fill | None: ...

    def fill_now(self, order: Order, price: float, ts: int) -> Fill | None: ...

    def on_candle(self, symbol: str, candle: Candle, ts: int) -> list[Fill]: ...

    def cancel_pending(self, intent: Intent | None = None) -> list[Order]: ...

    def trigger_fill(self, order: Order, trigger: float, candle: Candle, ts: int, kind: Literal["stop", "limit"]) -> Fill | None: ...

    # Stops resting on the exchange (a live account where the exchange takes stop orders; the
    # paper account enforces every stop from candles and ignores these).
    def protect(self, position_id: str, symbol: str, side: OrderSide, quantity: float, stop: float | None, reason: str, ts: int) -> None: ...

    def stop_held(self, position_id: str) -> bool: ...

    def stop_crossed(self, position_id: str) -> None: ...

    def position_closed(self, position_id: str) -> None: ...

    def restore_stop(self, order: Order) -> None: ...


# Opens a strategy's account with its sink: the position manager calls it with itself, so the
# account is complete from construction on.
OpenAccount = Callable[[AccountSink], ExchangeAccount]


class ExchangeGateway(Protocol):
    """The shared execution service: opens one isolated account per strategy id."""

    name: str

    def open_account(self, strategy_id: str, fees: FeesConfig, fill: FillConfig, sink: AccountSink) -> ExchangeAccount: ...

    def status(self) -> dict[str, Any]: ...

    def problems(self) -> list[str]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...
