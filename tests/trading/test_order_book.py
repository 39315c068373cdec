"""The order book: what orders in flight reserve, pair groups and broken pairs, released exactly once."""
from __future__ import annotations

from bot.trading.order_book import OrderBook
from bot.trading.orders import Order
from bot.trading.position import Position, TakeProfitLevel


def _order(client_id: str, intent: str = "open", quantity: float = 1.0, position_id: str = "s-p1", **kw: object) -> Order:
    return Order(client_id, "s", "BTC/USD", "buy", quantity, intent, position_id, "test", 0, 100.0, **kw)  # type: ignore[arg-type]


def _position() -> Position:
    position = Position("s-p1", "BTC/USD", "long", 1, 1.0, 1.0, 100.0, 0)
    position.take_profits = [TakeProfitLevel(102.0, 0.5), TakeProfitLevel(104.0, 0.5)]
    return position


def test_entries_are_counted_per_symbol_until_they_end() -> None:
    book = OrderBook([])
    first, second = _order("s-1", quantity=0.5), _order("s-2", quantity=0.25, position_id="s-p2")
    book.entry_sent("BTC/USD", 0.5)
    book.entry_sent("BTC/USD", 0.25)
    assert book.entries == 2 and book.entry_pending_on("BTC/USD") and not book.entry_pending_on("ETH/BTC")
    assert book.entry_ended(first) is None
    assert book.entries == 1 and book.entry_pending_on("BTC/USD")
    book.entry_ended(second)
    assert book.entries == 0 and not book.entry_pending_on("BTC/USD")


def test_a_legs_group_is_announced_with_its_entry_and_handed_back_when_it_ends() -> None:
    book = OrderBook([])
    leg, other = _order("s-1"), _order("s-2", position_id="s-p2")
    book.join_group("s-p1", "s-g1")
    book.join_group("s-p2", "s-g1")
    assert book.group_of_entry(leg) == "s-g1"
    assert book.group_of_entry(_order("s-3", intent="close")) is None
    assert book.entry_ended(leg) == "s-g1"
    assert book.leg_on_its_way("s-g1")  # the other leg still is
    book.entry_ended(other)
    assert not book.leg_on_its_way("s-g1")


def test_a_broken_pair_is_taken_once() -> None:
    book = OrderBook([])
    book.mark_broken("s-g1")
    assert not book.take_broken(None) and not book.take_broken("s-g2")
    assert book.take_broken("s-g1") and not book.take_broken("s-g1")


def test_a_close_reserves_until_its_fill_ends_the_whole_order() -> None:
    position = _position()
    order = _order("s-2", intent="close", quantity=0.5)
    OrderBook.close_sent(position, 0.5)
    assert position.open_quantity == 0.5
    OrderBook.close_filled(position, order)
    assert position.pending_close == 0.0


def test_a_refused_rung_close_frees_its_rung_and_a_stop_reserves_nothing() -> None:
    position = _position()
    rung = _order("s-2", intent="close", quantity=0.5, rung=0)
    OrderBook.close_restored(position, rung)
    assert position.pending_close == 0.5 and [tp.done for tp in position.take_profits] == [True, False]
    assert OrderBook.close_dropped(position, rung)
    assert position.pending_close == 0.0 and [tp.done for tp in position.take_profits] == [False, False]
    stop = _order("s-3", intent="close", quantity=1.0, order_type="stop", stop_price=95.0)
    assert not OrderBook.close_dropped(position, stop)
    OrderBook.close_filled(position, stop)
    assert position.pending_close == 0.0
