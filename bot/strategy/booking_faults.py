"""The relay between the live gateway, which finds that a strategy's fill could not be booked, and the strategy manager,
which decides what that strategy's failure means: built before both, given to both at construction."""
from __future__ import annotations

import logging
from collections.abc import Callable

# (strategy id, what booking its fill or refusal raised)
BookingErrorHook = Callable[[str, BaseException], None]


class BookingFaults:
    """Failed bookings reported by the gateway (built first), handled by the one strategy manager built with this relay."""

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._handler: BookingErrorHook | None = None

    def handled_by(self, handler: BookingErrorHook) -> None:
        """Called once, by the strategy manager's constructor: every report goes to `handler` from then on."""
        if self._handler is not None:
            raise ValueError("booking faults are already handled by a strategy manager")
        self._handler = handler

    def report(self, strategy_id: str, exc: BaseException) -> None:
        """Hand a failed booking to the strategy manager."""
        if self._handler is None:
            # Only the manager's factory opens accounts, so nothing books before it exists; the
            # exception's text may hold what the gateway redacts, so only its type is logged.
            self._log.error("[%s] booking an exchange fill failed: %s", strategy_id, type(exc).__name__)
            return
        self._handler(strategy_id, exc)
