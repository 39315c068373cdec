"""What `bot ctl events` makes of each message of the daemon's stream: a typed event, the daemon's reply, or why not.

Every event message is decoded with the one codec (`bot.event_codec.message_event`), so its
version and every field are checked on the receiving side as on any other wire.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.control.client import is_reply
from bot.event_codec import EventDecodeError, EventFormatError, EventVersionError, message_event
from bot.events import Event


@dataclass(frozen=True, slots=True)
class Received:
    """An event of the stream, typed, and the wire message as the daemon sent it (what `--json` prints)."""

    event: Event
    wire: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Reply:
    """The daemon's answer to the request: streaming from now on (`ok`), or a refusal or a drop with its message."""

    ok: bool
    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A message this bot ctl cannot read: which one and why; `other_version` when none after it will read either."""

    problem: str
    other_version: bool


def read_message(message: Any, number: int) -> Received | Reply | Unreadable:
    """What the `number`th message (1-based) of an events stream is; never raises on what the daemon sent."""
    if isinstance(message, dict) and "event" in message:
        wire = message["event"]
        try:
            return Received(message_event(wire), wire)
        except EventVersionError as exc:
            return Unreadable(f"{_which(wire, number)}: {exc}", other_version=True)
        except EventDecodeError as exc:
            return Unreadable(str(exc), other_version=False)  # it names the event's seq and type itself
        except EventFormatError as exc:
            return Unreadable(f"{_which(wire, number)}: {exc}", other_version=False)
    if is_reply(message):
        return Reply(message["ok"], message)
    return Unreadable(f"message {number} of the stream: neither an event nor a control reply", other_version=False)


def _which(wire: Any, number: int) -> str:
    # The event's own sequence number where it has a readable one, else its place in the stream.
    seq = wire.get("seq") if isinstance(wire, dict) else None
    return f"event seq {seq}" if type(seq) is int else f"message {number} of the stream"
