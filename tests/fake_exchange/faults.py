"""Faults a test schedules on the fake exchange: each applies once, at the point it names."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class RestFault:
    """The next `count` REST requests answer `status` (429 carries Retry-After)."""

    status: int
    count: int
    retry_after: float | None = None


@dataclass(slots=True)
class Faults:
    """Scheduled misbehaviour, keyed by the index of the candle being streamed.

    Indexes are positions in the served series. `disconnect` closes every websocket after
    that many pushes of the candle (0: before its first); `skip` leaves candles out of the
    stream (REST still has them); `duplicate` sends a candle's closing push twice; `late`
    holds a candle's closing push back until the next candle has started; `malformed` sends
    broken messages before the candle's closing push; `reject_ws` refuses that many
    websocket handshakes with HTTP 503.
    """

    rest: list[RestFault] = field(default_factory=list)
    disconnect: dict[int, int] = field(default_factory=dict)
    skip: set[int] = field(default_factory=set)
    duplicate: set[int] = field(default_factory=set)
    late: set[int] = field(default_factory=set)
    malformed: dict[int, list[str]] = field(default_factory=dict)
    reject_ws: int = 0

    def rest_errors(self, status: int, count: int = 1, retry_after: float | None = None) -> None:
        """Fail the next `count` REST requests with `status`."""
        self.rest.append(RestFault(status, count, retry_after))

    def skip_range(self, first: int, count: int) -> None:
        """Leave `count` candles from index `first` out of the stream."""
        self.skip.update(range(first, first + count))

    def take_rest(self) -> RestFault | None:
        """The fault the next REST request suffers, if any (consumes one)."""
        while self.rest:
            fault = self.rest[0]
            if fault.count > 0:
                fault.count -= 1
                return fault
            self.rest.pop(0)
        return None
