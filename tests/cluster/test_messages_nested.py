"""Unknown fields are refused in nested cluster structs too (a position's state, a pair's legs): a message of a later shape is never read silently as this one."""
from __future__ import annotations

import msgspec
import orjson
import pytest

from bot.cluster.messages import Decision, MirrorPosition, PositionStateMsg, ProtocolError, Turn, TurnEntry, View, action_msg, decode, encode
from bot.trading.actions import OpenPair, OpenPosition
from bot.trading.position import Position


def _with(message: bytes, path: tuple[object, ...]) -> bytes:
    data = orjson.loads(message)
    node = data
    for step in path:
        node = node[step]
    node["extra"] = 1
    return orjson.dumps(data)


def test_an_unknown_field_in_a_pair_leg_is_refused() -> None:
    pair = OpenPair(OpenPosition("ETH/BTC", "long", 1.0), OpenPosition("XMR/BTC", "short", 2.0))
    decision = encode(Decision(k=1, sid="s", actions=[action_msg(pair)], events=[], failure=None, busy_ns=0))
    with pytest.raises(ProtocolError):
        decode(_with(decision, ("actions", 0)))  # the action itself: refused
    with pytest.raises(ProtocolError):
        decode(_with(decision, ("actions", 0, "long")))  # its leg


def test_an_unknown_field_in_a_position_state_is_refused() -> None:
    # Built as the mind builds it (bot/cluster/mind.py): the journalled record's fields in the message type.
    state = PositionStateMsg(*msgspec.structs.astuple(Position("s-p1", "BTC/USD", "long", 1, 1.0, 1.0, 100.0, 0).record()))
    mirror = MirrorPosition(state=state, pending_close=0.0, trail_anchor=0.0, closed_quantity=0.0, exit_value=0.0, exit_reason="", exit_ts=0)
    view = View(positions=[mirror], closed=[], pending_entries=[], marks={})
    turn = encode(Turn(k=1, symbol="BTC/USD", tf="1m", candle=(0, 1.0, 1.0, 1.0, 1.0, 1.0), ts=0, entries=[TurnEntry(sid="s", kind="trade", view=view)]))
    with pytest.raises(ProtocolError):
        decode(_with(turn, ("entries", 0, "view", "positions", 0)))  # the mirror: refused
    with pytest.raises(ProtocolError):
        decode(_with(turn, ("entries", 0, "view", "positions", 0, "state")))  # its state
