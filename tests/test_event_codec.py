"""The event codec: every event class survives encode/decode (line and wire), the header is checked, and bad input is named."""
from __future__ import annotations

import types
from pathlib import Path
from typing import Any, ClassVar, Literal, Union, get_args, get_origin, get_type_hints

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot import events as events_module
from bot.event_codec import (
    HEADER,
    EventDecodeError,
    EventFormatError,
    decode_line,
    decode_message,
    encode_line,
    encode_message,
    encode_record,
    line_writer,
    payload_of,
    read_lines,
)
from bot.events import (
    EVENT_CLASSES,
    CandleClosed,
    Event,
    FeedState,
    FillRecord,
    Frozen,
    OrderSubmitted,
    PortfolioSnapshot,
    PositionOpened,
    PositionState,
    Reconciled,
    ReplayFinished,
    StrategyEvent,
)
from bot.ohlcv import Candle
from tests.cli.test_cli import run_bot
from tests.support import REPO

# JSON numbers orjson writes and reads back exactly; strings without surrogates.
_FLOATS = st.floats(allow_nan=False, allow_infinity=False)
_INTS = st.integers(min_value=-(2**53), max_value=2**53)
_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
_JSON_SCALARS = st.one_of(st.none(), st.booleans(), _INTS, _FLOATS, _TEXT)


def _strategy_for(hint: Any) -> st.SearchStrategy[Any]:
    """Values of a field's declared type, as JSON can carry them."""
    origin = get_origin(hint)
    if hint is Candle:
        return st.builds(Candle, _INTS, _FLOATS, _FLOATS, _FLOATS, _FLOATS, _FLOATS)
    if isinstance(hint, type) and issubclass(hint, Frozen):
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
    fields = {f.name: _strategy_for(hints[f.name]) for f in msgspec.structs.fields(cls)}
    if issubclass(cls, StrategyEvent):
        fields["strategy_id"] = _TEXT.filter(bool)  # the bus and the decoder refuse an empty id
    return st.builds(cls, **fields)


# A feed state's detail is open-ended: any keys, those of its own fields too (the event refuses them).
_FEED_DETAIL = st.dictionaries(st.one_of(_TEXT, st.sampled_from(["state", "symbol", "timeframe"])), _JSON_SCALARS, max_size=4)
_FEED_ARGS = st.tuples(_INTS, _INTS, _INTS, _TEXT, _FEED_DETAIL, st.none() | _TEXT, st.none() | _TEXT)


def _feed_state_fits(detail: dict[str, Any], symbol: str | None, timeframe: str | None) -> bool:
    """What FeedState accepts: no detail key the payload holds itself, no timeframe without a symbol."""
    own = {"state", "symbol"} if symbol is None else {"state", "symbol", "timeframe"}
    return not own & detail.keys() and not (symbol is None and timeframe is not None)


def _instances(cls: type[Event]) -> st.SearchStrategy[Any]:
    if cls is FeedState:
        return _FEED_ARGS.filter(lambda a: _feed_state_fits(*a[4:])).map(lambda a: FeedState(*a))
    return _records(cls)


def _type_of(cls: type[Event]) -> str:
    return cls.type


# Sorted out here: inside parametrize, mypy would infer the list as list[object].
_CLASSES = sorted(EVENT_CLASSES.values(), key=_type_of)


@pytest.mark.parametrize("cls", _CLASSES, ids=_type_of)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_event_class_round_trips_through_a_line_and_a_wire_message(cls: type[Event], data: st.DataObject) -> None:
    event = data.draw(_instances(cls))
    # A line leaves ts_init out (a replay's file is deterministic): it reads back as the market time.
    assert decode_line(encode_line(event)) == msgspec.structs.replace(event, ts_init=event.ts)
    # The event log's one-call writer writes the same line.
    written: list[bytes] = []
    line_writer(cls, written.append)(event)
    assert written == [encode_line(event) + b"\n"]
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
    named = msgspec.structs.replace(ladder, rung=None)  # a strategy's close it chose to call take_profit_1
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
        (HEADER + b'\n{"seq":3,"ts":0,"type":"replay_finished","strategy_id":null,"payload":{"candles":1}}\n', r"^line 2: event seq 3 \(replay_finished\): payload.gaps: missing$"),
        (HEADER + b'\n{"seq":4,"ts":0,"type":"signal","strategy_id":null,"payload":{}}\n', r"^line 2: event seq 4 \(signal\): strategy_id: a strategy event needs a non-empty str, got None$"),
        (HEADER + b'\n\n{"seq":1,"ts":0,"type":"replay_finished","strategy_id":null,"payload":{"candles":1,"gaps":0}}\n{"seq":2}\n', "^line 4: event line lacks"),
        (b'{"format":"bot-events","v":true}\n', "^line 1: bot-events version True is not supported"),
    ],
)
def test_bad_input_is_refused_naming_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(EventFormatError, match=message):
        read_lines(data)


def test_a_wire_message_of_another_version_or_without_ts_init_is_refused() -> None:
    with pytest.raises(EventFormatError, match="version 7 is not supported"):
        decode_message(b'{"v":7,"seq":1,"ts":0,"ts_init":0,"type":"replay_finished","strategy_id":null,"payload":{"candles":1,"gaps":0}}')
    with pytest.raises(EventFormatError, match=r"lacks \['ts_init'\]"):
        decode_message(b'{"v":1,"seq":1,"ts":0,"type":"replay_finished","strategy_id":null,"payload":{"candles":1,"gaps":0}}')



# -- strict decoding: a message from another process is checked field by field -----------------
_FILL = FillRecord("s-1", "BTC/USD", "sell", 1.0, 100.0, 0.1, "taker", "take_profit_1", 5, rung=0)
_PORTFOLIO = PortfolioSnapshot(1000.0, 900.0, 1000.0, 0.0, 0.0, 0.1, 100.0, 1000.0, 0.0, 0.0)
_POSITION = PositionState(
    "s-p1", "BTC/USD", "long", "open", 1.0, 1.0, 100.0, 5, 90.0, ((110.0, 0.5, False),), False, None, None, None, False, False, 0.0, 0.1, None
)
_ENTRY = OrderSubmitted(1, 5, 6, "s", "s-1", "BTC/USD", "buy", 1.0, "open", "s-p1", "signal", 100.0, group="g1")


def _message(event: Event, **payload: Any) -> bytes:
    """`event`'s wire message with payload keys replaced (a value of `_DROP` removes the key)."""
    doc = orjson.loads(encode_message(event))
    for key, value in payload.items():
        if value is _DROP:
            doc["payload"].pop(key, None)
        else:
            doc["payload"][key] = value
    return orjson.dumps(doc)


def _envelope(event: Event, **envelope: Any) -> bytes:
    doc = orjson.loads(encode_message(event))
    doc.update(envelope)
    return orjson.dumps(doc)


_DROP = object()
_FINISHED = ReplayFinished(3, 5, 5, 10, 0)


@pytest.mark.parametrize(
    ("data", "type_", "path", "problem"),
    [
        (_envelope(_FINISHED, seq="x"), "replay_finished", "seq", "expected int, got str"),
        (_envelope(_FINISHED, ts=None), "replay_finished", "ts", "expected int, got null"),
        (_envelope(_FINISHED, ts_init=True), "replay_finished", "ts_init", "expected int, got bool"),
        (_envelope(_FINISHED, strategy_id="a"), "replay_finished", "strategy_id", "a market event has null, got 'a'"),
        (_envelope(_ENTRY, strategy_id=""), "order_submitted", "strategy_id", "a strategy event needs a non-empty str, got ''"),
        (_envelope(_ENTRY, strategy_id=7), "order_submitted", "strategy_id", "a strategy event needs a non-empty str, got 7"),
        (_envelope(_ENTRY, payload=[1]), "order_submitted", "payload", "expected an object, got array"),
        (_message(_FINISHED, candles="lots"), "replay_finished", "payload.candles", "expected int, got str"),
        (_message(_FINISHED, gaps=False), "replay_finished", "payload.gaps", "expected int, got bool"),
        (_message(_FINISHED, gaps=_DROP), "replay_finished", "payload.gaps", "missing"),
        # A producer that renamed an optional key: refused, not decoded to the default (a pair link lost).
        (_message(_ENTRY, group=_DROP, pair_group="g1"), "order_submitted", "payload.pair_group", "unknown key (not a field of OrderSubmitted)"),
        (_message(_ENTRY, side="hold"), "order_submitted", "payload.side", "expected one of ['buy', 'sell'], got \"hold\""),
        (_message(_ENTRY, limit_price="1.5"), "order_submitted", "payload.limit_price", "expected float, got str (or null)"),
        (_message(_ENTRY, rung="0"), "order_submitted", "payload.rung", "expected int, got str (or null)"),
        (_message(_ENTRY, rung=_DROP), "order_submitted", "payload.rung", "missing"),
    ],
)
def test_a_wire_message_that_does_not_fit_its_type_is_refused_naming_type_field_and_problem(
    data: bytes, type_: str, path: str, problem: str
) -> None:
    with pytest.raises(EventDecodeError) as caught:
        decode_message(data)
    assert (caught.value.type_, caught.value.path, caught.value.problem) == (type_, path, problem)
    assert isinstance(caught.value, ValueError) and f"({type_}): {path}: " in str(caught.value)


def test_nested_records_tuples_and_mappings_are_checked_to_their_elements() -> None:
    opened = PositionOpened(1, 5, 5, "s", _POSITION, "s-1", _PORTFOLIO, _FILL)
    doc = orjson.loads(encode_message(opened))
    cases: list[tuple[str, Any, str, str]] = [
        ("portfolio", {**doc["payload"]["portfolio"], "cash": "x"}, "payload.portfolio.cash", "expected float, got str"),
        ("portfolio", {**doc["payload"]["portfolio"], "bonus": 1.0}, "payload.portfolio.bonus", "unknown key (not a field of PortfolioSnapshot)"),
        ("fill", {k: v for k, v in doc["payload"]["fill"].items() if k != "rung"}, "payload.fill.rung", "missing"),
        ("take_profit", [[110.0, 0.5, "no"]], "payload.take_profit[0][2]", "expected bool, got str"),
        ("take_profit", [[110.0, 0.5]], "payload.take_profit[0]", "expected an array of 3, got [110.0,0.5]"),
        ("entry_price", 100, "", ""),  # a float field takes an int
    ]
    for key, value, path, problem in cases:
        bad = orjson.dumps({**doc, "payload": {**doc["payload"], key: value}})
        if not path:
            assert decode_message(bad) == msgspec.structs.replace(opened, position=msgspec.structs.replace(_POSITION, entry_price=100))
            continue
        with pytest.raises(EventDecodeError) as caught:
            decode_message(bad)
        assert (caught.value.path, caught.value.problem) == (path, problem)
    signal = orjson.loads(encode_message(CandleClosed(1, 5, 5, "BTC/USD", "1m", Candle(0, 1.0, 2.0, 0.5, 1.5, 10.0))))
    signal["payload"]["candle"] = [0, 1.0, 2.0, 0.5, 1.5, True]
    with pytest.raises(EventDecodeError, match=r"payload.candle: expected a candle"):
        decode_message(orjson.dumps(signal))
    gaps = orjson.loads(encode_message(Reconciled(1, 5, 5, {"orders": 1}, ("one",))))
    gaps["payload"]["differences"] = {"orders": 1.5}
    with pytest.raises(EventDecodeError, match=r"payload.differences.orders: expected int, got float"):
        decode_message(orjson.dumps(gaps))


def _optional_keys(cls: type[Any]) -> set[str]:
    """Payload keys a producer may leave out (the flat records' too)."""
    keys = set()
    for f in msgspec.structs.fields(cls):
        if f.name in cls.__flat__:
            keys |= _optional_keys(get_type_hints(cls)[f.name])
        elif f.name in cls.__omit__:
            keys.add(f.name)
    return keys


# A feed state's payload is open-ended (its detail): it has tests of its own below.
_FIXED_PAYLOADS = sorted(set(EVENT_CLASSES.values()) - {FeedState}, key=lambda c: c.type)


@pytest.mark.parametrize("cls", _FIXED_PAYLOADS, ids=[c.type for c in _FIXED_PAYLOADS])
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_every_payload_key_is_checked_an_unknown_one_refused_and_only_optional_ones_may_be_missing(
    cls: type[Event], data: st.DataObject
) -> None:
    event = data.draw(_instances(cls))
    doc = orjson.loads(encode_message(event))
    payload = doc["payload"]
    with pytest.raises(EventDecodeError, match="unknown key"):
        decode_message(orjson.dumps({**doc, "payload": {**payload, "extra_key": 1}}))
    hints = {name: hint for record in _payload_records(cls) for name, hint in get_type_hints(record).items()}
    for key in payload:
        without = orjson.dumps({**doc, "payload": {k: v for k, v in payload.items() if k != key}})
        if key in _optional_keys(cls):
            assert payload_of(decode_message(without), wire=True).keys() <= set(payload) - {key}
        else:
            with pytest.raises(EventDecodeError, match=f"payload.{key}: missing"):
                decode_message(without)
        if hints[key] is not Any and get_args(hints[key])[1:] != (Any,):
            # Deeply nested empty arrays fit no declared type but an open-ended one.
            with pytest.raises(EventDecodeError, match=f"payload.{key}"):
                decode_message(orjson.dumps({**doc, "payload": {**payload, key: [[[]]]}}))


def _payload_records(cls: type[Any]) -> list[type[Any]]:
    hints = get_type_hints(cls)
    return [cls, *(rec for f in msgspec.structs.fields(cls) if f.name in cls.__flat__ for rec in _payload_records(hints[f.name]))]


def test_a_wire_message_always_carries_the_rung_and_a_line_infers_it_only_where_this_bot_left_it_out() -> None:
    """A strategy's close named take_profit_1 (rung None) from another process keeps rung None, never rung 0."""
    named = OrderSubmitted(1, 5, 5, "s", "s-1", "BTC/USD", "sell", 1.0, "close", "s-p1", "take_profit_1", 100.0)
    ladder = msgspec.structs.replace(named, rung=0)
    assert orjson.loads(encode_message(ladder))["payload"]["rung"] == 0
    assert orjson.loads(encode_message(named))["payload"]["rung"] is None
    dropped = _message(named, rung=_DROP)
    with pytest.raises(EventDecodeError, match="payload.rung: missing"):
        decode_message(dropped)
    # A line is this bot's own file: the encoder left the rung out only where the reason implies it.
    assert decode_line(encode_line(ladder)) == ladder and b'"rung"' not in encode_line(ladder)


def test_a_take_profit_reason_with_thousands_of_digits_is_just_a_reason() -> None:
    """Python's int() refuses over 4,300 digits: the rung rule must not raise, on encoding nor decoding."""
    reason = "take_profit_" + "9" * 5_000
    odd = OrderSubmitted(1, 5, 5, "s", "s-1", "BTC/USD", "sell", 1.0, "close", "s-p1", reason, 100.0)
    assert b'"rung"' not in encode_line(odd)  # no rung, and the reason implies none
    assert decode_line(encode_line(odd)) == odd and decode_message(encode_message(odd)) == odd


@settings(max_examples=200, deadline=None)
@given(args=_FEED_ARGS)
def test_a_feed_state_round_trips_or_is_refused_when_built(args: tuple[Any, ...]) -> None:
    """Detail keys named like its fields, or a timeframe without a symbol, would not survive the payload: refused at once."""
    if not _feed_state_fits(*args[4:]):
        with pytest.raises(ValueError, match="feed_state: (detail keys|timeframe)"):
            FeedState(*args)
        return
    event = FeedState(*args)
    assert decode_message(encode_message(event)) == event
    assert decode_line(encode_line(event)) == msgspec.structs.replace(event, ts_init=event.ts)


def test_a_feed_state_is_read_by_its_keys_not_their_order() -> None:
    stream = FeedState(1, 5, 5, "connected", {"attempt": 2}, "BTC/USD", None)
    reordered = b'{"v":1,"seq":1,"ts":5,"ts_init":5,"type":"feed_state","strategy_id":null,"payload":{"state":"connected","attempt":2,"timeframe":null,"symbol":"BTC/USD"}}'
    assert decode_message(reordered) == stream
    market = FeedState(1, 5, 5, "backfilling", {"timeframe": "1m", "symbols": ["BTC/USD"]})  # a market-wide state may name one
    assert decode_message(encode_message(market)) == market
    no_timeframe = b'{"v":1,"seq":1,"ts":5,"ts_init":5,"type":"feed_state","strategy_id":null,"payload":{"symbol":"BTC/USD","state":"connected"}}'
    with pytest.raises(EventDecodeError, match="payload.timeframe: missing"):
        decode_message(no_timeframe)
    with pytest.raises(EventDecodeError, match="payload.symbol: expected str, got int"):
        decode_message(no_timeframe.replace(b'"BTC/USD"', b"7"))


class _Leaf(Frozen, frozen=True):
    """A record at the bottom of two flat levels."""

    a: int


class _Middle(Frozen, frozen=True):
    """A flat record holding another under the same field name as its parent's."""

    __flat__: ClassVar[frozenset[str]] = frozenset({"x"})
    x: _Leaf
    m: int


class _Outer(Frozen, frozen=True):
    """The record whose payload holds both levels' keys."""

    __flat__: ClassVar[frozenset[str]] = frozenset({"x"})
    x: _Middle
    z: int


def test_a_flat_record_inside_another_under_the_same_name_is_written_from_its_own_fields() -> None:
    """The generated encoder binds each level to a local of its own: the inner level never shadows the outer one."""
    assert encode_record(_Outer(_Middle(_Leaf(1), 2), 3)) == {"a": 1, "m": 2, "z": 3}
