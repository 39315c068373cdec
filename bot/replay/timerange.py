"""`bot replay --from/--to`: the span of candle open times a replay trades on, read from UTC dates."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.errors import BotError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
# The fraction of a second, the only one an ISO-8601 date-time can have (fromisoformat drops
# digits past the sixth without a word).
_FRACTION = re.compile(r"\d[.,](\d+)")
_FORMATS = "use a UTC date or date-time such as 2022-01-01, 2022-01-01T12:30 or '2022-01-01 12:30Z'"


def iso(ts_ms: int) -> str:
    """UTC ISO-8601 text of epoch ms, to the second (to the millisecond when it has some)."""
    moment = _EPOCH + ts_ms * _MS
    return moment.isoformat(timespec="milliseconds" if ts_ms % 1000 else "seconds").replace("+00:00", "Z")


class EmptyRangeError(BotError):
    """No candle file has a candle that opens inside the replay's --from/--to range."""


def parse_instant(option: str, text: str) -> int:
    """Epoch ms of an ISO-8601 date or date-time; without an offset it is UTC. ValueError names `option`.

    A fraction of a second finer than a millisecond is refused: candle times are whole
    milliseconds, and rounding it would make two different texts one instant.
    """
    fraction = _FRACTION.search(text)
    if fraction is not None and fraction.group(1)[3:].strip("0"):
        raise ValueError(f"{option} {text!r} is finer than a millisecond, the precision of candle times")
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        reason = str(exc)
        # fromisoformat's generic message only repeats the text; a field out of range says which.
        why = "" if reason.startswith("Invalid isoformat") else f" ({reason})"
        raise ValueError(f"{option} {text!r} is not a date{why}: {_FORMATS}") from None
    try:
        moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first day a date can name
        raise ValueError(f"{option} {text!r} is outside the years 1 to 9999") from None
    return (moment - _EPOCH) // _MS


@dataclass(frozen=True, slots=True)
class TimeRange:
    """The candles a replay trades on: those that open at or after `start` and before `end` (epoch ms; None is open)."""

    start: int | None = None
    end: int | None = None

    @classmethod
    def parse(cls, start: str | None, end: str | None) -> TimeRange | None:
        """The range of `--from START --to END` (either may be None); None when neither is given.

        ValueError, naming the option, for text that is not a date and for an empty range.
        """
        if start is None and end is None:
            return None
        first = None if start is None else parse_instant("--from", start)
        stop = None if end is None else parse_instant("--to", end)
        if first is not None and stop is not None and first >= stop:
            raise ValueError(f"--from {iso(first)} is not before --to {iso(stop)} (--to is exclusive): the range is empty")
        return cls(first, stop)

    def describe(self) -> str:
        """The range as the options that give it, e.g. `--from 2022-01-01T00:00:00Z --to 2022-02-01T00:00:00Z`."""
        parts = [] if self.start is None else [f"--from {iso(self.start)}"]
        if self.end is not None:
            parts.append(f"--to {iso(self.end)}")
        return " ".join(parts)

    def holds(self, first: int, last: int | None) -> bool:
        """Whether candles opening from `first` to `last` (None: not known) can have one in the range."""
        if self.end is not None and first >= self.end:
            return False
        return self.start is None or last is None or last >= self.start

    def as_report(self) -> dict[str, Any]:
        """The range as report.json records it: epoch ms and UTC text, null for an open end."""
        return {
            "from_ms": self.start,
            "to_ms": self.end,
            "from": None if self.start is None else iso(self.start),
            "to": None if self.end is None else iso(self.end),
        }
