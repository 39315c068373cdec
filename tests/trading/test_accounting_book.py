"""Accounting: fills booked into a position and its portfolio by hand-checked numbers; the identity holds after each step."""
from __future__ import annotations

from pytest import approx

from bot.events import PortfolioSnapshot
from bot.trading.accounting import Accounting, trade_record
from bot.trading.orders import Fill, Order
from bot.trading.portfolio import Portfolio
from bot.trading.position import Position


def _fill(intent: str, side: str, price: float, quantity: float, fee: float, reason: str = "test") -> Fill:
    order = Order("s-1", "s", "BTC/USD", side, quantity, intent, "s-p1", reason, 0, price)  # type: ignore[arg-type]
    return Fill(order, price, quantity, fee, 60_000, "taker")


def _identity(snapshot: PortfolioSnapshot) -> bool:
    return bool(snapshot.equity == approx(snapshot.start + snapshot.realised - snapshot.fees + snapshot.unrealised, rel=1e-12))


def test_a_long_booked_in_marked_and_closed_in_two_steps() -> None:
    positions: dict[str, Position] = {}
    accounting = Accounting(Portfolio(1_000.0), positions)
    position = Position("s-p1", "BTC/USD", "long", 1, 2.0, 2.0, 100.0, 0, fees=0.2)
    positions[position.id] = position
    accounting.book_entry(position, _fill("open", "buy", 100.0, 2.0, 0.2))
    assert accounting.portfolio.cash == approx(799.8) and _identity(accounting.portfolio.record())

    accounting.mark("BTC/USD", 105.0)
    accounting.revalue()
    assert accounting.portfolio.unrealised == approx(10.0) and _identity(accounting.portfolio.record())

    half = accounting.book_exit(position, _fill("close", "sell", 110.0, 1.0, 0.11, "take_profit_1"))
    accounting.revalue()
    assert (half.quantity, half.fraction, half.closed) == (1.0, 0.5, False) and half.realised == approx(10.0)
    assert position.status == "partially_closed" and position.quantity == 1.0 and position.exit_reason == "take_profit_1"
    assert accounting.portfolio.unrealised == approx(10.0)  # the rest marked at the fill's price
    assert _identity(accounting.portfolio.record())

    rest = accounting.book_exit(position, _fill("close", "sell", 90.0, 1.0, 0.09, "stop_loss"))
    del positions[position.id]
    accounting.revalue()
    assert rest.closed and (position.status, position.quantity) == ("closed", 0.0)
    snapshot = accounting.portfolio.record()
    assert (snapshot.realised, snapshot.fees, snapshot.unrealised) == approx((0.0, 0.4, 0.0))
    assert snapshot.equity == approx(1_000.0 - 0.4) and _identity(snapshot)
    trade = trade_record("s", position)
    assert (trade.exit_price, trade.pnl, trade.fees) == approx((100.0, -0.4, 0.4)) and trade.exit_reason == "stop_loss"


def test_a_remainder_below_dust_closes_the_position() -> None:
    positions: dict[str, Position] = {}
    accounting = Accounting(Portfolio(1_000.0), positions)
    position = Position("s-p1", "BTC/USD", "short", -1, 0.3, 0.3, 100.0, 0)
    positions[position.id] = position
    accounting.book_entry(position, _fill("open", "sell", 100.0, 0.3, 0.0))
    booked = accounting.book_exit(position, _fill("close", "buy", 90.0, 0.1 + 0.2 - 1e-12, 0.0))
    assert booked.closed and position.quantity == 0.0 and booked.realised == approx(3.0)
