"""Events as bytes and back: the events.jsonl line, the versioned wire message, and their header.

A line is `{"seq","ts","type","strategy_id","payload":{...}}`, the payload keyed as it always
was (optional keys left out where they always were); `ts_init` is not written, so a replay's
file stays deterministic, and a line read back gets `ts_init = ts`. A wire message is the same
envelope with `"v"` and `ts_init`. Both decode to an object equal to the one encoded.
"""
from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable
from typing import Any, Final, Union, get_args, get_origin, get_type_hints

import orjson

from bot.events import EVENT_CLASSES, Event, StrategyEvent
from bot.ohlcv import Candle

FORMAT: Final[str] = "bot-events"
VERSION: Final[int] = 1
HEADER: Final[bytes] = orjson.dumps({"format": FORMAT, "v": VERSION})
_RUNG_REASON: Final[str] = "take_profit_"
_BASE_FIELDS: Final[frozenset[str]] = frozenset({"seq", "ts", "ts_init", "strategy_id"})


class EventFormatError(ValueError):
    """Bytes that are not an event this version can read: the message names what and where."""


def rung_in_reason(reason: str) -> int | None:
    """The 0-based rung a ladder close's reason (`take_profit_<n>`) implies; None for any other reason.

    Only the codec asks, to leave `rung` out where the reason already says it.
    """
    if reason.startswith(_RUNG_REASON):
        tail = reason[len(_RUNG_REASON) :]
        if tail.isascii() and tail.isdigit() and int(tail) > 0:
            return int(tail) - 1
    return None


def _tuple_as_list(value: Any) -> Any:
    # Candles are NamedTuples, which orjson does not serialise on its own: write them as arrays.
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


# -- per-class plans, built once from the dataclass fields --------------------------------------
Encoder = Callable[[Any, dict[str, Any]], None]
Decoder = Callable[[dict[str, Any], dict[str, Any]], None]


def _identity(value: Any) -> Any:
    return value


def _converter(hint: Any) -> Callable[[Any], Any]:
    """How a JSON value becomes the field's Python value (tuples, candles, nested records)."""
    origin = get_origin(hint)
    if hint is Candle:
        return lambda value: Candle(*value)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return lambda value: decode_record(hint, value)
    if origin in (Union, types.UnionType):
        inner = [arg for arg in get_args(hint) if arg is not type(None)]
        convert = _converter(inner[0]) if len(inner) == 1 else _identity
        if convert is _identity:
            return _identity
        return lambda value: None if value is None else convert(value)
    if origin is tuple:
        args = get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            item = _converter(args[0])
            return lambda value: tuple(item(v) for v in value)
        return tuple
    if origin is list:
        item = _converter(get_args(hint)[0])
        return lambda value: [item(v) for v in value]
    return _identity


def _plan(cls: type[Any]) -> tuple[list[Encoder], list[Decoder]]:
    hints = get_type_hints(cls)
    encoders: list[Encoder] = []
    decoders: list[Decoder] = []
    for f in dataclasses.fields(cls):
        if f.name in _BASE_FIELDS and issubclass(cls, Event):
            continue
        encoders.append(_field_encoder(f, hints[f.name]))
        decoders.append(_field_decoder(f, hints[f.name]))
    return encoders, decoders


def _field_encoder(f: dataclasses.Field[Any], hint: Any) -> Encoder:
    name = f.name
    if f.metadata.get("flat"):
        nested = _encoders_of(hint)

        def flat(obj: Any, out: dict[str, Any]) -> None:
            value = getattr(obj, name)
            for encode in nested:
                encode(value, out)

        return flat
    if f.metadata.get("rung"):

        def rung(obj: Any, out: dict[str, Any]) -> None:
            value = getattr(obj, name)
            if value != rung_in_reason(obj.reason):
                out[name] = value

        return rung
    if f.metadata.get("omit"):
        default = f.default

        def omit(obj: Any, out: dict[str, Any]) -> None:
            value = getattr(obj, name)
            if value != default:
                out[name] = value

        return omit
    if dataclasses.is_dataclass(hint):
        nested = _encoders_of(hint)

        def record(obj: Any, out: dict[str, Any]) -> None:
            value = getattr(obj, name)
            inner: dict[str, Any] = {}
            for encode in nested:
                encode(value, inner)
            out[name] = inner

        return record
    if get_origin(hint) is tuple and dataclasses.is_dataclass(get_args(hint)[0]):
        nested = _encoders_of(get_args(hint)[0])

        def records(obj: Any, out: dict[str, Any]) -> None:
            rows = []
            for value in getattr(obj, name):
                inner: dict[str, Any] = {}
                for encode in nested:
                    encode(value, inner)
                rows.append(inner)
            out[name] = rows

        return records

    if get_origin(hint) is tuple:
        # As JSON has it (arrays), so a payload equals its decoded text.
        def array(obj: Any, out: dict[str, Any]) -> None:
            out[name] = [list(v) if isinstance(v, tuple) else v for v in getattr(obj, name)]

        return array

    def plain(obj: Any, out: dict[str, Any]) -> None:
        out[name] = getattr(obj, name)

    return plain


def _field_decoder(f: dataclasses.Field[Any], hint: Any) -> Decoder:
    name = f.name
    if f.metadata.get("flat"):
        return lambda payload, kwargs: kwargs.__setitem__(name, decode_record(hint, payload))
    convert = _converter(hint)
    if f.metadata.get("rung"):

        def rung(payload: dict[str, Any], kwargs: dict[str, Any]) -> None:
            kwargs[name] = payload[name] if name in payload else rung_in_reason(payload["reason"])

        return rung
    if f.metadata.get("omit"):
        default = f.default

        def omit(payload: dict[str, Any], kwargs: dict[str, Any]) -> None:
            kwargs[name] = convert(payload[name]) if name in payload else default

        return omit

    def plain(payload: dict[str, Any], kwargs: dict[str, Any]) -> None:
        kwargs[name] = convert(payload[name])

    return plain


_PLANS: dict[type[Any], tuple[list[Encoder], list[Decoder]]] = {}


def _plan_of(cls: type[Any]) -> tuple[list[Encoder], list[Decoder]]:
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _PLANS[cls] = _plan(cls)
    return plan


def _encoders_of(cls: Any) -> list[Encoder]:
    return _plan_of(cls)[0]


def encode_record(record: Any) -> dict[str, Any]:
    """A record (or an event's payload fields) as a dict in field order, optional keys left out as always."""
    out: dict[str, Any] = {}
    for encode in _plan_of(type(record))[0]:
        encode(record, out)
    return out


def decode_record(cls: type[Any], payload: dict[str, Any]) -> Any:
    """The record of class `cls` a dict holds (the inverse of `encode_record`)."""
    kwargs: dict[str, Any] = {}
    for decode in _plan_of(cls)[1]:
        decode(payload, kwargs)
    return cls(**kwargs)


# -- feed_state: its keys are open-ended, the symbol's ones in front, the state last -----------
def _feed_state_payload(event: Any) -> dict[str, Any]:
    if event.symbol is not None:
        return {"symbol": event.symbol, "timeframe": event.timeframe, **event.detail, "state": event.state}
    return {"state": event.state, **event.detail}


def _feed_state_kwargs(payload: dict[str, Any]) -> dict[str, Any]:
    detail = dict(payload)
    state = detail.pop("state")
    if next(iter(payload)) == "symbol":
        return {"state": state, "symbol": detail.pop("symbol"), "timeframe": detail.pop("timeframe"), "detail": detail}
    return {"state": state, "detail": detail}


def payload_of(event: Event) -> dict[str, Any]:
    """The event's payload as events.jsonl and the wire carry it."""
    if event.type == "feed_state":
        return _feed_state_payload(event)
    out: dict[str, Any] = {}
    for encode in _plan_of(type(event))[0]:
        encode(event, out)
    return out


def event_from(type_: str, seq: int, ts: int, ts_init: int, strategy_id: str | None, payload: dict[str, Any]) -> Event:
    """Build the event a decoded envelope describes; EventFormatError naming what does not fit."""
    cls = EVENT_CLASSES.get(type_)
    if cls is None:
        raise EventFormatError(f"unknown event type {type_!r} (seq {seq})")
    if cls.scoped != (strategy_id is not None):
        raise EventFormatError(f"event seq {seq} ({type_}): strategy_id {strategy_id!r} does not fit its scope")
    try:
        if type_ == "feed_state":
            kwargs = _feed_state_kwargs(payload)
        else:
            kwargs = {}
            for decode in _plan_of(cls)[1]:
                decode(payload, kwargs)
        if strategy_id is not None and issubclass(cls, StrategyEvent):  # the scope check above makes these one test
            return cls(seq, ts, ts_init, strategy_id, **kwargs)
        return cls(seq, ts, ts_init, **kwargs)
    except (KeyError, TypeError, StopIteration) as exc:
        raise EventFormatError(f"event seq {seq} ({type_}): payload does not fit: {type(exc).__name__}: {exc}") from exc


# -- events.jsonl lines -------------------------------------------------------------------------
def encode_line(event: Event) -> bytes:
    """One event as an events.jsonl line (no newline): the envelope without `ts_init`."""
    return orjson.dumps(
        {"seq": event.seq, "ts": event.ts, "type": event.type, "strategy_id": event.strategy_id, "payload": payload_of(event)},
        default=_tuple_as_list,
    )


def decode_line(line: bytes | str) -> Event:
    """The event of one events.jsonl line (`ts_init` = `ts`)."""
    try:
        doc = orjson.loads(line)
        seq, ts = doc["seq"], doc["ts"]
        return event_from(doc["type"], seq, ts, ts, doc["strategy_id"], doc["payload"])
    except orjson.JSONDecodeError as exc:
        raise EventFormatError(f"not a JSON event line: {exc}") from exc
    except (KeyError, TypeError) as exc:
        raise EventFormatError(f"not an event envelope: {type(exc).__name__}: {exc}") from exc


def check_header(line: bytes | str) -> None:
    """Accept the first line of an events.jsonl this version reads; EventFormatError otherwise."""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise EventFormatError(f"events file header is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise EventFormatError(f"not a {FORMAT} file: first line {line!r}")
    if doc.get("v") != VERSION:
        raise EventFormatError(f"{FORMAT} version {doc.get('v')!r} is not supported (this bot reads version {VERSION})")


def event_lines(data: bytes) -> list[bytes]:
    """The event lines of an events.jsonl file's bytes (JSON text each), after checking its header."""
    lines = data.splitlines()
    if not lines:
        raise EventFormatError("events file is empty: no header")
    check_header(lines[0])
    return [line for line in lines[1:] if line]


def read_lines(data: bytes) -> list[Event]:
    """Every event of an events.jsonl file's bytes, after checking its header."""
    return [decode_line(line) for line in event_lines(data)]


def is_header(line: bytes | str) -> bool:
    """True for an events.jsonl header line (readers that want events only skip it)."""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return isinstance(doc, dict) and "format" in doc and "payload" not in doc


# -- wire messages ------------------------------------------------------------------------------
def encode_message(event: Event) -> bytes:
    """One event as a versioned wire message: the line's envelope plus `v` and `ts_init`."""
    return orjson.dumps(
        {
            "v": VERSION,
            "seq": event.seq,
            "ts": event.ts,
            "ts_init": event.ts_init,
            "type": event.type,
            "strategy_id": event.strategy_id,
            "payload": payload_of(event),
        },
        default=_tuple_as_list,
    )


def decode_message(data: bytes | str) -> Event:
    """The event of a wire message; EventFormatError naming an unknown version or type."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise EventFormatError(f"event message is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise EventFormatError("event message is not an object")
    if doc.get("v") != VERSION:
        raise EventFormatError(f"event message version {doc.get('v')!r} is not supported (this bot reads version {VERSION})")
    try:
        return event_from(doc["type"], doc["seq"], doc["ts"], doc["ts_init"], doc["strategy_id"], doc["payload"])
    except (KeyError, TypeError) as exc:
        raise EventFormatError(f"event message lacks {exc}") from exc


__all__ = [
    "HEADER",
    "VERSION",
    "EventFormatError",
    "check_header",
    "decode_line",
    "decode_message",
    "decode_record",
    "encode_line",
    "encode_message",
    "encode_record",
    "event_lines",
    "is_header",
    "payload_of",
    "read_lines",
    "rung_in_reason",
]