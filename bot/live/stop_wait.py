"""OrdersOnTheirWay: at a graceful stop, the bounded wait for orders whose outcome is coming, before the gateway stops."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

import anyio

from bot.live.execution import LiveExchange

# How often the wait looks again: outcomes arrive from the gateway's own tasks, which announce nothing to wait on.
_TICK_S = 0.05


class SettlingUnloads(Protocol):
    """The strategy manager's unloaded strategies whose orders are in flight (StrategyManager)."""

    def settle(self) -> list[str]: ...

    def settling(self) -> Mapping[str, list[str]]: ...


class OrdersOnTheirWay:
    """Waits until no order is on its way to the exchange and no unloaded strategy is settling, or until told to stop.

    On spot a close first cancels its position's stop, and is sent only when the cancel is
    answered: stopping the gateway in between leaves the position open with no stop. Orders
    resting as asked (a limit, a stop) are not waited for; their outcome may take days and the
    next start reconciles them.
    """

    def __init__(self, gateway: LiveExchange, unloads: SettlingUnloads, log: logging.Logger, tick_s: float = _TICK_S) -> None:
        self._gateway = gateway
        self._unloads = unloads
        self._log = log
        self._tick_s = tick_s

    def pending(self) -> list[str]:
        """Settle the unloads whose orders are all done, then one line per order on its way and per unload still settling."""
        # The periodic settle may be a poll interval (up to 60 s) away; settling may send a close (`unload --close`).
        self._unloads.settle()
        lines = self._gateway.on_their_way()
        lines += [f"[{sid}] unloaded, settling" for sid, waiting in self._unloads.settling().items() if waiting]
        return lines

    async def wait(self, bound_s: float, hurry: anyio.Event) -> list[str]:
        """Wait at most `bound_s` seconds (less once `hurry` is set); return what is still on its way (empty: nothing)."""
        left = self.pending()
        if not left:
            return []
        self._log.info("stopping: waiting up to %g s for what is on its way to the exchange: %s", bound_s, "; ".join(left))
        with anyio.move_on_after(bound_s):
            while left and not hurry.is_set():
                with anyio.move_on_after(self._tick_s):
                    await hurry.wait()
                left = self.pending()
        if not left:
            self._log.info("stopping: every order on its way has its outcome")
        else:
            why = "a second signal ends the wait" if hurry.is_set() else f"still on their way after {bound_s:g} s"
            self._log.warning("stopping: %s: %s; the next start reconciles them", why, "; ".join(left))
        return left
