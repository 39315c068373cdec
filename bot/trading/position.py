"""One position of a strategy and its exit state (stop, take-profit ladder, trailing stop)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bot.events import PositionState

PositionStatus = Literal["open", "partially_closed", "closed"]
# Quantities left below this fraction of the initial size are float dust, not a position.
DUST = 1e-9


@dataclass(slots=True)
class TakeProfitLevel:
    """One rung of a position's take-profit ladder, with its absolute price and quantity."""

    price: float
    quantity: float
    done: bool = False


@dataclass(slots=True)
class Position:
    """An open, partially closed or closed position of one strategy."""

    id: str
    symbol: str
    side: Literal["long", "short"]
    direction: int
    initial_quantity: float
    quantity: float
    entry_price: float
    entry_ts: int
    stop_loss: float | None = None
    take_profits: list[TakeProfitLevel] = field(default_factory=list)
    trailing_distance_pct: float | None = None
    trailing_activation_price: float | None = None
    trailing_active: bool = False
    trail_anchor: float = 0.0
    trailing_stop: float | None = None
    # The binding stop (tighter of stop-loss and trailing stop), kept current by `refresh_stop`
    # so the per-candle check reads one attribute.
    stop: float | None = None
    stop_kind: str = "stop_loss"
    # Exit rules fixed when the position opened, so a later reload/set never changes them.
    ladder_closes_all: bool = False
    break_even: bool = False
    realised: float = 0.0
    fees: float = 0.0
    exit_value: float = 0.0
    closed_quantity: float = 0.0
    pending_close: float = 0.0
    status: PositionStatus = "open"
    exit_reason: str = ""
    exit_ts: int = 0
    # Legs opened together as one paired action share a group id and are closed together.
    group: str | None = None

    @property
    def open_quantity(self) -> float:
        """The quantity not already being closed by a pending order."""
        return self.quantity - self.pending_close

    @property
    def closable(self) -> bool:
        """True while part of it is not already being closed."""
        return self.pending_close < self.quantity

    def refresh_stop(self) -> None:
        """Recompute the binding stop after the stop-loss or the trailing stop moved."""
        stop, kind = self.stop_loss, "stop_loss"
        trail = self.trailing_stop
        if trail is not None and (stop is None or (trail > stop if self.direction > 0 else trail < stop)):
            stop, kind = trail, "trailing_stop"
        self.stop, self.stop_kind = stop, kind

    def record(self) -> PositionState:
        """The position as the typed record events, journal snapshots and status replies carry."""
        return PositionState(
            self.id, self.symbol, self.side, self.status, self.initial_quantity, self.quantity, self.entry_price, self.entry_ts,
            self.stop_loss, _ladder(self.take_profits) if self.take_profits else (), self.trailing_active,
            self.trailing_distance_pct, self.trailing_activation_price, self.trailing_stop, self.ladder_closes_all,
            self.break_even, self.realised, self.fees, self.group,
        )


def _ladder(levels: list[TakeProfitLevel]) -> tuple[tuple[float, float, bool], ...]:
    return tuple((tp.price, tp.quantity, tp.done) for tp in levels)
