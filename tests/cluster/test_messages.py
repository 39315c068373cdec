"""Cluster messages: every action kind travels and comes back as itself; what does not fit, or another protocol version, is refused."""
from __future__ import annotations

from typing import Any

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
    with pytest.raises(ProtocolError, match="protocol 3"):
        decode(msgspec.json.encode({**good, "v": 3}))
    with pytest.raises(ProtocolError, match="not JSON"):
        decode(b"{")


def _decision() -> dict[str, Any]:
    action = action_msg(ClosePercent("s-p1", 50.0, "exit"))
    failure = Failure(type_name="E", message="m", where="f.py:1")
    decoded: dict[str, Any] = msgspec.json.decode(encode(Decision(k=1, sid="s", actions=[action], events=[], failure=failure, busy_ns=0)))
    return decoded


def test_the_version_is_read_first_and_required() -> None:
    good = _decision()
    without = {name: value for name, value in good.items() if name != "v"}
    with pytest.raises(ProtocolError, match="missing required field `v`"):
        decode(msgspec.json.encode(without))
    # Another version's shape (a field renamed) is refused as that version, not as a missing field.
    renamed = {**without, "v": 3, "step": good["k"]}
    del renamed["k"]
    with pytest.raises(ProtocolError, match="of protocol 3, this bot speaks 2"):
        decode(msgspec.json.encode(renamed))


@pytest.mark.parametrize("where", ["top", "failure", "action"])
def test_a_field_this_protocol_does_not_know_is_refused(where: str) -> None:
    good = _decision()
    if where == "top":
        bad = {**good, "extra": 1}
    elif where == "failure":
        bad = {**good, "failure": {**good["failure"], "extra": 1}}
    else:
        bad = {**good, "actions": [{**good["actions"][0], "extra": 1}]}
    with pytest.raises(ProtocolError, match="unknown field `extra`"):
        decode(msgspec.json.encode(bad))
