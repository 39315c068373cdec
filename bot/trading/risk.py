"""The shared risk manager: per-strategy and global limits, and the kill switch.

Money is never added across currencies: each strategy counts in its symbol's quote currency
(a symbol not written BASE/QUOTE is a currency group of its own), and the global limits
(exposure, daily loss) hold per currency group, over the strategies trading in it.
"""
from __future__ import annotations

from typing import Protocol

from msgspec import Struct

from bot.bus import EventBus
from bot.config.currency import RISK_LIMITS, currency_label, group_collision, in_currency, limit_in, limit_problem, quote_currency, quote_known
from bot.config.models import GlobalRiskConfig, StrategyRiskConfig
from bot.errors import StrategyStateError
from bot.events import Frozen, KillSwitch

_DAY_MS = 86_400_000


class Trip(Struct, frozen=True):
    """The kill switch engaged by a booking: what the KillSwitch event announces."""

    daily_loss: float
    limit: float
    currency: str
    tripped_by: str


class RiskView(Protocol):
    """What one strategy's book asks and tells the risk manager: a StrategyRisk, or the cluster's tape of one (bot.cluster.tape)."""

    limits: StrategyRiskConfig

    def check_open(self, quantity: float, price: float, open_positions: int, ts: int) -> tuple[str, str] | None: ...

    def on_entry(self, position_id: str, notional: float) -> None: ...

    def on_exit(self, position_id: str, fraction: float, net_pnl: float, ts: int) -> None: ...

    def release(self, position_id: str) -> None: ...

    def book(self, net_pnl: float, ts: int) -> None: ...


class StrategyRisk:
    """One strategy's view of the risk manager, bound to its id, limits, symbol and bus at construction."""

    __slots__ = ("strategy_id", "limits", "symbol", "currency", "_manager", "_bus", "exposure", "day", "day_pnl")

    def __init__(self, manager: RiskManager, strategy_id: str, limits: StrategyRiskConfig, symbol: str, bus: EventBus) -> None:
        self._manager = manager
        # Where a kill switch this strategy's booking trips is announced (market-wide, untagged).
        self._bus = bus
        self.strategy_id = strategy_id
        self.limits = limits
        self.symbol = symbol
        # The currency group its balance, PnL and notional are in (quote_currency): its tallies and limits are keyed by it.
        self.currency = quote_currency(symbol)
        # Notional per position id, so exactly what an entry added is released at its exit.
        self.exposure: dict[str, float] = {}
        self.day = -1
        self.day_pnl = 0.0

    def check_open(self, quantity: float, price: float, open_positions: int, ts: int) -> tuple[str, str] | None:
        """Return (rule, reason) when an entry must be refused, else None."""
        manager = self._manager
        if manager.kill_switch:
            return "kill_switch", manager.kill_switch_reason()
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
                return "max_total_exposure", f"total exposure would be {in_currency(f'{total:.8g}', self.symbol)}, limit {cap}"
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
        trip = self._manager.book(self.strategy_id, self.currency, net_pnl, ts)
        if trip is not None:
            self._bus.publish(KillSwitch, None, trip.daily_loss, trip.limit, trip.currency, trip.tripped_by)

    def _roll_day(self, ts: int) -> None:
        day = ts // _DAY_MS
        if day != self.day:
            self.day, self.day_pnl = day, 0.0

    def pnl_on(self, ts: int) -> float:
        """The tally of the UTC day of `ts`: 0 when nothing was booked on it yet (the stored one is of an earlier day)."""
        return self.day_pnl if self.day == ts // _DAY_MS else 0.0


class DailyTally(Frozen, frozen=True):
    """A daily loss tally as journalled: the realised PnL net of fees in `currency` on UTC day number `day` (-1: none booked)."""

    currency: str
    day: int
    pnl: float


class _DayTally:
    """The realised PnL net of fees of one currency's strategies on one UTC day."""

    __slots__ = ("day", "pnl")

    def __init__(self) -> None:
        self.day = -1
        self.pnl = 0.0

    def state(self, currency: str) -> DailyTally:
        """The tally as journalled, with the currency it is in."""
        return DailyTally(currency, self.day, self.pnl)


class RiskManager:
    """Checks every entry against its strategy's limits and the global ones; attributes all to a strategy id.

    Daily loss is realised PnL net of fees per UTC day (by event time), tallied per currency
    group: the quote currency, or a symbol not written BASE/QUOTE on its own (quote_currency).
    The global limits hold per group: the exposure cap compares the open notional of the
    strategies trading in a group with that group's cap, and a group's daily loss reaching its
    limit engages the kill switch, which stops new entries everywhere (in every currency) until
    `reset_kill_switch`. Exits are never blocked.

    To outlive a restart, each strategy's own tally (`daily_state`) and each currency's
    (`changed_tallies`, the currencies booked since the last call) are journalled apart and
    restored apart (`restore_daily`, `restore_tally`): a currency's tally is the sum over all of
    its strategies, which no one strategy's record can hold.
    """

    def __init__(self, limits: GlobalRiskConfig) -> None:
        self.limits = limits
        self._views: dict[str, StrategyRisk] = {}
        self._days: dict[str, _DayTally] = {}
        # Currencies whose tally was booked since `changed_tallies` last answered.
        self._changed: set[str] = set()
        self.kill_switch = False
        # The currency whose daily loss engaged the kill switch (None: not known, such as one engaged before a restart by an older journal).
        self.tripped_in: str | None = None

    def bind(self, strategy_id: str, limits: StrategyRiskConfig, symbol: str, bus: EventBus) -> StrategyRisk:
        """Create the risk view of a strategy trading `symbol` (in its currency group), announcing on `bus` the kill switch
        its booking trips; a strategy id is bound once until `forget`.

        StrategyStateError when a global limit cannot hold for it: a plain number while other
        strategies trade in another currency group, or an object without an entry for its
        group; or when its symbol is not written BASE/QUOTE and named like another's quote currency.
        """
        if strategy_id in self._views:
            raise ValueError(f"strategy {strategy_id!r} already has a risk view")
        others = [view.symbol for view in self._views.values()]
        clash = group_collision(symbol, others)
        if clash is not None:
            raise StrategyStateError(f"strategy {strategy_id!r}: {clash}")
        for name in RISK_LIMITS:
            problem = limit_problem(getattr(self.limits, name), symbol, others)
            if problem is not None:
                raise StrategyStateError(
                    f"strategy {strategy_id!r} trades in {currency_label(symbol)}, and the global risk.{name} cannot hold for it: {problem}"
                )
        view = StrategyRisk(self, strategy_id, limits, symbol, bus)
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

    def book(self, strategy_id: str, currency: str, net_pnl: float, ts: int) -> Trip | None:
        """Add to the currency's daily tally; engage the kill switch at the currency's daily loss limit and return the trip."""
        tally = self._days.get(currency)
        if tally is None:  # not setdefault: that would build a tally on every booking
            tally = self._days[currency] = _DayTally()
        day = ts // _DAY_MS
        if day != tally.day:
            tally.day, tally.pnl = day, 0.0
        tally.pnl += net_pnl
        self._changed.add(currency)
        cap = limit_in(self.limits.max_daily_loss, currency)
        if cap is not None and not self.kill_switch and -tally.pnl >= cap:
            self.engage(currency)
            return Trip(-tally.pnl, cap, currency, strategy_id)
        return None

    def engage(self, currency: str | None) -> None:
        """Engage the kill switch, tripped by the daily loss in `currency` (None: not known)."""
        self.kill_switch = True
        self.tripped_in = currency

    def kill_switch_reason(self) -> str:
        """Why entries are refused while the kill switch is engaged, naming the currency that tripped it."""
        if self.tripped_in is None:
            return "kill switch engaged: a global daily loss limit was reached"
        where = next((currency_label(v.symbol) for v in self._views.values() if v.currency == self.tripped_in), self.tripped_in)
        return f"kill switch engaged: the global daily loss limit in {where} was reached"

    def daily_state(self, strategy_id: str) -> DailyTally | None:
        """The strategy's own loss tally as journalled; None for a strategy not tracked."""
        view = self._views.get(strategy_id)
        if view is None:
            return None
        return DailyTally(view.currency, view.day, view.day_pnl)

    def day_pnl(self, strategy_id: str, now_ms: int) -> float:
        """The strategy's realised PnL net of fees on the UTC day of `now_ms` (the caller's clock)."""
        view = self._views.get(strategy_id)
        return 0.0 if view is None else view.pnl_on(now_ms)

    def currency_days(self, now_ms: int) -> dict[str, dict[str, float | None]]:
        """Per currency (of the strategies tracked, or booked in today): the global realised PnL net of
        fees on the UTC day of `now_ms` (the caller's clock) and the daily loss limit (None: no limit)."""
        today = now_ms // _DAY_MS
        currencies = [view.currency for view in self._views.values()] + [c for c, tally in self._days.items() if tally.day == today]
        days: dict[str, dict[str, float | None]] = {}
        for currency in dict.fromkeys(currencies):
            tally = self._days.get(currency)
            day_pnl = tally.pnl if tally is not None and tally.day == today else 0.0
            days[currency] = {"day_pnl": day_pnl, "max_daily_loss": limit_in(self.limits.max_daily_loss, currency)}
        return days

    def tally(self, currency: str) -> DailyTally:
        """A currency's global tally as journalled (day -1: nothing booked in it yet)."""
        return self._days.get(currency, _DayTally()).state(currency)

    def changed_tallies(self) -> dict[str, DailyTally]:
        """The global tallies of the currencies booked since the last call, by currency."""
        changed = {currency: self.tally(currency) for currency in sorted(self._changed)}
        self._changed.clear()
        return changed

    def restore_daily(self, strategy_id: str, tally: DailyTally) -> None:
        """Take back a strategy's journalled own tally (an older day rolls over as usual).

        A tally of another currency than the strategy's (its symbol changed) is not taken back;
        one of the currency "" is, for a symbol not written BASE/QUOTE (an older version counted
        all such symbols in "", and the tally is still the strategy's own).
        """
        view = self._views.get(strategy_id)
        if view is not None and (tally.currency == view.currency or (tally.currency == "" and not quote_known(view.symbol))):
            view.day, view.day_pnl = tally.day, tally.pnl

    def restore_tally(self, tally: DailyTally) -> None:
        """Take back a currency's journalled global tally unless a later day's is already here."""
        current = self._days.setdefault(tally.currency, _DayTally())
        if tally.day >= current.day:
            current.day, current.pnl = tally.day, tally.pnl

    def reset_kill_switch(self) -> None:
        """Allow new entries again (an operator's decision)."""
        self.kill_switch = False
        self.tripped_in = None

    async def start(self) -> None:
        """Nothing to start; here so every service has the same lifecycle."""

    async def stop(self) -> None:
        """Nothing to stop."""
