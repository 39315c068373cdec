"""One strategy's portfolio: cash flows and PnL tallies kept separately, so the identity is a real check."""
from __future__ import annotations

from bot.events import PortfolioSnapshot


class Portfolio:
    """Starting balance, cash, realised and unrealised PnL, fees, equity and drawdown of one strategy.

    Cash follows the money (pay for a long, receive for a short, pay fees); realised PnL, fees
    and unrealised PnL are tallied on their own. Equity is cash plus the market value of open
    positions, and the accounting identity equity = start + realised - fees + unrealised
    must then hold after every fill and every mark.
    """

    __slots__ = ("start", "cash", "realised", "fees", "unrealised", "market_value", "peak_equity", "max_drawdown", "max_drawdown_pct")

    def __init__(self, starting_balance: float) -> None:
        self.start = starting_balance
        self.cash = starting_balance
        self.realised = 0.0
        self.fees = 0.0
        self.unrealised = 0.0
        self.market_value = 0.0
        self.peak_equity = starting_balance
        self.max_drawdown = 0.0
        self.max_drawdown_pct = 0.0

    @property
    def equity(self) -> float:
        """Cash plus the market value of open positions."""
        return self.cash + self.market_value

    def on_fill(self, direction: int, price: float, quantity: float, fee: float, opening: bool, realised: float) -> None:
        """Book a fill: `direction` is +1 for a long position's fill, -1 for a short's."""
        signed = direction * price * quantity
        self.cash += -signed if opening else signed
        self.cash -= fee
        self.fees += fee
        self.realised += realised

    def revalue(self, market_value: float, unrealised: float) -> None:
        """Set open positions' value at the latest marks and update the drawdown."""
        self.market_value = market_value
        self.unrealised = unrealised
        equity = self.cash + market_value
        if equity > self.peak_equity:
            self.peak_equity = equity
        else:
            drawdown = self.peak_equity - equity
            if drawdown > self.max_drawdown:
                self.max_drawdown = drawdown
                self.max_drawdown_pct = 100.0 * drawdown / self.peak_equity

    def record(self) -> PortfolioSnapshot:
        """The numbers as the typed record events carry."""
        return PortfolioSnapshot(
            self.start, self.cash, self.cash + self.market_value, self.realised, self.unrealised, self.fees,
            self.market_value, self.peak_equity, self.max_drawdown, self.max_drawdown_pct,
        )

    def restore(self, snapshot: PortfolioSnapshot) -> None:
        """Take back the numbers of a journalled snapshot (crash recovery)."""
        self.start = snapshot.start
        self.cash = snapshot.cash
        self.realised = snapshot.realised
        self.fees = snapshot.fees
        self.unrealised = snapshot.unrealised
        self.market_value = snapshot.market_value
        self.peak_equity = snapshot.peak_equity
        self.max_drawdown = snapshot.max_drawdown
        self.max_drawdown_pct = snapshot.max_drawdown_pct
