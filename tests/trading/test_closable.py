"""Position.closable and open_quantity: the one guard strategies use before queueing a close."""
from __future__ import annotations

import pytest

from bot.trading.actions import ClosePercent, OpenPosition
from tests.trading.helpers import SYMBOL, Session, flat, quiet


def test_a_position_is_closable_until_closes_cover_its_whole_quantity() -> None:
    session = Session(quiet(quantity=2.0))
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 2.0))
    session.bars(flat(100))  # the entry fills at this open
    position = session.position()
    assert (position.closable, position.open_quantity) == (True, 2.0)
    session.act(ClosePercent(position.id, 25.0))  # pending until the next open
    assert position.closable and position.open_quantity == pytest.approx(1.5)
    session.act(ClosePercent(position.id, 100.0))
    assert (position.closable, position.open_quantity) == (False, 0.0)
    session.bars(flat(100))  # both closes fill: nothing left
    assert session.orch().positions.positions == {}
