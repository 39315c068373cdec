"""The span of candle open times a run accepts, so an absurd timestamp is refused instead of replayed."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

# 1970-01-01T00:00:00Z: no recorded market is older, and negative times are a unit mistake.
EARLIEST_MS = 0
# 9999-12-31T23:59:59.999Z, the last instant a date can be written for: no bound may pass it.
LATEST_MS = 253_402_300_799_999


def iso_or_raw(ts_ms: int) -> str:
    """UTC ISO-8601 text of epoch milliseconds, or a plain description when no calendar date exists."""
    if ts_ms < EARLIEST_MS:
        return "before 1970"
    if ts_ms > LATEST_MS:
        return "beyond the year 9999"
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Candle open times from `earliest` to `latest` (epoch ms, inclusive), in the file's own time.

    A source moved in time (shift_days) reads its file with the bounds moved back by `shift_ms`,
    so the file's values are compared as written; messages show the time they would play at.
    `latest_why` says where the upper bound comes from, for the message that refuses a candle.
    """

    earliest: int
    latest: int
    latest_why: str
    shift_ms: int = 0

    def problem(self, ts: int) -> str | None:
        """Why the file timestamp `ts` is outside the window, or None when it is inside."""
        if ts < self.earliest:
            return f"timestamp {ts}{self._played(ts)} is before the earliest allowed open time, {iso_or_raw(self.earliest + self.shift_ms)}"
        if ts > self.latest:
            return (
                f"timestamp {ts}{self._played(ts)} is after the latest allowed open time, "
                f"{iso_or_raw(self.latest + self.shift_ms)} ({self.latest_why})"
            )
        return None

    def _played(self, ts: int) -> str:
        played = iso_or_raw(ts + self.shift_ms)
        return f" (played at {played} after shift_days)" if self.shift_ms else f" ({played})"
