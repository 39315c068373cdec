"""LiveAccount: one strategy's orders on a real exchange, sent through the shared live gateway."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from bot.candles.model import Candle
from bot.config.models import FeesConfig, FillConfig
from bot.trading.account import OnDropped, OnFill
from bot.trading.orders import Fill, Intent, Order, OrderNumbering

if TYPE_CHECKING:
    from bot.live.execution import LiveExchange


class LiveAccount(OrderNumbering):
    """A strategy's account on the live gateway: same interface as the paper account, outcomes come later.

    Every order is sent to the exchange at once (a stop or take-profit the bot enforces goes out
    as a market order when the feed shows it was hit); its fill or refusal is reported through
    the callbacks the position manager binds, from the gateway's task. Client ids are
    `<strategy_id>-<n>`, so every order on the exchange names the strategy that owns it.
    """

    def __init__(self, strategy_id: str, fees: FeesConfig, gateway: "LiveExchange", on_error: Callable[[str, BaseException], None]) -> None:
        super().__init__(strategy_id)
        self.fees = fees
        self._gateway = gateway
        self._on_error = on_error
        # Mutated in place, never rebound: the position manager holds a reference to it.
        self.pending_orders: list[Order] = []
        self._on_fill: OnFill | None = None
        self._on_dropped: OnDropped | None = None

    def bind(self, on_fill: OnFill, on_dropped: OnDropped) -> None:
        """Where fills and refusals go (the position manager)."""
        self._on_fill = on_fill
        self._on_dropped = on_dropped

    def configure(self, fees: FeesConfig, fill: FillConfig) -> None:
        """Fees estimate a fill's fee when the exchange does not report it in the quote currency; the fill model is the exchange's."""
        self.fees = fees

    def submit(self, order: Order) -> Fill | None:
        """Send the order; its outcome comes later."""
        self.pending_orders.append(order)
        self._gateway.send(self, order)
        return None

    def fill_now(self, order: Order, price: float, ts: int) -> Fill | None:
        """Close out at market: sent like any order (a real exchange has no "at once")."""
        return self.submit(order)

    def trigger_fill(self, order: Order, trigger: float, candle: Candle, ts: int, kind: Literal["stop", "limit"]) -> Fill | None:
        """A stop or take-profit the feed shows was hit: sent at market."""
        return self.submit(order)

    def on_candle(self, symbol: str, candle: Candle, ts: int) -> list[Fill]:
        """Candles fill nothing here: fills come from the exchange."""
        return []

    def cancel_pending(self, intent: Intent | None = None) -> list[Order]:
        """Ask the exchange to cancel resting limit orders (market orders in flight cannot be); outcomes come later."""
        for order in self.pending_orders:
            if order.order_type == "limit" and (intent is None or order.intent == intent):
                self._gateway.cancel(order)
        return []

    # -- outcomes, called by the gateway ---------------------------------------------------------
    def filled(self, fill: Fill) -> None:
        """The order is done with this (possibly partial) fill: book it."""
        if not self._remove(fill.order):
            return
        assert self._on_fill is not None, "account not bound to a position manager"
        try:
            self._on_fill(fill)
        except Exception as exc:  # the strategy's bookkeeping failed: its problem, not the gateway's
            self._on_error(self.strategy_id, exc)

    def dropped(self, order: Order, outcome: Literal["rejected", "cancelled"], kind: str, reason: str) -> None:
        """The order ended without a fill: release it."""
        if not self._remove(order):
            return
        assert self._on_dropped is not None, "account not bound to a position manager"
        try:
            self._on_dropped(order, outcome, kind, reason)
        except Exception as exc:
            self._on_error(self.strategy_id, exc)

    def _remove(self, order: Order) -> bool:
        for index, pending in enumerate(self.pending_orders):
            if pending is order:
                del self.pending_orders[index]
                return True
        return False
