"""What recovery hands a position manager: typed records of journalled positions and pending orders."""
from __future__ import annotations

from dataclasses import dataclass

from bot.events import PositionState
from bot.trading.orders import Order


@dataclass(frozen=True, slots=True)
class JournalledPosition:
    """An open position as the journal last recorded it: its announced state plus what only recovery needs."""

    state: PositionState
    trail_anchor: float
    closed_quantity: float
    exit_value: float
    # False: journalled before the exit rules were kept per position (state's ladder_closes_all
    # and break_even are placeholders then): the strategy's current rules apply.
    rules_kept: bool = True


@dataclass(frozen=True, slots=True)
class PendingOrder:
    """An order the journal holds as sent and not ended, with the pair group of an entry leg."""

    order: Order
    pair_group: str | None = None
