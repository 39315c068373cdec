"""The strategy lifecycle: its states, the transitions between them, and the one place a state changes."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal, get_args

from bot.errors import StrategyStateError

StrategyState = Literal["loading", "dormant", "active", "failed", "unloaded", "settling"]
STATES: Final[tuple[StrategyState, ...]] = get_args(StrategyState)

# From each state, the states it may go to. A state may repeat where an operation re-enters it:
# a journalled dormant state restored onto a freshly loaded (dormant) strategy, a warm-up that
# fails again on a failed one. `settling` is an unloaded strategy whose orders are still in flight.
TRANSITIONS: Final[Mapping[StrategyState, frozenset[StrategyState]]] = {
    "loading": frozenset({"dormant", "unloaded"}),
    "dormant": frozenset({"dormant", "active", "failed", "unloaded"}),
    "active": frozenset({"dormant", "failed", "unloaded"}),
    "failed": frozenset({"dormant", "active", "failed", "unloaded"}),
    "unloaded": frozenset({"settling"}),
    "settling": frozenset({"unloaded"}),
}


class IllegalTransitionError(StrategyStateError):
    """A state change the transition table does not allow: a bug in the caller, refused before anything changed."""


class Lifecycle:
    """One strategy's state, changed only along TRANSITIONS."""

    __slots__ = ("strategy_id", "_state")

    def __init__(self, strategy_id: str, state: StrategyState = "loading") -> None:
        self.strategy_id = strategy_id
        self._state: StrategyState = state

    @property
    def state(self) -> StrategyState:
        """The current state."""
        return self._state

    def can(self, target: StrategyState) -> bool:
        """True when the table allows going to `target` from here."""
        return target in TRANSITIONS[self._state]

    def require(self, target: StrategyState) -> None:
        """IllegalTransitionError unless the table allows `target`: called before an operation changes anything."""
        if target not in TRANSITIONS[self._state]:
            raise IllegalTransitionError(f"strategy {self.strategy_id!r} cannot go from {self._state} to {target}")

    def to(self, target: StrategyState) -> None:
        """Go to `target`; IllegalTransitionError (nothing changed) when the table does not allow it."""
        self.require(target)
        self._state = target
