"""A stand-in for the live gateway that records what accounts send and cancel; the test delivers each outcome by hand.

For interleavings the fake exchange cannot produce on demand (a stop filling between two
requests, a partly filled stop): everything else about stops is tested against the fake.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, Literal

from bot.clock import WallClock
from bot.config.execution import ExecutionConfig
from bot.live.execution import LiveExchange, TrackedOrder
from bot.live.live_account import LiveAccount
from bot.trading.orders import Fill, Order
from bot.trading.positions import PositionManager
from tests.support import Rig, candles_from, strategy

SYM = "BTC/USD"


class StandInGateway(LiveExchange):
    """LiveExchange with sending and cancelling recorded instead of done; outcomes come from `rest`, `fill`, `drop`."""

    def __init__(self, **settings: Any) -> None:
        exchange = SimpleNamespace(
            id="stand-in",
            markets={SYM: {"info": {"orderTypes": ["LIMIT", "MARKET", "STOP_LOSS"]}}},
            amount_to_precision=lambda s, v: f"{v:.8f}",
            price_to_precision=lambda s, v: f"{v:.2f}",
            has={},
        )
        super().__init__(exchange, ExecutionConfig(**settings), WallClock(), logging.getLogger("bot.tests.stand_in"))
        self.sent_orders: list[Order] = []
        self.cancels: list[str] = []
        self._stops_armed = True

    @property
    def running(self) -> bool:
        return True

    def send(self, account: LiveAccount, order: Order) -> None:
        self.tracked[order.client_id] = TrackedOrder(account, order)
        self.sent_orders.append(order)

    def cancel(self, order: Order, dropped: Callable[[], object] | None = None) -> None:
        t = self.tracked.get(order.client_id)
        if t is None or t.cancel_requested:
            return
        t.cancel_requested = True
        self.cancels.append(order.client_id)

    # -- outcomes, as the gateway's apply() would deliver them ----------------------------
    def order(self, cid: str) -> Order:
        return next(o for o in self.sent_orders if o.client_id == cid)

    def rest(self, cid: str) -> None:
        t = self.tracked[cid]
        t.exchange_id = cid
        t.account.opened(t.order)

    def fill(self, cid: str, price: float, qty: float | None = None) -> None:
        t = self.tracked.pop(cid)
        t.account.filled(Fill(t.order, price, t.order.quantity if qty is None else qty, 0.0, 1, "taker"))

    def drop(self, cid: str, outcome: Literal["rejected", "cancelled"] = "cancelled", kind: str = "cancelled") -> None:
        t = self.tracked.pop(cid)
        t.account.dropped(t.order, outcome, kind, "stand-in")

    def sells(self) -> list[tuple[str, str, float]]:
        return [(o.client_id, o.order_type, o.quantity) for o in self.sent_orders if o.side == "sell"]


def live_account(positions: PositionManager) -> LiveAccount:
    """The live account a position manager of the rig trades through."""
    account = positions.account
    assert isinstance(account, LiveAccount), account
    return account


def rig(**exits: Any) -> tuple[Rig, StandInGateway]:
    """A Rig whose one strategy trades through the stand-in, its stop-loss from `exits`."""
    gw = StandInGateway()
    r = Rig(feeds={SYM: "1m"}, exchange=gw)
    r.manager.load(strategy(exits=exits or {"stop_loss_pct": 1.0}, starting_balance=1_000_000.0))
    r.manager.activate("s1")
    r.feed(SYM, candles_from([(100, 100, 100, 100)] * 3))
    return r, gw
