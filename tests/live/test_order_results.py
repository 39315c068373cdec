"""Reading ccxt order structures: a buyer's commission taken in the asset bought (the duplicate-id refusal: test_exchange_errors)."""
from __future__ import annotations

import pytest

from bot.live.order_results import outcome_of
from bot.trading.orders import Order
from tests.support import approx_float


def _order(side: str) -> Order:
    return Order("s1-1", "s1", "ETH/BTC", side, 0.5, "open", "s1-p1", "test", 0, 0.05)  # type: ignore[arg-type]


def test_a_commission_in_the_bought_asset_reduces_the_quantity_held_and_is_valued_in_the_quote() -> None:
    reply = {"id": "7", "status": "closed", "filled": 0.5, "average": 0.05, "fees": [{"currency": "ETH", "cost": 0.0005}]}
    fill = outcome_of(_order("buy"), reply, 0, 10.0).fill
    assert fill is not None
    assert fill.quantity == pytest.approx(0.4995) and fill.fee == pytest.approx(0.0005 * 0.05)


def test_a_commission_in_the_quote_leaves_the_quantity_whole() -> None:
    reply = {"id": "7", "status": "closed", "filled": 0.5, "average": 0.05, "fee": {"currency": "BTC", "cost": 0.000025}}
    for side in ("buy", "sell"):
        fill = outcome_of(_order(side), reply, 0, 10.0).fill
        assert fill is not None and fill.quantity == 0.5 and fill.fee == pytest.approx(0.000025)



def test_what_the_market_cannot_sell_of_a_buy_less_its_fee_stays_out_of_the_position_and_is_paid_as_a_fee() -> None:
    reply = {"id": "7", "status": "closed", "filled": 0.5, "average": 0.05, "fees": [{"currency": "ETH", "cost": 0.0005}]}
    asked: list[tuple[str, float]] = []

    def to_step(symbol: str, quantity: float) -> float:
        asked.append((symbol, quantity))
        return float(int(quantity * 1000)) / 1000  # a 0.001 lot step, rounded down

    fill = outcome_of(_order("buy"), reply, 0, 10.0, to_step).fill
    assert fill is not None and asked == [("ETH/BTC", approx_float(0.4995))]
    assert fill.quantity == 0.499 and fill.fee == pytest.approx(0.001 * 0.05)  # the commission and the dust
    # Only a buy paying in the coin bought is rounded: a sell, or a commission in the quote, is what it filled.
    for side, fees in (("sell", [{"currency": "ETH", "cost": 0.0005}]), ("buy", [{"currency": "BTC", "cost": 0.000025}])):
        fill = outcome_of(_order(side), {**reply, "fees": fees}, 0, 10.0, to_step).fill
        assert fill is not None and fill.quantity == 0.5
    assert len(asked) == 1


def test_on_a_perpetual_the_position_is_what_filled_whatever_currency_the_fee_is_in() -> None:
    """COIN-M: BTC/USD:BTC charges its fee in BTC, the base of the symbol, yet not taken from the contracts bought."""
    order = Order("s1-1", "s1", "BTC/USD:BTC", "buy", 10.0, "open", "s1-p1", "test", 0, 60_000.0)
    reply = {"id": "7", "status": "closed", "filled": 10.0, "average": 60_000.0, "fees": [{"currency": "BTC", "cost": 0.0000083}]}
    fill = outcome_of(order, reply, 0, 5.0, lambda symbol, quantity: float(int(quantity)), spot=False).fill
    assert fill is not None and fill.quantity == 10.0


def test_a_spot_buy_whose_fee_is_not_reported_is_taken_to_have_paid_it_in_the_coin_bought() -> None:
    reply = {"id": "7", "status": "closed", "filled": 0.5, "average": 0.05}
    fill = outcome_of(_order("buy"), reply, 0, 10.0, lambda symbol, quantity: float(int(quantity * 1000)) / 1000).fill
    assert fill is not None and fill.quantity == 0.499  # 0.5 less 10 bps is 0.4995, then the step
    assert fill.fee == approx_float(0.5 * 0.05 * 0.001 + 0.0005 * 0.05)  # the configured rate, and the dust
