"""LiveAccount: one strategy's orders on a real exchange, sent through the shared live gateway."""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, ClassVar, Literal

from bot.config.models import FeesConfig, FillConfig
from bot.live.stop_keeper import StopKeeper, StopSpec
from bot.ohlcv import Candle
from bot.strategy.guard import attempt
from bot.trading.account import AccountSink
from bot.trading.orders import Fill, Intent, Order, OrderNumbering, OrderSide

if TYPE_CHECKING:
    from bot.live.execution import LiveExchange


class LiveAccount(OrderNumbering):
    """A strategy's account on the live gateway: same interface as the paper account, outcomes come later.

    Every order is sent to the exchange at once (a stop or take-profit the bot enforces goes out
    as a market order when the feed shows it was hit); its fill or refusal is reported through
    its sink (the position manager it was opened for), from the gateway's task. Client ids are
    `<strategy_id>-<n>`, so every order on the exchange names the strategy that owns it.
    Where the exchange takes stop orders, each position's stop rests there (its StopKeeper),
    and a close of a position waits until that stop is cancelled.
    """

    rests_stops: ClassVar[bool] = True

    def __init__(
        self, strategy_id: str, fees: FeesConfig, gateway: LiveExchange, on_error: Callable[[str, BaseException], None], sink: AccountSink
    ) -> None:
        super().__init__(strategy_id)
        self.fees = fees
        self._gateway = gateway
        self._on_error = on_error
        # Mutated in place, never rebound: the position manager holds a reference to it.
        self.pending_orders: list[Order] = []
        self._sink = sink
        self.stops = StopKeeper(self, gateway)

    def configure(self, fees: FeesConfig, fill: FillConfig) -> None:
        """Fees estimate a fill's fee when the exchange does not report it in the quote currency; the fill model is the exchange's."""
        self.fees = fees

    def submit(self, order: Order) -> Fill | None:
        """Send the order (a close waits while its position's stop rests on the exchange); its outcome comes later."""
        self.pending_orders.append(order)
        if order.intent == "close" and self.stops.hold_close(order):
            # Sent later, once the stop is cancelled: never, if the turn deciding it is not journalled.
            self._gateway.unless_journalled(partial(self.stops.release_held, order))
            return None
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

    # -- exchange-side stops (the position manager says what each position's stop should be) -------
    def protect(self, position_id: str, symbol: str, side: OrderSide, quantity: float, stop: float | None, reason: str, ts: int) -> None:
        """Keep this stop resting on the exchange for the position (None: none), where the exchange takes stop orders."""
        spec = None if stop is None or quantity <= 0 else StopSpec(symbol, side, quantity, stop, reason, ts)
        self.stops.protect(position_id, spec)

    def stop_held(self, position_id: str) -> bool:
        """Whether the exchange holds the position's stop as it stands (then the bot does not enforce it)."""
        return self.stops.held(position_id)

    def stop_crossed(self, position_id: str) -> None:
        """The feed shows the exchange's stop was crossed: its fill is looked up at the next poll."""
        self.stops.crossed(position_id)

    def position_closed(self, position_id: str) -> None:
        """Cancel the closed position's stop on the exchange."""
        self.stops.position_closed(position_id)

    def restore_stop(self, order: Order) -> None:
        """A stop order journalled as resting: looked up at reconciliation."""
        self.stops.restore(order)

    def announce(self, order: Order) -> None:
        """Announce an order the account created itself (a stop), as the position manager announces its own."""
        self._sink.announce_order(order)

    # -- outcomes, called by the gateway ---------------------------------------------------------
    def opened(self, order: Order) -> None:
        """The exchange says the order rests (polled again and again: idempotent)."""
        if order.order_type == "stop":
            self.stops.opened(order)

    def filled(self, fill: Fill) -> None:
        """The order is done with this (possibly partial) fill: book it."""
        if fill.order.order_type == "stop":
            self.stops.filled(fill)
        elif self._remove(fill.order):
            self.deliver_fill(fill)

    def dropped(self, order: Order, outcome: Literal["rejected", "cancelled"], kind: str, reason: str) -> None:
        """The order ended without a fill: release it."""
        if order.order_type == "stop":
            self.stops.dropped(order, outcome, kind, reason)
        else:
            self.deliver_drop(order, outcome, kind, reason)

    def deliver_fill(self, fill: Fill) -> None:
        """Book a fill into the position manager (a failure there fails the strategy, not the gateway)."""
        error = attempt(self._sink.apply_fill, fill)
        if error is not None:  # the strategy's bookkeeping failed: its problem, not the gateway's
            self._on_error(self.strategy_id, error)

    def deliver_drop(self, order: Order, outcome: Literal["rejected", "cancelled"], kind: str, reason: str) -> None:
        """Release an order that ended unfilled in the position manager."""
        if order.order_type != "stop" and not self._remove(order):
            return
        error = attempt(self._sink.drop_order, order, outcome, kind, reason)
        if error is not None:
            self._on_error(self.strategy_id, error)

    def _remove(self, order: Order) -> bool:
        for index, pending in enumerate(self.pending_orders):
            if pending is order:
                del self.pending_orders[index]
                return True
        return False
