"""The shared risk manager: per-strategy and global limits, and the kill switch.

Money is never added across currencies: each strategy counts in its symbol's quote currency,
and the global limits (exposure, daily loss) hold per currency, over the strategies trading in it.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.config.currency import RISK_LIMITS, limit_in, limit_problem
from bot.config.models import GlobalRiskConfig, StrategyRiskConfig
from bot.errors import StrategyStateError

_DAY_MS = 86_400_000


class StrategyRisk:
    """One strategy's view of the risk manager, bound to its id, limits and currency at construction."""

    __slots__ = ("strategy_id", "limits", "currency", "_manager", "exposure", "day", "day_pnl")

    def __init__(self, manager: "RiskManager", strategy_id: str, limits: StrategyRiskConfig, currency: str) -> None:
        self._manager = manager
        self.strategy_id = strategy_id
        self.limits = limits
        # The quote currency its balance, PnL and notional are in.
        self.currency = currency
        # Notional per position id, so exactly what an entry added is released at its exit.
        self.exposure: dict[str, float] = {}
        self.day = -1
        self.day_pnl = 0.0

    def check_open(self, quantity: float, price: float, open_positions: int, ts: int) -> tuple[str, str] | None:
        """Return (rule, reason) when an entry must be refused, else None."""
        manager = self._manager
        if manager.kill_switch:
            return "kill_switch", "kill switch engaged: global daily loss limit reached"
        self._roll_day(ts)
        limits = self.limits
        if open_positions >= limits.max_open_positions:
            return "max_open_positions", f"{open_positions} open positions, limit {limits.max_open_positions}"
        if limits.max_position_size is not None and quantity > limits.max_position_size:
            return "max_position_size", f"quantity {quantity} above limit {limits.max_position_size}"
        if limits.max_daily_loss is not None and -self.day_pnl >= limits.max_daily_loss:
            return "max_daily_loss", f"daily loss {-self.day_pnl:.8g} reached limit {limits.max_daily_loss}"
        cap = limit_in(manager.limits.max_total_exposure, self.currency)
        if cap is not None:
            total = manager.total_exposure(self.currency) + quantity * price
            if total > cap:
                return "max_total_exposure", f"total exposure would be {total:.8g} {self.currency}, limit {cap}"
        return None

    def on_entry(self, position_id: str, notional: float) -> None:
        """Count an accepted entry's notional as exposure from the moment it is sent."""
        self.exposure[position_id] = notional

    def on_exit(self, position_id: str, fraction: float, net_pnl: float, ts: int) -> None:
        """Release `fraction` of a position's exposure and book PnL net of fees for the day."""
        notional = self.exposure.get(position_id)
        if notional is not None:
            if fraction >= 1.0:
                del self.exposure[position_id]
            else:
                self.exposure[position_id] = notional * (1.0 - fraction)
        self.book(net_pnl, ts)

    def release(self, position_id: str) -> None:
        """Forget the exposure of an entry that will not fill."""
        self.exposure.pop(position_id, None)

    def book(self, net_pnl: float, ts: int) -> None:
        """Add realised PnL net of fees (negative for a fee alone) to today's tally."""
        self._roll_day(ts)
        self.day_pnl += net_pnl
        self._manager.book(self.strategy_id, self.currency, net_pnl, ts)

    def _roll_day(self, ts: int) -> None:
        day = ts // _DAY_MS
        if day != self.day:
            self.day, self.day_pnl = day, 0.0


class _DayTally:
    """The realised PnL net of fees of one currency's strategies on one UTC day."""

    __slots__ = ("day", "pnl")

    def __init__(self) -> None:
        self.day = -1
        self.pnl = 0.0


class RiskManager:
    """Checks every entry against its strategy's limits and the global ones; attributes all to a strategy id.

    Daily loss is realised PnL net of fees per UTC day (by event time), tallied per quote
    currency. The global limits hold per currency: the exposure cap compares the open notional
    of the strategies trading in a currency with that currency's cap, and a currency's daily
    loss reaching its limit engages the kill switch, which stops new entries everywhere (in
    every currency) until `reset_kill_switch`. Exits are never blocked.
    """

    def __init__(self, limits: GlobalRiskConfig, on_kill_switch: Callable[[dict[str, Any]], None]) -> None:
        self.limits = limits
        self._on_kill_switch = on_kill_switch
        self._views: dict[str, StrategyRisk] = {}
        self._days: dict[str, _DayTally] = {}
        self.kill_switch = False

    def bind(self, strategy_id: str, limits: StrategyRiskConfig, currency: str) -> StrategyRisk:
        """Create the risk view of a strategy trading in `currency`; a strategy id is bound once until `forget`.

        StrategyStateError when a global limit cannot hold for it: a plain number while other
        strategies trade in another currency, or an object without an entry for its currency.
        """
        if strategy_id in self._views:
            raise ValueError(f"strategy {strategy_id!r} already has a risk view")
        others = [view.currency for view in self._views.values()]
        for name in RISK_LIMITS:
            problem = limit_problem(name, getattr(self.limits, name), currency, others)
            if problem is not None:
                raise StrategyStateError(f"strategy {strategy_id!r} trades in {currency}, and the global risk.{name} cannot hold for it: {problem}")
        view = StrategyRisk(self, strategy_id, limits, currency)
        self._views[strategy_id] = view
        return view

    def forget(self, strategy_id: str) -> None:
        """Stop tracking an unloaded strategy."""
        self._views.pop(strategy_id, None)

    def tracked(self) -> list[str]:
        """Strategy ids currently tracked."""
        return list(self._views)

    def total_exposure(self, currency: str) -> float:
        """Open notional of the strategies trading in `currency`."""
        return sum(sum(v.exposure.values()) for v in self._views.values() if v.currency == currency)

    def book(self, strategy_id: str, currency: str, net_pnl: float, ts: int) -> None:
        """Add to the currency's daily tally; trip the kill switch at the currency's daily loss limit."""
        tally = self._days.setdefault(currency, _DayTally())
        day = ts // _DAY_MS
        if day != tally.day:
            tally.day, tally.pnl = day, 0.0
        tally.pnl += net_pnl
        cap = limit_in(self.limits.max_daily_loss, currency)
        if cap is not None and not self.kill_switch and -tally.pnl >= cap:
            self.kill_switch = True
            self._on_kill_switch({"daily_loss": -tally.pnl, "limit": cap, "currency": currency, "tripped_by": strategy_id})

    def daily_state(self, strategy_id: str) -> dict[str, float]:
        """Today's loss tallies (the strategy's, and the global one of its currency), to be journalled."""
        view = self._views.get(strategy_id)
        if view is None:
            return {"global_day": -1.0, "global_pnl": 0.0}
        tally = self._days.get(view.currency, _DayTally())
        return {"global_day": float(tally.day), "global_pnl": tally.pnl, "day": float(view.day), "pnl": view.day_pnl}

    def restore_daily(self, strategy_id: str, state: dict[str, float]) -> None:
        """Take back journalled loss tallies after a restart (older days roll over as usual); the global
        tally goes back to the strategy's currency."""
        view = self._views.get(strategy_id)
        if view is None:
            return
        if "day" in state:
            view.day, view.day_pnl = int(state["day"]), state["pnl"]
        tally = self._days.setdefault(view.currency, _DayTally())
        if int(state["global_day"]) >= tally.day:
            tally.day, tally.pnl = int(state["global_day"]), state["global_pnl"]

    def reset_kill_switch(self) -> None:
        """Allow new entries again (an operator's decision)."""
        self.kill_switch = False

    async def start(self) -> None:
        """Nothing to start; here so every service has the same lifecycle."""

    async def stop(self) -> None:
        """Nothing to stop."""
