"""Booking fills into one strategy's positions and portfolio, and marking open positions to market."""
from __future__ import annotations

from msgspec import Struct

from bot.events import TradeRecord
from bot.trading.orders import Fill
from bot.trading.portfolio import Portfolio
from bot.trading.position import DUST, Position


class ExitBooked(Struct, frozen=True):
    """What booking a reducing fill did: the quantity it took, that share of the position, its realised PnL, whether it closed it."""

    quantity: float
    fraction: float
    realised: float
    closed: bool


class Accounting:
    """Books fills into positions and the portfolio, keeps the latest mark per symbol and revalues open positions.

    The portfolio keeps equity = start + realised - fees + unrealised after every booking and
    every revaluation. `positions` is the manager's own dict of open positions (read here).
    """

    __slots__ = ("_portfolio", "marks", "_open", "_set_value")

    def __init__(self, portfolio: Portfolio, positions: dict[str, Position]) -> None:
        self._portfolio = portfolio
        # A live view of the manager's dict and the bound setter: revalue runs per candle per
        # strategy holding a position, and these were two lookups and a method call each time.
        self._open = positions.values()
        self._set_value = portfolio.revalue
        self.marks: dict[str, float] = {}

    @property
    def portfolio(self) -> Portfolio:
        """The portfolio fills are booked into (fixed at construction: `revalue` holds its bound setter)."""
        return self._portfolio

    def book_entry(self, position: Position, fill: Fill) -> None:
        """Book an entry's fill (the position holds its quantity, price and fee already) and revalue."""
        self.portfolio.on_fill(position.direction, fill.price, fill.quantity, fill.fee, True, 0.0)
        self.marks[position.symbol] = fill.price
        self.revalue()

    def book_exit(self, position: Position, fill: Fill) -> ExitBooked:
        """Book a reducing fill into the position (realised PnL, fees, exit value, status) and the portfolio.

        A remainder below float dust closes the position; the caller removes it from the open
        ones and then revalues.
        """
        qty = min(fill.quantity, position.quantity)
        fraction = qty / position.quantity
        realised = position.direction * (fill.price - position.entry_price) * qty
        position.quantity -= qty
        position.closed_quantity += qty
        position.exit_value += fill.price * qty
        position.realised += realised
        position.fees += fill.fee
        position.exit_reason = fill.order.reason
        position.exit_ts = fill.ts
        self.portfolio.on_fill(position.direction, fill.price, qty, fill.fee, False, realised)
        self.marks[position.symbol] = fill.price
        closed = position.quantity <= position.initial_quantity * DUST
        if closed:
            position.quantity = 0.0
            position.status = "closed"
        else:
            position.status = "partially_closed"
        return ExitBooked(qty, fraction, realised, closed)

    def revalue(self) -> None:
        """Value the open positions at their symbols' latest marks."""
        value = 0.0
        unrealised = 0.0
        marks = self.marks
        for position in self._open:
            mark = marks[position.symbol]
            signed = position.direction * position.quantity
            value += signed * mark
            unrealised += signed * (mark - position.entry_price)
        self._set_value(value, unrealised)

    def mark(self, symbol: str, price: float) -> None:
        """Take a symbol's latest price (revalue after)."""
        self.marks[symbol] = price

    def mark_of(self, position: Position) -> float:
        """A position's latest mark (its entry price before any)."""
        return self.marks.get(position.symbol, position.entry_price)


def trade_record(strategy_id: str, position: Position) -> TradeRecord:
    """The closed trade as one row: pnl is net of fees, exit price is the quantity-weighted average."""
    return TradeRecord(
        strategy_id, position.id, position.symbol, position.side, position.initial_quantity, position.entry_ts,
        position.entry_price, position.exit_ts,
        position.exit_value / position.closed_quantity if position.closed_quantity else 0.0,
        position.realised - position.fees, position.fees, position.exit_reason, position.group,
    )
