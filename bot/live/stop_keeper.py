"""StopKeeper: keeps each position's stop-loss resting on the exchange as a stop-market order, in step with the bot's stop."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Literal

from bot.trading.orders import Fill, Order, OrderSide

if TYPE_CHECKING:
    from bot.live.execution import LiveExchange
    from bot.live.live_account import LiveAccount

SlotState = Literal["idle", "placing", "resting", "cancelling"]
# Refusals that say nothing about the stop itself: asked again, after a growing pause.
_PASSING = frozenset({"rate_limited", "network"})
_RETRY_MIN_S = 1.0
_RETRY_MAX_S = 300.0


@dataclass(frozen=True, slots=True)
class StopSpec:
    """The stop a position should have on the exchange: close side, quantity, trigger price."""

    symbol: str
    side: OrderSide
    quantity: float
    price: float
    reason: str
    # When the bot decided it (market time): journalled with the order, not part of what the stop is.
    ts: int = field(compare=False)


@dataclass(eq=False, slots=True)
class StopSlot:
    """One position's stop: the one wanted, the order on the exchange, and closes held back meanwhile."""

    position_id: str
    desired: StopSpec | None = None
    order: Order | None = None
    state: SlotState = "idle"
    # The stop the exchange refused: not asked for again until the bot's stop moves (or, for a
    # passing refusal such as a rate limit, until the gateway's next poll: `retry_refused`).
    refused: StopSpec | None = None
    refused_kind: str = ""
    retry_at: float = 0.0
    retry_pause_s: float = 0.0
    # Market closes of this position held until no stop rests: on spot a resting stop locks the
    # quantity it would sell, so a close sent beside it would be refused for insufficient funds.
    waiting: list[Order] = field(default_factory=list)
    closed: bool = False


class StopKeeper:
    """Keeps one account's positions protected on the exchange, so a stop fires while the bot is down.

    The position manager says what stop each position should have (`protect`); the keeper makes
    the exchange agree, one operation at a time per position: a stop that no longer matches
    (moved by a trailing stop or break-even, or a quantity changed by a take-profit) is
    cancelled and placed anew; a close the bot sends for the position waits until no stop rests,
    and is dropped when the stop filled first. `held` tells the position manager when the
    exchange holds the stop, so the bot does not also enforce it. Nothing is placed before
    `arm` (after start-up reconciliation has settled the stops restored from the journal).
    """

    def __init__(self, owner: LiveAccount, gateway: LiveExchange) -> None:
        self._owner = owner
        self._gateway = gateway
        self.slots: dict[str, StopSlot] = {}
        self._armed = False

    # -- from the position manager (through the account) ---------------------------------------
    def protect(self, position_id: str, spec: StopSpec | None) -> None:
        """The stop a position should have from now on (None: no stop on the exchange)."""
        slot = self.slots.get(position_id)
        if slot is None:
            if spec is None:
                return
            slot = self.slots[position_id] = StopSlot(position_id)
        slot.desired = spec
        self._step(slot)

    def held(self, position_id: str) -> bool:
        """Whether the exchange holds this position's stop as it stands (so the bot must not enforce it too)."""
        slot = self.slots.get(position_id)
        return slot is not None and slot.state == "resting" and not slot.waiting and self._matches(slot)

    def hold_close(self, order: Order) -> bool:
        """Hold a market close while a stop rests for its position (it goes out once the stop is gone); False: send it now."""
        slot = self.slots.get(order.position_id)
        if slot is None or slot.order is None:
            return False
        slot.waiting.append(order)
        self._step(slot)
        return True

    def release_held(self, order: Order) -> None:
        """A held close whose turn could not be journalled: it must never be sent, and ends refused."""
        slot = self.slots.get(order.position_id)
        if slot is None or not any(o is order for o in slot.waiting):
            return
        slot.waiting = [o for o in slot.waiting if o is not order]
        self._owner.deliver_drop(order, "rejected", "journal", "not sent: the journal could not record it")

    def crossed(self, position_id: str) -> None:
        """The feed shows the price went through the stop the exchange holds: ask the exchange about it soon."""
        slot = self.slots.get(position_id)
        if slot is not None and slot.order is not None:
            self._gateway.poll_soon(slot.order)

    def position_closed(self, position_id: str) -> None:
        """The position is closed: cancel its stop, drop closes still held for it."""
        slot = self.slots.get(position_id)
        if slot is None:
            return
        slot.closed = True
        slot.desired = None
        waiting, slot.waiting = slot.waiting, []
        for order in waiting:
            self._owner.deliver_drop(order, "cancelled", "position_closed", "the position was closed before this order was sent")
        self._step(slot)

    def restore(self, order: Order) -> None:
        """A stop journalled as resting when the bot stopped: reconciliation (or the poller) says what became of it."""
        slot = self.slots.setdefault(order.position_id, StopSlot(order.position_id))
        slot.order = order
        slot.state = "placing"
        if self._armed and order.client_id not in self._gateway.tracked:
            # Loaded while the daemon runs (no start-up reconciliation): the poller looks it up.
            self._gateway.adopt(self._owner, order)

    def restored_orders(self) -> list[Order]:
        """Stop orders not confirmed on the exchange yet (restored from the journal, or being placed)."""
        return [slot.order for slot in self.slots.values() if slot.order is not None and slot.state == "placing"]

    def arm(self) -> None:
        """Start placing stops (after reconciliation); restored stops nobody looked up yet are handed to the poller."""
        self._armed = True
        for slot in list(self.slots.values()):
            if slot.order is not None and slot.order.client_id not in self._gateway.tracked:
                self._gateway.adopt(self._owner, slot.order)
            self._step(slot)

    def retry_refused(self, now: float) -> None:
        """Ask again for stops refused for a passing reason (rate limit, network), each after its own growing pause."""
        for slot in list(self.slots.values()):
            if slot.refused is not None and slot.refused_kind in _PASSING and now >= slot.retry_at:
                slot.refused = None
                self._step(slot)

    def held_closes(self) -> list[Order]:
        """Closes waiting for their position's stop to be cancelled (not sent yet)."""
        return [order for slot in self.slots.values() for order in slot.waiting]

    def status(self) -> list[dict[str, object]]:
        """Each position's exchange stop, for `status`."""
        rows: list[dict[str, object]] = []
        for slot in self.slots.values():
            order = slot.order
            rows.append({
                "position_id": slot.position_id,
                "state": "refused" if slot.order is None and slot.refused is not None and slot.refused == slot.desired else slot.state,
                "client_id": None if order is None else order.client_id,
                "stop_price": None if order is None else order.stop_price,
                "quantity": None if order is None else order.quantity,
                "held_closes": [o.client_id for o in slot.waiting],
            })
        return rows

    # -- outcomes of stop orders (from the gateway, through the account) --------------------------
    def opened(self, order: Order) -> None:
        """The exchange says the stop rests."""
        slot = self._slot_of(order)
        if slot is None or slot.state != "placing":
            return
        slot.state = "resting"
        slot.retry_pause_s = 0.0
        self._step(slot)

    def filled(self, fill: Fill) -> None:
        """The stop fired on the exchange: book its fill; closes held meanwhile were decided before it and are dropped.

        Sent as they are they could sell what the stop already sold. The position manager sends
        again what is still wanted of them, capped at what is left (`stop_filled`).
        """
        slot = self._slot_of(fill.order)
        held: list[Order] = []
        if slot is not None:
            slot.order = None
            slot.state = "idle"
            held, slot.waiting = slot.waiting, []
        self._owner.deliver_fill(fill)
        for order in held:
            self._owner.deliver_drop(order, "cancelled", "stop_filled", "the stop filled on the exchange before this close was sent")
        if slot is not None:
            self._step(slot)

    def dropped(self, order: Order, outcome: Literal["rejected", "cancelled"], kind: str, reason: str) -> None:
        """The stop ended unfilled: cancelled by us (moved or released), by someone else, or refused when placed."""
        slot = self._slot_of(order)
        if slot is not None:
            if outcome == "rejected" and slot.state == "placing":
                slot.refused = slot.desired if self._same(order, slot.desired) else None
                slot.refused_kind = kind
                slot.retry_pause_s = min(_RETRY_MAX_S, max(_RETRY_MIN_S, slot.retry_pause_s * 2))
                slot.retry_at = self._gateway.now() + slot.retry_pause_s
            elif slot.state == "cancelling" and outcome == "cancelled":
                kind = "stop_moved" if slot.desired is not None and not slot.closed else "stop_released"
            slot.order = None
            slot.state = "idle"
        self._owner.deliver_drop(order, outcome, kind, reason)
        if slot is not None:
            self._step(slot)

    # -- the one decision ---------------------------------------------------------------------------
    def _step(self, slot: StopSlot) -> None:
        """Move the exchange one operation closer to what the slot wants; outcomes call this again."""
        if not self._armed or not self._gateway.running:
            return
        order = slot.order
        if order is not None:
            if slot.state in ("resting", "placing") and (slot.waiting or not self._matches(slot)):
                before, slot.state = slot.state, "cancelling"
                self._gateway.cancel(order, partial(self._cancel_dropped, slot, order, before))
            return
        if slot.waiting:
            waiting, slot.waiting = slot.waiting, []
            for close in waiting:
                self._gateway.send(self._owner, close)
        spec = slot.desired
        if spec is None or slot.closed:
            self.slots.pop(slot.position_id, None)
            return
        if spec == slot.refused or spec.quantity <= 0 or not self._gateway.supports_stops(spec.symbol):
            return
        stop = self._owner.new_order(
            spec.symbol, spec.side, spec.quantity, "close", slot.position_id, spec.reason, spec.ts, spec.price,
            order_type="stop", stop_price=spec.price,
        )
        slot.order = stop
        slot.state = "placing"
        self._owner.announce(stop)
        self._gateway.send(self._owner, stop)

    def _cancel_dropped(self, slot: StopSlot, order: Order, before: SlotState) -> None:
        """The cancel's turn could not be journalled, so it never went out: the stop is as it was (resting, or being placed)."""
        if slot.order is order and slot.state == "cancelling":
            slot.state = before

    def _slot_of(self, order: Order) -> StopSlot | None:
        slot = self.slots.get(order.position_id)
        return slot if slot is not None and slot.order is order else None

    def _matches(self, slot: StopSlot) -> bool:
        return slot.order is not None and self._same(slot.order, slot.desired)

    def _same(self, order: Order, spec: StopSpec | None) -> bool:
        if spec is None or order.stop_price is None:
            return False
        return self._gateway.same_stop(order.symbol, order.quantity, order.stop_price, spec.quantity, spec.price)
