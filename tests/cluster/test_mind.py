"""A worker's mirror of a strategy's positions: every field of Position, read as the PositionManager is read."""
from __future__ import annotations

import dataclasses

from bot.cluster.messages import MirrorPosition, Turn, TurnEntry, View, decode, encode
from bot.cluster.mind import MirrorPositions, mirror_of, mirrored, view_of
from bot.events import PositionState
from bot.ohlcv import Candle
from bot.strategy.base import PositionView
from bot.trading.position import Position, TakeProfitLevel
from tests.support import Rig, strategy


def _busy_position() -> Position:
    position = Position("s-p3", "BTC/USD", "short", -1, 2.0, 1.5, 40_000.0, 1_640_995_200_000, stop_loss=41_000.0)
    position.take_profits = [TakeProfitLevel(39_000.0, 0.5, True), TakeProfitLevel(38_000.0, 1.0)]
    position.trailing_distance_pct, position.trailing_activation_price, position.trailing_active = 0.5, 39_500.0, True
    position.trail_anchor, position.trailing_stop = 39_100.0, 39_295.5
    position.ladder_closes_all, position.break_even = True, True
    position.realised, position.fees, position.exit_value, position.closed_quantity = 500.0, 3.25, 19_500.0, 0.5
    position.pending_close, position.status, position.exit_reason, position.exit_ts = 0.25, "partially_closed", "take_profit_1", 1_641_000_000_000
    position.group = "s-g3"
    position.refresh_stop()
    return position


def test_the_mirror_sets_every_field_of_position() -> None:
    # A field added to Position and not carried by the mirror would leave the worker's copy at its default.
    carried = set(msgspec_fields(MirrorPosition)) - {"state"}
    from_state = {
        "id", "symbol", "side", "direction", "initial_quantity", "quantity", "entry_price", "entry_ts", "stop_loss", "take_profits",
        "trailing_distance_pct", "trailing_activation_price", "trailing_active", "trailing_stop", "ladder_closes_all", "break_even",
        "realised", "fees", "status", "group",
    }
    derived = {"stop", "stop_kind"}  # refresh_stop
    assert {f.name for f in dataclasses.fields(Position)} == carried | from_state | derived
    assert len(from_state) - 1 == len(msgspec_fields(PositionState))  # all of the record is read (direction comes from side)


def msgspec_fields(cls: type) -> tuple[str, ...]:
    import msgspec

    return tuple(f.name for f in msgspec.structs.fields(cls))


def test_a_position_comes_back_from_the_wire_equal_in_every_field() -> None:
    position = _busy_position()
    view = View(positions=[mirror_of(position)], closed=[], pending_entries=["ETH/BTC"], marks={"BTC/USD": 39_200.5})
    turn = Turn(k=1, symbol="BTC/USD", tf="1m", candle=(1, 1.0, 2.0, 0.5, 1.5, 3.0), ts=60_001, entries=[TurnEntry(sid="s", kind="trade", view=view)])
    decoded = decode(encode(turn))
    assert isinstance(decoded, Turn)
    received = decoded.entries[0].view
    assert received is not None
    assert mirrored(received.positions[0]) == position


def test_the_mirror_answers_as_the_position_manager_does(btc_candles: list[Candle]) -> None:
    rig = Rig()
    spec = strategy(exits={"stop_loss_pct": 1.0, "take_profit": [{"pct": 0.3, "close_pct": 50}]})
    rig.start(spec)
    manager = rig.manager.get("s1").positions
    mirror = MirrorPositions()
    views: PositionView = mirror
    seen_open = 0
    for candle in btc_candles[:3000]:
        rig.feed("BTC/USD", [candle])
        mirror.load(view_of(manager, ["BTC/USD"]))
        assert [mirror_of(p) for p in views.positions.values()] == [mirror_of(p) for p in manager.positions.values()]
        assert views.position_on("BTC/USD") == manager.position_on("BTC/USD")
        assert views.is_flat("BTC/USD") == manager.is_flat("BTC/USD")
        assert views.last_price("BTC/USD") == manager.last_price("BTC/USD")
        seen_open += bool(manager.positions)
    assert seen_open > 10
