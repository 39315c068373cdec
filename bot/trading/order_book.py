"""One strategy's orders in flight: pending entries per symbol, pending closes, pair groups and broken pairs."""
from __future__ import annotations

from bot.trading.orders import Order
from bot.trading.position import Position


class OrderBook:
    """What a strategy's sent and not yet ended orders reserve, so entries and closes are never counted twice.

    `orders` is its exchange account's own pending list (mutated in place by the account), so
    "anything pending?" is a truth test on the hot path.
    """

    __slots__ = ("orders", "entries", "_open_by_symbol", "_groups", "_broken")

    def __init__(self, orders: list[Order]) -> None:
        self.orders = orders
        # Entries sent and not ended yet.
        self.entries = 0
        self._open_by_symbol: dict[str, float] = {}
        # Position id -> pair group of entries sent and not filled yet.
        self._groups: dict[str, str] = {}
        # Pairs one of whose legs the exchange refused while the other was still on its way.
        self._broken: set[str] = set()

    # -- entries ---------------------------------------------------------------------------------
    def entry_sent(self, symbol: str, quantity: float) -> None:
        """An entry of `quantity` on `symbol` is on its way."""
        self._open_by_symbol[symbol] = self._open_by_symbol.get(symbol, 0.0) + quantity
        self.entries += 1

    def entry_ended(self, order: Order) -> str | None:
        """An entry filled or ended unfilled: release it; return its pair group, if it was a leg."""
        symbol = order.symbol
        self._open_by_symbol[symbol] = max(0.0, self._open_by_symbol.get(symbol, 0.0) - order.quantity)
        self.entries -= 1
        return self._groups.pop(order.position_id, None)

    def entry_pending_on(self, symbol: str) -> bool:
        """Whether an entry on `symbol` is on its way."""
        return bool(self._open_by_symbol.get(symbol))

    # -- pairs -----------------------------------------------------------------------------------
    def join_group(self, position_id: str, group: str) -> None:
        """The entry of `position_id` is a leg of pair `group`."""
        self._groups[position_id] = group

    def group_of_entry(self, order: Order) -> str | None:
        """The pair group of an entry still on its way (None for a close or a single entry)."""
        return self._groups.get(order.position_id) if order.intent == "open" else None

    def leg_on_its_way(self, group: str) -> bool:
        """Whether an entry of pair `group` is still on its way."""
        return group in self._groups.values()

    def mark_broken(self, group: str) -> None:
        """A leg of `group` was refused while another is on its way: that one is closed as soon as it fills."""
        self._broken.add(group)

    def take_broken(self, group: str | None) -> bool:
        """Whether `group` was broken (and forget it): the leg that just filled must be closed at once."""
        if group is None or group not in self._broken:
            return False
        self._broken.discard(group)
        return True

    # -- closes ----------------------------------------------------------------------------------
    @staticmethod
    def close_sent(position: Position, quantity: float) -> None:
        """A close of `quantity` is on its way: that much of the position is no longer open to close."""
        position.pending_close += quantity

    @staticmethod
    def close_filled(position: Position, order: Order) -> None:
        """The fill ends its order: the whole order stops being pending, filled in full or not.

        An exchange-side stop was never counted as pending: it protects, it does not reserve.
        """
        if order.order_type != "stop":
            position.pending_close = max(0.0, position.pending_close - order.quantity)

    @staticmethod
    def close_dropped(position: Position, order: Order) -> bool:
        """A close ended unfilled: release it, and a take-profit rung it took may fire again; False for a stop (nothing reserved)."""
        if order.order_type == "stop":
            return False
        position.pending_close = max(0.0, position.pending_close - order.quantity)
        rung = order.rung
        if rung is not None and rung < len(position.take_profits):
            position.take_profits[rung].done = False
        return True

    @staticmethod
    def close_restored(position: Position, order: Order) -> None:
        """A close pending at a crash: reserved again, and the rung it takes has fired (it must not fire again)."""
        position.pending_close += order.quantity
        rung = order.rung
        if rung is not None and rung < len(position.take_profits):
            position.take_profits[rung].done = True
