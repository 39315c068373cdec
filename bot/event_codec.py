"""Events as bytes and back: the events.jsonl line, the versioned wire message, and their header.

A line is `{"seq","ts","type","strategy_id","payload":{...}}`, the payload keyed as it always
was (optional keys left out where they always were); `ts_init` is not written, so a replay's
file stays deterministic, and a line read back gets `ts_init = ts`. A wire message is the same
envelope with `"v"` and `ts_init`, and `rung` always written. Both decode to an object equal to
the one encoded.

Decoding is strict, as a wire message may come from another process: every field's type is
checked (an int is not a bool, a float field takes an int, null only where Optional, records,
arrays and objects to their elements), unknown keys and missing required ones are refused, a
strategy event needs a non-empty strategy_id. One EventDecodeError names the type, the field
path and the problem. The one leniency: a line without `rung` reads it from its reason, as this
bot's encoder leaves it out only where the reason implies it (a wire message must carry it).
"""
from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from functools import cache
from itertools import count
from typing import Any, Final, Literal, Union, get_args, get_origin

import msgspec
import orjson

from bot.events import EVENT_CLASSES, Event, FeedState, Frozen, StrategyEvent
from bot.ohlcv import Candle

FORMAT: Final[str] = "bot-events"
VERSION: Final[int] = 1
HEADER: Final[bytes] = orjson.dumps({"format": FORMAT, "v": VERSION})
_RUNG_REASON: Final[str] = "take_profit_"
_RUNG_DIGITS: Final[int] = 9
_BASE_FIELDS: Final[frozenset[str]] = frozenset({"seq", "ts", "ts_init", "strategy_id"})


class EventFormatError(ValueError):
    """Bytes that are not an event this version can read: the message names what and where (`line N:` in a file)."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        self.reason = reason
        self.line = line
        super().__init__(reason if line is None else f"line {line}: {reason}")

    def at_line(self, line: int) -> EventFormatError:
        """The same error, placed at a file's line."""
        return EventFormatError(self.reason, line)


class EventDecodeError(EventFormatError):
    """An event whose envelope or payload does not fit its type: names the type, the field path and what is wrong."""

    def __init__(self, type_: str, path: str, problem: str, seq: Any = None, line: int | None = None) -> None:
        self.type_ = type_
        self.path = path
        self.problem = problem
        self.seq = seq
        where = type_ if seq is None else f"event seq {seq!r} ({type_})"
        super().__init__(f"{where}: {path}: {problem}", line)

    def at_line(self, line: int) -> EventDecodeError:
        """The same error, placed at a file's line."""
        return EventDecodeError(self.type_, self.path, self.problem, self.seq, line)


class EventVersionError(EventFormatError):
    """A wire message of another format version (or none): a reader of this version cannot read it, nor what follows it."""

    def __init__(self, version: Any) -> None:
        self.version = version
        super().__init__(f"event message version {version!r} is not supported (this bot reads version {VERSION})")


def rung_in_reason(reason: str) -> int | None:
    """The 0-based rung a ladder close's reason (`take_profit_<n>`) implies; None for any other reason.

    Only the codec asks, to leave `rung` out where the reason already says it.
    """
    if reason.startswith(_RUNG_REASON):
        tail = reason[len(_RUNG_REASON) :]
        # Bounded: no ladder has that many rungs, and int() refuses over 4,300 digits.
        if 0 < len(tail) <= _RUNG_DIGITS and tail.isascii() and tail.isdigit() and int(tail) > 0:
            return int(tail) - 1
    return None


def _tuple_as_list(value: Any) -> Any:
    # Candles are NamedTuples, which orjson does not serialise on its own: write them as arrays.
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


# -- checking decoded JSON against the declared field types ------------------------------------
class _Mismatch(Exception):
    """A value that does not fit; `path` collects the field names outermost last while it unwinds."""

    def __init__(self, problem: str, *path: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.path = list(path)

    def where(self) -> str:
        return "".join(part if part.startswith("[") else "." + part for part in reversed(self.path)).lstrip(".")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "bool", int: "int", float: "float", str: "str", list: "array", dict: "object"}.get(type(value), type(value).__name__)


Check = Callable[[Any], Any]


def _scalar(name: str, *accepted: type) -> Check:
    # `type(v) is` rather than isinstance: a bool is not an int here.
    if len(accepted) == 1:
        only = accepted[0]

        def check_one(value: Any) -> Any:
            if type(value) is only:
                return value
            raise _Mismatch(f"expected {name}, got {_kind(value)}")

        return check_one
    allowed = frozenset(accepted)

    def check_any(value: Any) -> Any:
        if type(value) in allowed:
            return value
        raise _Mismatch(f"expected {name}, got {_kind(value)}")

    return check_any


_CHECK_INT: Final = _scalar("int", int)
_CHECK_FLOAT: Final = _scalar("float", float, int)  # JSON writes 1.0 and 1 alike for some producers
_CHECK_STR: Final = _scalar("str", str)
_CHECK_BOOL: Final = _scalar("bool", bool)


_NUMBER: Final = frozenset({int, float})


def _check_candle(value: Any) -> Any:
    if type(value) is list and len(value) == 6:
        ts, open_, high, low, close, volume = value
        number = _NUMBER
        if type(ts) is int and type(open_) in number and type(high) in number and type(low) in number and type(close) in number and type(volume) in number:
            return Candle(ts, open_, high, low, close, volume)
    raise _Mismatch(f"expected a candle [int ts, 5 numbers], got {orjson.dumps(value).decode()[:80]}")


def _items(item: Check, convert: Callable[[list[Any]], Any]) -> Check:
    def check(value: Any) -> Any:
        if type(value) is not list:
            raise _Mismatch(f"expected an array, got {_kind(value)}")
        out = []
        for index, element in enumerate(value):
            try:
                out.append(item(element))
            except _Mismatch as bad:
                bad.path.append(f"[{index}]")
                raise
        return convert(out)

    return check


def _fixed(items: tuple[Check, ...]) -> Check:
    def check(value: Any) -> Any:
        if type(value) is not list or len(value) != len(items):
            raise _Mismatch(f"expected an array of {len(items)}, got {orjson.dumps(value).decode()[:80]}")
        out = []
        for index, (item, element) in enumerate(zip(items, value)):
            try:
                out.append(item(element))
            except _Mismatch as bad:
                bad.path.append(f"[{index}]")
                raise
        return tuple(out)

    return check


def _mapping(item: Check) -> Check:
    def check(value: Any) -> Any:
        if type(value) is not dict:
            raise _Mismatch(f"expected an object, got {_kind(value)}")
        if item is _identity:
            return value
        out = {}
        for key, element in value.items():
            try:
                out[key] = item(element)
            except _Mismatch as bad:
                bad.path.append(key)
                raise
        return out

    return check


def _optional(inner: Check) -> Check:
    def check(value: Any) -> Any:
        if value is None:
            return None
        try:
            return inner(value)
        except _Mismatch as bad:
            if not bad.path:
                bad.problem += " (or null)"
            raise

    return check


def _literal(choices: tuple[Any, ...]) -> Check:
    allowed = frozenset((type(c), c) for c in choices)

    def check(value: Any) -> Any:
        if type(value) in (str, int, bool) and (type(value), value) in allowed:
            return value
        raise _Mismatch(f"expected one of {list(choices)}, got {orjson.dumps(value).decode()[:80]}")

    return check


def _identity(value: Any) -> Any:
    return value


def _checker(hint: Any, wire: bool) -> Check:
    """How a decoded JSON value is checked against a field's type and becomes its Python value."""
    origin = get_origin(hint)
    if hint is Candle:
        return _check_candle
    if _is_record(hint):
        plan = _plan_of(hint, wire)
        return plan.decode_strict
    if hint is Any:
        return _identity
    if hint is int:
        return _CHECK_INT
    if hint is float:
        return _CHECK_FLOAT
    if hint is str:
        return _CHECK_STR
    if hint is bool:
        return _CHECK_BOOL
    if origin is Literal:
        return _literal(get_args(hint))
    if origin in (Union, types.UnionType):
        inner = [arg for arg in get_args(hint) if arg is not type(None)]
        if len(inner) != 1 or len(inner) == len(get_args(hint)):
            raise TypeError(f"the codec reads X | None unions only, not {hint!r}")
        return _optional(_checker(inner[0], wire))
    if origin is tuple:
        args = get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return _items(_checker(args[0], wire), tuple)
        return _fixed(tuple(_checker(arg, wire) for arg in args))
    if origin is list:
        return _items(_checker(get_args(hint)[0], wire), list)
    if origin is dict:
        key, value = get_args(hint)
        if key is not str:
            raise TypeError(f"JSON object keys are str, not {key!r}")
        return _mapping(_checker(value, wire))
    raise TypeError(f"the codec has no rule for {hint!r}")


def _is_record(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, Frozen)


def _optional_record(hint: Any) -> Any:
    """R of a field typed `R | None` where R is a record (the decoder reads it as `_optional`), else None."""
    if get_origin(hint) in (Union, types.UnionType):
        inner = [arg for arg in get_args(hint) if arg is not type(None)]
        if len(inner) == 1 and len(inner) < len(get_args(hint)) and _is_record(inner[0]):
            return inner[0]
    return None


# -- per-class plans, built once from the Struct fields -----------------------------------------
Field = msgspec.structs.FieldInfo


@cache  # msgspec reads the class annotations on every call: a plan asks per field of every nested record
def payload_fields(cls: type[Frozen]) -> tuple[Field, ...]:
    """The fields a class writes into its payload, in key order (an event's envelope fields left out)."""
    fields = msgspec.structs.fields(cls)
    if issubclass(cls, Event):
        fields = tuple(f for f in fields if f.name not in _BASE_FIELDS)
    if cls.__order__:
        by_name = {f.name: f for f in fields}
        if sorted(cls.__order__) != sorted(by_name):
            raise TypeError(f"{cls.__name__}.__order__ {cls.__order__} does not name each payload field once: {sorted(by_name)}")
        fields = tuple(by_name[name] for name in cls.__order__)
    for notes in (cls.__omit__, cls.__flat__, cls.__rung__):
        if not notes <= {f.name for f in fields}:
            raise TypeError(f"{cls.__name__}: {sorted(notes)} are not all payload fields")
    return fields

Decoder = Callable[[dict[str, Any], dict[str, Any]], None]
# A field's decoding step: its name, its check, and the decoder of a field that is not a plain
# required key (flat, optional, rung), None for a plain one, which the plan reads inline (the hot path).
Step = tuple[str, Check, Decoder | None]


class _Plan:
    """How one class is encoded and decoded: a step per field, and the payload keys it may have."""

    __slots__ = ("cls", "encode", "decoders", "keys")

    def __init__(self, cls: type[Any], encode: Callable[[Any], dict[str, Any]], decoders: list[Step], keys: frozenset[str]) -> None:
        self.cls = cls
        self.encode = encode
        self.decoders = decoders
        self.keys = keys

    def fields_of(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The constructor arguments a payload holds, each checked; unknown keys refused."""
        if not self.keys.issuperset(payload):
            unknown = sorted(set(payload) - self.keys)
            raise _Mismatch(f"unknown key (not a field of {self.cls.__name__})", unknown[0])
        return self.fields_in(payload)

    def fields_in(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The constructor arguments of the keys this class reads (a flat record shares its parent's payload)."""
        kwargs: dict[str, Any] = {}
        for name, check, special in self.decoders:
            if special is not None:
                special(payload, kwargs)
                continue
            try:
                kwargs[name] = check(payload[name])
            except KeyError:
                raise _Mismatch("missing", name) from None
            except _Mismatch as bad:
                bad.path.append(name)
                raise
        return kwargs

    def decode_strict(self, value: Any) -> Any:
        """The record a JSON object holds."""
        if type(value) is not dict:
            raise _Mismatch(f"expected an object ({self.cls.__name__}), got {_kind(value)}")
        return self.cls(**self.fields_of(value))


# Per class, the line's plans and the wire's (they differ in `rung` only).
_LINE_PLANS: dict[type[Any], _Plan] = {}
_WIRE_PLANS: dict[type[Any], _Plan] = {}


def _plan_of(cls: type[Any], wire: bool = False) -> _Plan:
    plans = _WIRE_PLANS if wire else _LINE_PLANS
    plan = plans.get(cls)
    if plan is None:
        plan = plans[cls] = _plan(cls, wire)
    return plan


def _plan(cls: type[Frozen], wire: bool) -> _Plan:
    decoders: list[Step] = []
    keys: set[str] = set()
    seen: list[str] = []
    for f in payload_fields(cls):
        hint = f.type
        if f.name in cls.__rung__ and "reason" not in seen:
            raise TypeError(f"{cls.__name__}.{f.name}: a rung field follows its record's reason")
        seen.append(f.name)
        own = _plan_of(hint, wire).keys if f.name in cls.__flat__ else frozenset({f.name})
        if keys & own:
            raise TypeError(f"{cls.__name__}: payload keys {sorted(keys & own)} would be written twice")
        keys |= own
        decoders.append(_field_decoder(cls, f, hint, wire))
    names: dict[str, Any] = {"rung_in_reason": rung_in_reason, "RUNG_REASON": _RUNG_REASON}
    return _Plan(cls, _encoder(cls, _writes(cls, wire, names, "obj", count()), names), decoders, frozenset(keys))


# What an encoder does per field: ("key", expression) for a key always written (the keys of a run of
# them go into one dict literal), or statements ("set", lines) that write conditionally, or
# ("let", lines) binding locals (a flat or nested record, a nested payload built ahead) before the
# literal that reads them.
_Write = tuple[str, Any]


def _writes(
    cls: type[Frozen], wire: bool, names: dict[str, Any], obj: str, numbers: Iterator[int], raw: bool = False, target: str = "out"
) -> list[_Write]:
    """The writes of `cls`'s payload fields read from the expression `obj`, a flat record's inlined in its parent's.

    Every local and helper gets a number of its own (`numbers`), so a flat record inside another
    never rebinds a name its parent still reads. `raw`: the result goes straight to orjson (a
    line), which writes tuples as arrays itself. `target`: the dict a conditional key is set in.
    """
    writes: list[_Write] = []
    for f in payload_fields(cls):
        name, hint = f.name, f.type
        if not name.isidentifier():
            raise TypeError(f"field {name!r} is not an identifier")
        helper = f"{name}_{next(numbers)}"
        if name in cls.__flat__:
            writes.append(("let", [f"{helper} = {obj}.{name}"]))
            writes += _writes(hint, wire, names, helper, numbers, raw, target)
        elif name in cls.__rung__ and not wire:
            # A line leaves the rung out where the reason says it; the wire always writes it.
            writes.append(("set", [
                f"value = {obj}.{name}",
                f"if (value is not None or {obj}.reason.startswith(RUNG_REASON)) and value != rung_in_reason({obj}.reason):",
                f"    {target}[{name!r}] = value",
            ]))
        elif name in cls.__omit__:
            names[helper] = _default_of(cls, f)
            writes.append(("set", [f"value = {obj}.{name}", f"if value != {helper}:", f"    {target}[{name!r}] = value"]))
        elif _is_record(hint):
            # Inline, not a call per nested record: keys only as a dict literal inside its
            # parent's, otherwise built ahead in a local of its own.
            nested = _writes(hint, wire, names, helper, numbers, raw, f"{helper}_out")
            writes.append(("let", [f"{helper} = {obj}.{name}"]))
            if all(kind != "set" for kind, _ in nested):
                writes += [write for write in nested if write[0] == "let"]
                literal = ", ".join(f"{key!r}: {expr}" for kind, (key, expr) in ((k, w) for k, w in nested if k == "key"))
                writes.append(("key", (name, "{" + literal + "}")))
            else:
                writes.append(("let", _body(nested, f"{helper}_out")))
                writes.append(("key", (name, f"{helper}_out")))
        elif _optional_record(hint) is not None:
            names[helper] = _plan_of(_optional_record(hint), wire).encode
            writes.append(("key", (name, f"None if {obj}.{name} is None else {helper}({obj}.{name})")))
        elif get_origin(hint) is tuple and _is_record(get_args(hint)[0]):
            names[helper] = _plan_of(get_args(hint)[0], wire).encode
            writes.append(("key", (name, f"[{helper}(value) for value in {obj}.{name}]")))
        elif hint is Candle and raw:
            # A NamedTuple, which orjson leaves to its default hook: a list here spares that call back into Python.
            writes.append(("key", (name, f"list({obj}.{name})")))
        elif get_origin(hint) is tuple and not raw:
            # As JSON has it (arrays), so a payload equals its decoded text.
            writes.append(("key", (name, f"[list(value) if isinstance(value, tuple) else value for value in {obj}.{name}]")))
        else:
            writes.append(("key", (name, f"{obj}.{name}")))
    return writes


def _encoder(cls: type[Any], writes: list[_Write], names: dict[str, Any], role: str = "encode", tail: str = "return out") -> Callable[[Any], Any]:
    """One function per class writing its payload in key order, runs of keys as dict literals (as
    dataclasses writes an __init__): every event passes through it, and one call with the fields
    inline costs a fraction of a call per field. `tail` returns the payload (`out`) or what wraps it.
    The source holds our classes' field names only (identifiers, checked), never data."""
    body = "\n".join(f"    {line}" for line in [*_body(writes, "out"), tail])
    source = f"def {role}_{cls.__name__}(obj):\n{body}\n"
    exec(compile(source, f"<{role} of {cls.__qualname__}>", "exec"), names)  # noqa: S102  our classes' field names only
    encode: Callable[[Any], Any] = names[f"{role}_{cls.__name__}"]
    return encode


def _body(writes: list[_Write], target: str) -> list[str]:
    """The statements that build the dict `target` from `writes`."""
    lines: list[str] = []
    run: list[str] = []
    started = False

    def flush() -> None:
        nonlocal started
        if started and not run:
            return
        literal = "{" + ", ".join(run) + "}"
        lines.append(f"{target}.update({literal})" if started else f"{target} = {literal}")
        started = True
        run.clear()

    for kind, what in writes:
        if kind == "key":
            run.append(f"{what[0]!r}: {what[1]}")
        elif kind == "let":
            lines += what  # binds locals only: the literal being built may go on after them
        else:
            flush()
            lines += what
    if run or not started:
        flush()
    return lines


def _default_of(cls: type[Frozen], f: Field) -> Any:
    if f.default is msgspec.NODEFAULT:
        raise TypeError(f"{cls.__name__}.{f.name}: a key left out at its default needs a default")
    return f.default


def _field_decoder(cls: type[Frozen], f: Field, hint: Any, wire: bool) -> Step:
    name = f.name
    if name in cls.__flat__:
        nested = _plan_of(hint, wire)

        def flat(payload: dict[str, Any], kwargs: dict[str, Any]) -> None:
            kwargs[name] = nested.cls(**nested.fields_in(payload))

        return name, _identity, flat
    check = _checker(hint, wire)
    if name in cls.__rung__ and not wire:
        # A line holds no rung where its reason implies one: this bot's encoder left it out
        # only then (a wire message always carries it, so there a missing rung is an error).
        def rung(payload: dict[str, Any], kwargs: dict[str, Any]) -> None:
            if name in payload:
                kwargs[name] = _checked(check, payload[name], name)
            else:
                kwargs[name] = rung_in_reason(kwargs["reason"])

        return name, check, rung
    if name in cls.__omit__:
        default = _default_of(cls, f)

        def omit(payload: dict[str, Any], kwargs: dict[str, Any]) -> None:
            kwargs[name] = _checked(check, payload[name], name) if name in payload else default

        return name, check, omit
    return name, check, None


def _checked(check: Check, value: Any, name: str) -> Any:
    try:
        return check(value)
    except _Mismatch as bad:
        bad.path.append(name)
        raise


def encode_record(record: Any) -> dict[str, Any]:
    """A record (or an event's payload fields) as a dict in field order, optional keys left out as always."""
    return _plan_of(type(record)).encode(record)


def decode_record(cls: type[Any], payload: dict[str, Any]) -> Any:
    """The record of class `cls` a dict holds (the inverse of `encode_record`); EventDecodeError if it does not fit."""
    try:
        return _plan_of(cls).decode_strict(payload)
    except _Mismatch as bad:
        raise EventDecodeError(cls.__name__, bad.where(), bad.problem) from None



def record_json(record: Any) -> bytes:
    """A record as JSON bytes (a journal column): `encode_record`'s keys, numbers as orjson writes them."""
    return orjson.dumps(encode_record(record), default=_tuple_as_list)

# -- feed_state: its keys are open-ended, the symbol's ones in front, the state last -----------
def _feed_state_payload(event: Any) -> dict[str, Any]:
    if event.symbol is not None:
        return {"symbol": event.symbol, "timeframe": event.timeframe, **event.detail, "state": event.state}
    return {"state": event.state, **event.detail}


def _feed_state_kwargs(payload: dict[str, Any]) -> dict[str, Any]:
    detail = dict(payload)
    if "state" not in detail:
        raise _Mismatch("missing", "state")
    kwargs = {"state": _checked(_CHECK_STR, detail.pop("state"), "state"), "detail": detail}
    if "symbol" in payload:  # one symbol's stream: its timeframe is written too, null or not
        kwargs["symbol"] = _checked(_CHECK_STR, detail.pop("symbol"), "symbol")
        if "timeframe" not in detail:
            raise _Mismatch("missing (a symbol's feed state has one, or null)", "timeframe")
        kwargs["timeframe"] = _checked(_CHECK_OPTIONAL_STR, detail.pop("timeframe"), "timeframe")
    return kwargs


_CHECK_OPTIONAL_STR: Final = _optional(_CHECK_STR)


def payload_of(event: Event, wire: bool = False) -> dict[str, Any]:
    """The event's payload as events.jsonl (or, `wire`, a wire message) carries it."""
    if event.type == "feed_state":
        return _feed_state_payload(event)
    return _plan_of(type(event), wire).encode(event)


def event_from(
    type_: Any, seq: Any, ts: Any, ts_init: Any, strategy_id: Any, payload: Any, wire: bool = False
) -> Event:
    """Build the event a decoded envelope describes, checking every field; EventDecodeError naming what does not fit.

    `wire`: a message from another process, which always carries `rung`; a line may leave it
    out where its reason implies it (see `rung_in_reason`).
    """
    if type(type_) is not str:
        raise EventDecodeError(repr(type_), "type", f"expected str, got {_kind(type_)}", seq)
    cls = EVENT_CLASSES.get(type_)
    if cls is None:
        raise EventDecodeError(type_, "type", f"unknown event type {type_!r}", seq)
    if type(seq) is not int or type(ts) is not int or type(ts_init) is not int:
        name, value = next((n, v) for n, v in (("seq", seq), ("ts", ts), ("ts_init", ts_init)) if type(v) is not int)
        raise EventDecodeError(type_, name, f"expected int, got {_kind(value)}", seq)
    if cls.scoped:
        if type(strategy_id) is not str or not strategy_id:
            raise EventDecodeError(type_, "strategy_id", f"a strategy event needs a non-empty str, got {strategy_id!r}", seq)
    elif strategy_id is not None:
        raise EventDecodeError(type_, "strategy_id", f"a market event has null, got {strategy_id!r}", seq)
    if type(payload) is not dict:
        raise EventDecodeError(type_, "payload", f"expected an object, got {_kind(payload)}", seq)
    try:
        if cls is FeedState:
            kwargs = _feed_state_kwargs(payload)
        else:
            kwargs = _plan_of(cls, wire).fields_of(payload)
        if strategy_id is not None and issubclass(cls, StrategyEvent):  # the scope check above makes these one test
            return cls(seq, ts, ts_init, strategy_id, **kwargs)
        return cls(seq, ts, ts_init, **kwargs)
    except _Mismatch as bad:
        raise EventDecodeError(type_, "payload." + bad.where(), bad.problem, seq) from None
    except (TypeError, ValueError) as exc:  # a record's own rule (FeedState's keys) or its constructor
        raise EventDecodeError(type_, "payload", f"{type(exc).__name__}: {exc}", seq) from exc



def payload_json(event: Event) -> bytes:
    """An event's payload as JSON bytes, as events.jsonl carries it (the journal's event log column)."""
    return orjson.dumps(payload_of(event), default=_tuple_as_list)

# -- events.jsonl lines -------------------------------------------------------------------------
def encode_line(event: Event) -> bytes:
    """One event as an events.jsonl line (no newline): the envelope without `ts_init`."""
    # Every replay event passes here: the class's line encoder straight from its plan once built.
    plan = _LINE_PLANS.get(type(event))
    payload = plan.encode(event) if plan is not None and event.type != "feed_state" else payload_of(event)
    return orjson.dumps(
        {"seq": event.seq, "ts": event.ts, "type": event.type, "strategy_id": event.strategy_id, "payload": payload},
        default=_tuple_as_list,
    )


# A line's envelope around the payload the encoder built, written in the one call that builds it.
_LINE_WRITE: Final = (
    'write(dumps({"seq": obj.seq, "ts": obj.ts, "type": TYPE, "strategy_id": obj.strategy_id, "payload": out},'
    " default=tuple_as_list, option=NEWLINE))"
)


def line_writer(cls: type[Event], write: Callable[[bytes], object]) -> Callable[[Event], None]:
    """A function writing each `cls` event's events.jsonl line, newline included, with `write`: `encode_line` and the write in one call."""
    if cls is FeedState:  # its payload is its own shape

        def feed_state_line(event: Event) -> None:
            write(encode_line(event) + b"\n")

        return feed_state_line
    template = _LINE_WRITERS.get(cls)
    if template is None:
        # Only the writing half of a plan: a replay builds this for every class it writes, at its start.
        names: dict[str, Any] = {
            "rung_in_reason": rung_in_reason, "RUNG_REASON": _RUNG_REASON,
            "dumps": orjson.dumps, "tuple_as_list": _tuple_as_list, "NEWLINE": orjson.OPT_APPEND_NEWLINE, "TYPE": cls.type, "write": None,
        }
        template = _LINE_WRITERS[cls] = _encoder(cls, _writes(cls, False, names, "obj", count(), raw=True), names, "write", _LINE_WRITE)
    # Compiled once per class; each file's writer is that code with its own `write` among its globals.
    writer: Callable[[Event], None] = types.FunctionType(template.__code__, {**template.__globals__, "write": write}, template.__name__)
    return writer


_LINE_WRITERS: dict[type[Event], Callable[[Event], None]] = {}


_LINE_KEYS: Final = frozenset({"seq", "ts", "type", "strategy_id", "payload"})
_MESSAGE_KEYS: Final = _LINE_KEYS | {"v", "ts_init"}


def _envelope(doc: Any, keys: frozenset[str], what: str) -> dict[str, Any]:
    if type(doc) is not dict:
        raise EventFormatError(f"{what} is not an object")
    if doc.keys() != keys:
        missing, unknown = sorted(keys - doc.keys()), sorted(doc.keys() - keys)
        problems = ([f"lacks {missing}"] if missing else []) + ([f"has unknown keys {unknown}"] if unknown else [])
        raise EventFormatError(f"{what} {' and '.join(problems)}")
    return doc


def decode_line(line: bytes | str) -> Event:
    """The event of one events.jsonl line (`ts_init` = `ts`); EventFormatError naming what does not fit."""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise EventFormatError(f"not a JSON event line: {exc}") from exc
    doc = _envelope(doc, _LINE_KEYS, "event line")
    ts = doc["ts"]
    return event_from(doc["type"], doc["seq"], ts, ts, doc["strategy_id"], doc["payload"])


def check_header(line: bytes | str) -> None:
    """Accept the first line of an events.jsonl this version reads; EventFormatError otherwise."""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise EventFormatError(f"events file header is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise EventFormatError(f"not a {FORMAT} file: first line {line!r}")
    if doc.get("v") != VERSION or type(doc.get("v")) is not int:  # true == 1 in Python
        raise EventFormatError(f"{FORMAT} version {doc.get('v')!r} is not supported (this bot reads version {VERSION})")


def event_lines(data: bytes) -> list[bytes]:
    """The event lines of an events.jsonl file's bytes (JSON text each), after checking its header."""
    lines = data.splitlines()
    if not lines:
        raise EventFormatError("events file is empty: no header")
    check_header(lines[0])
    return [line for line in lines[1:] if line]


def read_lines(data: bytes) -> list[Event]:
    """Every event of an events.jsonl file's bytes, after checking its header; an error names the line (1 = header)."""
    lines = data.splitlines()
    if not lines:
        raise EventFormatError("events file is empty: no header")
    try:
        check_header(lines[0])
    except EventFormatError as exc:
        raise exc.at_line(1) from None
    events = []
    for number, line in enumerate(lines[1:], start=2):
        if line:
            try:
                events.append(decode_line(line))
            except EventFormatError as exc:
                raise exc.at_line(number) from None
    return events


def is_header(line: bytes | str) -> bool:
    """True for an events.jsonl header line (readers that want events only skip it)."""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return isinstance(doc, dict) and "format" in doc and "payload" not in doc


# -- wire messages ------------------------------------------------------------------------------
def encode_message(event: Event) -> bytes:
    """One event as a versioned wire message: the line's envelope plus `v` and `ts_init`, and `rung` always written."""
    return orjson.dumps(
        {
            "v": VERSION,
            "seq": event.seq,
            "ts": event.ts,
            "ts_init": event.ts_init,
            "type": event.type,
            "strategy_id": event.strategy_id,
            "payload": payload_of(event, wire=True),
        },
        default=_tuple_as_list,
    )


def decode_message(data: bytes | str) -> Event:
    """The event of a wire message, every field checked; EventFormatError naming an unknown version or what does not fit."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise EventFormatError(f"event message is not JSON: {exc}") from exc
    return message_event(doc)


def message_event(doc: Any) -> Event:
    """The event of a wire message already parsed from JSON (as inside a control reply); see `decode_message`.

    EventVersionError when it is of another version or has none (what an older bot sent).
    """
    if type(doc) is not dict:
        raise EventFormatError("event message is not an object")
    if doc.get("v") != VERSION or type(doc.get("v")) is not int:
        raise EventVersionError(doc.get("v"))
    doc = _envelope(doc, _MESSAGE_KEYS, "event message")
    return event_from(doc["type"], doc["seq"], doc["ts"], doc["ts_init"], doc["strategy_id"], doc["payload"], wire=True)


__all__ = [
    "HEADER",
    "VERSION",
    "EventDecodeError",
    "EventFormatError",
    "EventVersionError",
    "check_header",
    "decode_line",
    "decode_message",
    "decode_record",
    "encode_line",
    "encode_message",
    "encode_record",
    "event_lines",
    "is_header",
    "line_writer",
    "message_event",
    "payload_fields",
    "payload_json",
    "payload_of",
    "read_lines",
    "record_json",
    "rung_in_reason",
]