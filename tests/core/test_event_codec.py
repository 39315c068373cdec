"""The event codec: every event class survives encode/decode (line and wire), the header is checked, and bad input is named."""
from __future__ import annotations

import dataclasses
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.ohlcv import Candle
from bot.event_codec import (
    HEADER,
    EventFormatError,
    decode_line,
    decode_message,
    encode_line,
    encode_message,
    read_lines,
)
from bot import events as events_module
from bot.events import EVENT_CLASSES, Event, FeedState, FillRecord, OrderSubmitted
from tests.cli.test_cli import run_bot
from tests.support import REPO

# JSON numbers orjson writes and reads back exactly; strings without surrogates.
_FLOATS = st.floats(allow_nan=False, allow_infinity=False)
_INTS = st.integers(min_value=-(2**53), max_value=2**53)
_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
_JSON_SCALARS = st.one_of(st.none(), st.booleans(), _INTS, _FLOATS, _TEXT)


def _strategy_for(hint: Any) -> st.SearchStrategy[Any]:
    """Values of a field's declared type, as JSON can carry them."""
    origin = get_origin(hint)
    if hint is Candle:
        return st.builds(Candle, _INTS, _FLOATS, _FLOATS, _FLOATS, _FLOATS, _FLOATS)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _records(hint)
    if hint is int:
        return _INTS
    if hint is float:
        return _FLOATS
    if hint is str:
        return _TEXT
    if hint is bool:
        return st.booleans()
    if hint is type(None):
        return st.none()
    if hint is Any:
        return _JSON_SCALARS
    if origin is Literal:
        return st.sampled_from(get_args(hint))
    if origin in (Union, types.UnionType):
        return st.one_of(*(_strategy_for(arg) for arg in get_args(hint)))
    if origin is tuple:
        args = get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(_strategy_for(args[0]), max_size=3).map(tuple)
        return st.tuples(*(_strategy_for(arg) for arg in args))
    if origin is dict:
        return st.dictionaries(_TEXT, _strategy_for(get_args(hint)[1]), max_size=3)
    raise AssertionError(f"no strategy for {hint!r}")


def _records(cls: type[Any]) -> st.SearchStrategy[Any]:
    hints = get_type_hints(cls)
    return st.builds(cls, **{f.name: _strategy_for(hints[f.name]) for f in dataclasses.fields(cls)})


def _instances(cls: type[Event]) -> st.SearchStrategy[Any]:
    if cls is FeedState:
        # Its detail is open-ended: any keys but those the envelope places itself.
        detail = st.dictionaries(_TEXT.filter(lambda k: k not in ("state", "symbol", "timeframe")), _JSON_SCALARS, max_size=4)
        stream = st.one_of(st.tuples(st.none(), st.none()), st.tuples(_TEXT, _TEXT))
        return st.builds(
            lambda seq, ts, ts_init, state, d, s: FeedState(seq, ts, ts_init, state, d, s[0], s[1]), _INTS, _INTS, _INTS, _TEXT, detail, stream
        )
    return _records(cls)


@pytest.mark.parametrize("cls", sorted(EVENT_CLASSES.values(), key=lambda c: c.type), ids=lambda c: c.type)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_event_class_round_trips_through_a_line_and_a_wire_message(cls: type[Event], data: st.DataObject) -> None:
    event = data.draw(_instances(cls))
    # A line leaves ts_init out (a replay's file is deterministic): it reads back as the market time.
    assert decode_line(encode_line(event)) == dataclasses.replace(event, ts_init=event.ts)
    assert decode_message(encode_message(event)) == event
    assert orjson.loads(encode_message(event))["v"] == 1


def test_the_registry_holds_every_event_class_once_by_its_type_string() -> None:
    classes = {v for v in vars(events_module).values() if isinstance(v, type) and issubclass(v, Event) and v.type}
    assert set(EVENT_CLASSES.values()) == classes and len(classes) == 23
    assert all(EVENT_CLASSES[cls.type] is cls for cls in classes)


def test_a_replay_events_file_has_the_header_first_and_decodes_completely(tmp_path: Path) -> None:
    result = run_bot("replay", "--config", REPO / "config.replay.json", "--out", tmp_path / "out", "--quiet", cwd=REPO)
    assert result.returncode == 0, result.stderr
    data = (tmp_path / "out" / "events.jsonl").read_bytes()
    assert data.split(b"\n", 1)[0] == HEADER == b'{"format":"bot-events","v":1}'
    events = read_lines(data)
    assert len(events) == data.count(b"\n") - 1 > 90_000
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert all(e.ts_init == e.ts for e in events)
    # Written again, each decoded event gives back its line byte for byte.
    assert HEADER + b"\n" + b"".join(encode_line(e) + b"\n" for e in events) == data


def test_rung_is_written_only_where_the_reason_does_not_say_it() -> None:
    fill = FillRecord("s-1", "BTC/USD", "sell", 1.0, 100.0, 0.1, "taker", "take_profit_1", 5, rung=0)
    ladder = OrderSubmitted(1, 5, 5, "s", "s-1", "BTC/USD", "sell", 1.0, "close", "s-p1", "take_profit_1", 100.0, rung=0)
    named = dataclasses.replace(ladder, rung=None)  # a strategy's close it chose to call take_profit_1
    assert b'"rung"' not in encode_line(ladder)
    assert b'"rung":null' in encode_line(named)
    assert decode_line(encode_line(named)) == named and decode_line(encode_line(ladder)) == ladder
    assert decode_line(encode_line(ladder)).rung == 0  # type: ignore[attr-defined]
    assert fill.rung == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"format":"bot-events","v":2}\n', "version 2 is not supported"),
        (b'{"seq":1}\n', "not a bot-events file"),
        (b"", "no header"),
        (HEADER + b'\n{"seq":1,"ts":0,"type":"candle_closed_twice","strategy_id":null,"payload":{}}\n', "unknown event type 'candle_closed_twice'"),
        (HEADER + b'\n{"seq":3,"ts":0,"type":"replay_finished","strategy_id":null,"payload":{"candles":1}}\n', "seq 3 .replay_finished.: payload does not fit"),
        (HEADER + b'\n{"seq":4,"ts":0,"type":"signal","strategy_id":null,"payload":{}}\n', "strategy_id None does not fit"),
    ],
)
def test_bad_input_is_refused_naming_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(EventFormatError, match=message):
        read_lines(data)


def test_a_wire_message_of_another_version_or_without_ts_init_is_refused() -> None:
    with pytest.raises(EventFormatError, match="version 7 is not supported"):
        decode_message(b'{"v":7,"seq":1,"ts":0,"ts_init":0,"type":"replay_finished","strategy_id":null,"payload":{"candles":1,"gaps":0}}')
    with pytest.raises(EventFormatError, match="lacks 'ts_init'"):
        decode_message(b'{"v":1,"seq":1,"ts":0,"type":"replay_finished","strategy_id":null,"payload":{"candles":1,"gaps":0}}')
