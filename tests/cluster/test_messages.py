"""Cluster messages: every action kind travels and comes back as itself; what does not fit, or another protocol version, is refused."""
from __future__ import annotations

import msgspec
import pytest

from bot.cluster.messages import Decision, Failure, ProtocolError, action_msg, action_of, decode, encode
from bot.trading.actions import (
    ACTION_KINDS,
    Action,
    ActivateTrailingStop,
    ClosePair,
    ClosePercent,
    OpenPair,
    OpenPosition,
    UpdateStopLoss,
)

ONE_OF_EACH: list[Action] = [
    OpenPosition("BTC/USD", "long", 0.1, "signal", 39_000.5),
    ClosePercent("s-p1", 50.0, "exit"),
    UpdateStopLoss("s-p1", 38_000.0, "strategy"),
    ActivateTrailingStop("s-p1", 0.4, 40_000.0),
    OpenPair(OpenPosition("ETH/BTC", "long", 1.0), OpenPosition("XMR/BTC", "short", 2.0)),
    ClosePair("s-g1", "spread"),
]


def test_every_action_kind_round_trips_through_a_decision() -> None:
    assert sorted(a.kind for a in ONE_OF_EACH) == sorted(ACTION_KINDS)
    decision = Decision(k=3, sid="s", actions=[action_msg(a) for a in ONE_OF_EACH], events=[], failure=None, busy_ns=1)
    back = decode(encode(decision))
    assert isinstance(back, Decision)
    assert [action_of(a) for a in back.actions] == ONE_OF_EACH
    assert [type(action_of(a)) for a in back.actions] == [type(a) for a in ONE_OF_EACH]


def test_a_message_that_does_not_fit_is_refused_naming_the_field() -> None:
    good = msgspec.json.decode(encode(Decision(k=1, sid="s", actions=[], events=[], failure=Failure(type_name="E", message="m", where="f.py:1"), busy_ns=0)))
    with pytest.raises(ProtocolError, match="busy_ns"):
        decode(msgspec.json.encode({**good, "busy_ns": "0"}))
    with pytest.raises(ProtocolError, match="protocol 2"):
        decode(msgspec.json.encode({**good, "v": 2}))
    with pytest.raises(ProtocolError, match="not JSON"):
        decode(b"{")
