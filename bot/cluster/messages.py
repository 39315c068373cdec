"""What the hub and the minds say to each other: msgspec Structs, JSON, decoded strictly (a message from another process)."""
from __future__ import annotations

from typing import Literal

import msgspec

from bot.events import PositionState
from bot.trading.actions import (
    Action,
    ActivateTrailingStop,
    ClosePair,
    ClosePercent,
    OpenPair,
    OpenPosition,
    UpdateStopLoss,
)

# The cluster protocol's version: a message of another is refused, as an event of another codec version is.
# 2: the daemon's messages (Sync, Synced, Ask, Release, Released) added.
PROTOCOL = 2
CandleT = tuple[int, float, float, float, float, float]
TurnKind = Literal["trade", "other", "history"]


class ProtocolError(ValueError):
    """A cluster message that does not decode, or is of another protocol version."""


class Header(msgspec.Struct, frozen=True):
    """What every message starts with, read first: its protocol version (required) and its type."""

    v: int
    t: str


class Msg(msgspec.Struct, frozen=True, kw_only=True, tag_field="t", forbid_unknown_fields=True):
    """Base of every envelope: the protocol version it was written in."""

    v: int = PROTOCOL


class PositionStateMsg(PositionState, frozen=True, forbid_unknown_fields=True):
    """PositionState on the wire (the event's record, its unknown fields refused)."""


class MirrorPosition(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An open position as the hub's book holds it: the journalled record and the fields only the book knows (every field of Position)."""

    state: PositionStateMsg
    pending_close: float
    trail_anchor: float
    closed_quantity: float
    exit_value: float
    exit_reason: str
    exit_ts: int


class View(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a strategy reads of its book: open positions, those closed since the last view, the symbols with an entry on its way, the last prices."""

    positions: list[MirrorPosition]
    # Their final state: a strategy may hold a Position object, which in process the book closes in place.
    closed: list[MirrorPosition]
    pending_entries: list[str]
    marks: dict[str, float]


class TurnEntry(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One strategy's part of a turn: what the candle is to it, and its book's view after the hub's part (None: history)."""

    sid: str
    kind: TurnKind
    view: View | None


class Turn(Msg, frozen=True, kw_only=True, tag="turn"):
    """A candle for the minds on one worker, numbered `k` by the hub."""

    k: int
    symbol: str
    tf: str
    candle: CandleT
    ts: int
    entries: list[TurnEntry]


class Failure(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a strategy's code raised, as the hub reports it: the exception's type name, its message, file:line."""

    type_name: str
    message: str
    where: str


class OpenPositionMsg(OpenPosition, frozen=True, tag="open_position", forbid_unknown_fields=True):
    """OpenPosition on the wire."""


class ClosePercentMsg(ClosePercent, frozen=True, tag="close_percent", forbid_unknown_fields=True):
    """ClosePercent on the wire."""


class UpdateStopLossMsg(UpdateStopLoss, frozen=True, tag="update_stop_loss", forbid_unknown_fields=True):
    """UpdateStopLoss on the wire."""


class ActivateTrailingStopMsg(ActivateTrailingStop, frozen=True, tag="activate_trailing_stop", forbid_unknown_fields=True):
    """ActivateTrailingStop on the wire."""


class OpenPositionLeg(OpenPosition, frozen=True, forbid_unknown_fields=True):
    """A leg of an OpenPair on the wire (untagged, its unknown fields refused)."""


class OpenPairMsg(OpenPair, frozen=True, tag="open_pair", forbid_unknown_fields=True):
    """OpenPair on the wire."""

    long: OpenPositionLeg
    short: OpenPositionLeg


class ClosePairMsg(ClosePair, frozen=True, tag="close_pair", forbid_unknown_fields=True):
    """ClosePair on the wire."""


ActionMsg = OpenPositionMsg | ClosePercentMsg | UpdateStopLossMsg | ActivateTrailingStopMsg | OpenPairMsg | ClosePairMsg
# Per action class, its wire class; a kind without one cannot be sent (a test holds every ACTION_KINDS member has one).
_WIRE: dict[type[Action], type[ActionMsg]] = {
    OpenPosition: OpenPositionMsg,
    ClosePercent: ClosePercentMsg,
    UpdateStopLoss: UpdateStopLossMsg,
    ActivateTrailingStop: ActivateTrailingStopMsg,
    OpenPair: OpenPairMsg,
    ClosePair: ClosePairMsg,
}
_PLAIN: dict[type[ActionMsg], type[Action]] = {wire: plain for plain, wire in _WIRE.items()}


def action_msg(action: Action) -> ActionMsg:
    """An action as its wire message."""
    return _WIRE[type(action)](*msgspec.structs.astuple(action))


def action_of(msg: ActionMsg) -> Action:
    """The action a wire message carries, as the action queue's own class (a pair's legs too)."""
    if isinstance(msg, OpenPairMsg):
        return OpenPair(OpenPosition(*msgspec.structs.astuple(msg.long)), OpenPosition(*msgspec.structs.astuple(msg.short)))
    plain: type[Action] = _PLAIN[type(msg)]
    return plain(*msgspec.structs.astuple(msg))


class Decision(Msg, frozen=True, kw_only=True, tag="decision"):
    """A mind's answer to its entry of turn `k`: actions to queue, its events (codec wire messages), or its failure."""

    k: int
    sid: str
    actions: list[ActionMsg]
    events: list[msgspec.Raw]
    failure: Failure | None
    busy_ns: int


class StreamHistory(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The candles of one stream the hub holds, oldest first."""

    symbol: str
    tf: str
    candles: list[CandleT]


class Activate(Msg, frozen=True, kw_only=True, tag="activate"):
    """Build a strategy's mind from its config (StrategyConfig JSON); Warm messages then bring the history it reads."""

    sid: str
    spec: msgspec.Raw


class Activated(Msg, frozen=True, kw_only=True, tag="activated"):
    """A mind built (or why not), and the streams it reads: the history the hub sends it."""

    sid: str
    failure: Failure | None
    streams: list[tuple[str, str]]


class Warm(Msg, frozen=True, kw_only=True, tag="warm"):
    """Part of a mind's warm-up history, in chunks a server's payload limit takes; the last (`done`) warms it."""

    sid: str
    history: list[StreamHistory]
    done: bool


class Warmed(Msg, frozen=True, kw_only=True, tag="warmed"):
    """A chunk taken; after the last, the mind warmed (or why not)."""

    sid: str
    failure: Failure | None


class Refused(Msg, frozen=True, kw_only=True, tag="refused"):
    """A worker's answer to a message it cannot act on (does not decode, names a strategy it does not hold): why."""

    reason: str


class Fingerprint(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What hub and worker must share to trade alike: versions, and per strategy a digest of its config and code."""

    bot_version: str
    protocol: int
    codec: int
    strategies: dict[str, str]


class Hello(Msg, frozen=True, kw_only=True, tag="hello"):
    """A worker ready for turns, asking the hub to take it in."""

    worker: str
    pid: int
    host: str
    fingerprint: Fingerprint


class Welcome(Msg, frozen=True, kw_only=True, tag="welcome"):
    """The hub's answer to a Hello: taken in, or refused with each difference named."""

    accepted: bool
    problems: list[str]


class Stop(Msg, frozen=True, kw_only=True, tag="stop"):
    """The hub is done with its workers: they exit."""

    reason: str


class Sync(Msg, frozen=True, kw_only=True, tag="sync"):
    """The hub asks a daemon worker to hold a strategy's mind: keep the one it has if it is this one, else claim its lease and build it.

    `decided`: the number of the last turn whose decision the hub applied (0: none); `pending`: the
    turn it awaits a decision on, if any. A mind kept is one built from the same `digest` that decided
    exactly through `decided` (or through `pending`, its decision still at hand).
    """

    sid: str
    # The hub's lane of the strategy (random, per load): a mind or a cached decision of another lane is never taken for this one's.
    lane: str
    spec: msgspec.Raw
    digest: str
    decided: int
    pending: int | None


class Synced(Msg, frozen=True, kw_only=True, tag="synced"):
    """A worker's answer to a Sync: the mind kept, or built (Warm messages then bring its history), or why not."""

    sid: str
    # The claim's epoch of its lease (0 when refused).
    epoch: int
    kept: bool
    # The streams it reads, whose history the hub sends (empty when kept or refused).
    streams: list[tuple[str, str]]
    # Building the mind raised: the strategy's failure.
    failure: Failure | None
    # Not taken, and why (its lease is another worker's, its code differs here); `holder`: the worker holding the lease.
    refused: str | None
    holder: str | None
    # Refused for as long as this worker runs (its config or code of the strategy differs): the hub goes to another.
    lasting: bool = False


class Ask(Msg, frozen=True, kw_only=True, tag="ask"):
    """Turn `n` of one strategy in the daemon: its candle and its book's view after the hub's part; answered by a Decision with k = n."""

    sid: str
    lane: str
    epoch: int
    n: int
    symbol: str
    tf: str
    ts: int
    candle: CandleT
    kind: TurnKind
    view: View


class Release(Msg, frozen=True, kw_only=True, tag="release"):
    """The hub is done with a strategy's mind on this worker (unloaded, moved): drop it and its lease."""

    sid: str


class Released(Msg, frozen=True, kw_only=True, tag="released"):
    """A Release done (also when the worker held no such mind)."""

    sid: str


Message = Turn | Decision | Activate | Activated | Warm | Warmed | Refused | Hello | Welcome | Stop | Sync | Synced | Ask | Release | Released
_HEADER = msgspec.json.Decoder(Header)
_DECODER = msgspec.json.Decoder(Message)
_ENCODER = msgspec.json.Encoder()


def encode(message: Message) -> bytes:
    """A message as JSON bytes."""
    return _ENCODER.encode(message)


def decode(data: bytes) -> Message:
    """The message JSON bytes hold, every field checked; ProtocolError naming what does not fit or another version.

    The version is read first, alone: a message of another protocol may be shaped otherwise, and is refused as such.
    """
    try:
        header = _HEADER.decode(data)
        if header.v != PROTOCOL:
            raise ProtocolError(f"cluster message of protocol {header.v}, this bot speaks {PROTOCOL}")
        return _DECODER.decode(data)
    except msgspec.ValidationError as exc:
        raise ProtocolError(f"cluster message does not decode: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"cluster message is not JSON: {exc}") from None


_BATCH = msgspec.json.Decoder(list[msgspec.Raw])


def encode_batch(messages: list[bytes]) -> bytes:
    """Encoded messages as one payload (a JSON array of them): a worker's replies to one request."""
    return b"[" + b",".join(messages) + b"]"


def decode_batch(data: bytes) -> list[bytes]:
    """The encoded messages of a batch, each still to decode; ProtocolError when it is not a JSON array."""
    try:
        return [bytes(raw) for raw in _BATCH.decode(data)]
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ProtocolError(f"cluster reply is not a list of messages: {exc}") from None
