"""Faults a test schedules on the fake exchange: each applies once (or `count` times), at the point it names."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol, TypeVar


@dataclass(slots=True)
class RestFault:
    """The next `count` REST requests answer `status` (429 carries Retry-After)."""

    status: int
    count: int
    retry_after: float | None = None


@dataclass(slots=True)
class OrderDelay:
    """The next `count` order creations are booked, but their responses wait `delay_s` seconds."""

    delay_s: float
    count: int


@dataclass(slots=True)
class ThinStop:
    """The next `count` stops to trigger fill only `quantity` each, the rest EXPIRED (Binance: a stop-market order the book ran dry under)."""

    quantity: Decimal
    count: int


@dataclass(slots=True)
class OrderError:
    """The next `count` order creations are refused with this Binance error, nothing booked."""

    status: int
    code: int
    msg: str
    count: int


class RequestHold:
    """The next `count` requests it applies to wait, each at the fake, until `release` (or the fake stops).

    `until_held(n)` returns once `n` of them are waiting: a test holds two callers inside the
    same request, then lets them go on together.
    """

    def __init__(self, count: int) -> None:
        self.count = count
        self.held = 0
        self._released = asyncio.Event()
        self._arrived = asyncio.Event()

    async def wait(self) -> None:
        """Hold one request until released."""
        self.held += 1
        self._arrived.set()
        try:
            await self._released.wait()
        finally:
            self.held -= 1

    async def until_held(self, count: int) -> None:
        """Wait until `count` requests are held at once."""
        while self.held < count:
            self._arrived.clear()
            await self._arrived.wait()

    def release(self) -> None:
        """Let the held requests (and any later one this hold takes) go on."""
        self._released.set()


class _Counted(Protocol):
    count: int


_F = TypeVar("_F", bound=_Counted)


def _take(queue: list[_F]) -> _F | None:
    """The first fault of `queue` with uses left (consumes one), dropping spent ones."""
    while queue:
        fault = queue[0]
        if fault.count > 0:
            fault.count -= 1
            return fault
        queue.pop(0)
    return None


@dataclass(slots=True)
class Faults:
    """Scheduled misbehaviour, keyed by the index of the candle being streamed, or by request.

    Indexes are positions in the served series. `disconnect` closes every websocket after
    that many pushes of the candle (0: before its first); `skip` leaves candles out of the
    stream (REST still has them); `duplicate` sends a candle's closing push twice; `late`
    holds a candle's closing push back until the next candle has started; `malformed` sends
    broken messages before the candle's closing push; `reject_ws` refuses that many
    websocket handshakes with HTTP 503; `muted` markets (unified symbols) push nothing, their
    connections staying open; `handshakes`, while not set, holds every websocket handshake;
    `cancels`, while not set, holds every DELETE /api/v3/order before the order is cancelled;
    `lookups`, while not set, holds every GET /api/v3/order before it is answered.
    `rest` fails any /api/, /fapi/ or /dapi/ request, `trades` GET /api/v3/myTrades only; `order_delays` and `order_errors` apply
    to POST /api/v3/order only (after `rest` and authentication). `trade_holds` hold GET /api/v3/myTrades requests until released,
    `query_holds` GET /api/v3/order (an order looked up); `thin_stops` cut the fill of stops as they trigger.
    """

    rest: list[RestFault] = field(default_factory=list)
    trades: list[RestFault] = field(default_factory=list)
    order_delays: list[OrderDelay] = field(default_factory=list)
    order_rejects: list[OrderError] = field(default_factory=list)
    trade_holds: list[RequestHold] = field(default_factory=list)
    query_holds: list[RequestHold] = field(default_factory=list)
    thin_stops: list[ThinStop] = field(default_factory=list)
    # Every hold made, spent ones too (their requests may still be waiting): released when the fake stops.
    holds: list[RequestHold] = field(default_factory=list)
    disconnect: dict[int, int] = field(default_factory=dict)
    skip: set[int] = field(default_factory=set)
    duplicate: set[int] = field(default_factory=set)
    late: set[int] = field(default_factory=set)
    malformed: dict[int, list[str]] = field(default_factory=dict)
    reject_ws: int = 0
    muted: set[str] = field(default_factory=set)
    handshakes: asyncio.Event | None = None
    cancels: asyncio.Event | None = None
    lookups: asyncio.Event | None = None

    def rest_errors(self, status: int, count: int = 1, retry_after: float | None = None) -> None:
        """Fail the next `count` REST requests with `status`."""
        self.rest.append(RestFault(status, count, retry_after))

    def trade_errors(self, status: int, count: int = 1) -> None:
        """Fail the next `count` GET /api/v3/myTrades requests (an order's trades, its fees) with `status`, after `rest`."""
        self.trades.append(RestFault(status, count, None))

    def hold_trades(self, count: int = 1) -> RequestHold:
        """Hold the next `count` GET /api/v3/myTrades requests (an order's trades, its fees) until the hold is released."""
        hold = RequestHold(count)
        self.trade_holds.append(hold)
        self.holds.append(hold)
        return hold

    def take_trade_hold(self) -> RequestHold | None:
        """The hold the next GET /api/v3/myTrades waits in, if any (consumes one)."""
        return _take(self.trade_holds)

    def hold_queries(self, count: int = 1) -> RequestHold:
        """Hold the next `count` GET /api/v3/order requests (an order looked up) until the hold is released."""
        hold = RequestHold(count)
        self.query_holds.append(hold)
        self.holds.append(hold)
        return hold

    def take_query_hold(self) -> RequestHold | None:
        """The hold the next GET /api/v3/order waits in, if any (consumes one)."""
        return _take(self.query_holds)

    def release_holds(self) -> None:
        """Let every held request go on (the fake is stopping: a held response must not stall it)."""
        for hold in self.holds:
            hold.release()

    def thin_stop(self, quantity: str, count: int = 1) -> None:
        """Let the next `count` triggered stops fill only `quantity` each; the rest of each expires."""
        self.thin_stops.append(ThinStop(Decimal(quantity), count))

    def take_thin_stop(self) -> Decimal | None:
        """How much the stop triggering now may fill, if a thin book was scheduled (consumes one)."""
        fault = _take(self.thin_stops)
        return None if fault is None else fault.quantity

    def take_trades(self) -> RestFault | None:
        """The fault the next GET /api/v3/myTrades suffers, if any (consumes one)."""
        return _take(self.trades)

    def order_timeout(self, delay_s: float, count: int = 1) -> None:
        """Book the next `count` orders as usual but hold each response back `delay_s` seconds.

        A client whose timeout is shorter gives up without learning that the order exists.
        """
        self.order_delays.append(OrderDelay(delay_s, count))

    def order_errors(self, status: int, code: int, msg: str, count: int = 1) -> None:
        """Refuse the next `count` order creations with HTTP `status` and `{"code": code, "msg": msg}`."""
        self.order_rejects.append(OrderError(status, code, msg, count))

    def skip_range(self, first: int, count: int) -> None:
        """Leave `count` candles from index `first` out of the stream."""
        self.skip.update(range(first, first + count))

    def hold_handshakes(self) -> asyncio.Event:
        """Hold websocket handshakes until the returned event is set: a client dialing meanwhile hears no push."""
        self.handshakes = asyncio.Event()
        return self.handshakes

    def hold_cancels(self) -> asyncio.Event:
        """Hold order cancels until the returned event is set: each reaches the exchange (and is answered) only then.

        Meanwhile the order is still open to anyone asking about it, as on an exchange slow to take the cancel.
        """
        self.cancels = asyncio.Event()
        return self.cancels

    def hold_lookups(self) -> asyncio.Event:
        """Hold order lookups (GET /api/v3/order) until the returned event is set: each is answered only then."""
        self.lookups = asyncio.Event()
        return self.lookups

    def take_rest(self) -> RestFault | None:
        """The fault the next REST request suffers, if any (consumes one)."""
        return _take(self.rest)

    def take_order_delay(self) -> OrderDelay | None:
        """The delay the next order creation's response suffers, if any (consumes one)."""
        return _take(self.order_delays)

    def take_order_error(self) -> OrderError | None:
        """The error the next order creation is refused with, if any (consumes one)."""
        return _take(self.order_rejects)
