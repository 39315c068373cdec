"""`GET /api/v1/events`: the live event stream as server-sent events, with the control socket's filters and its slow-reader rule.

Each event is one `data:` line holding its wire message (the events.jsonl envelope with `v` and
`ts_init`, as `bot ctl events --json` prints it). A reader that falls `control.event_buffer` events
behind, or whose connection takes nothing for SEND_TIMEOUT_S, is dropped (an `event: error` line with
code slow_reader when it can still be sent): the bot is never slowed and memory stays bounded.

While a strategy has a candle queued or in hand the events are held back, until the round is
handled (then EVENTS_PER_SEND a write, the strategies first between writes), or until as many as
`control.event_buffer` are held or HOLD_BACK_S (2 s) passed (then all at once): encoding and sending
them does not delay a round, unless the strategies never stop. The stream's buffer has room for those besides
the reader's `event_buffer` (twice its size), so holding back never makes a reader slow.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

import anyio
import anyio.lowlevel
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from bot.bus import EventStream
from bot.control.commands import STREAM_COMMANDS, Control, EventsArgs, check_event_args
from bot.control.protocol import validate_args
from bot.event_codec import encode_message
from bot.events import EVENT_CLASSES

# Seconds a send may wait for a reader that takes nothing before it is dropped.
SEND_TIMEOUT_S = 5.0
# Events written in one send while the strategies are quiet (~10 µs each to encode and frame on a 2-core host: a
# round falling due waits for one send at most).
EVENTS_PER_SEND = 50
# Seconds the events may be held back each time while the strategies handle their candles (a daemon never idle still
# streams): late trade rounds of a thousand strategies run back to back for 1.0-1.4 s on a 2-core host.
HOLD_BACK_S = 2.0


def events_args(control: Control, request: Request) -> EventsArgs:
    """The stream's filters from the query (`strategy`, `type` repeated), checked as the socket's `events` command checks them; ControlError."""
    raw: dict[str, object] = {}
    strategy = request.query_params.get("strategy")
    if strategy is not None:
        raw["strategy_id"] = strategy
    types = request.query_params.getlist("type")
    if types:
        raw["types"] = types
    args = validate_args(STREAM_COMMANDS["events"], raw)
    assert isinstance(args, EventsArgs)
    return check_event_args(control, args)


class EventStreamResponse(Response):
    """The server-sent events of one reader: opened on the bus when the response starts, closed when it ends."""

    media_type = "text/event-stream"

    def __init__(self, control: Control, args: EventsArgs, buffer: int) -> None:
        super().__init__(headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        # Open-ended: sent chunked, never with the length of an empty body.
        self.raw_headers = [(name, value) for name, value in self.raw_headers if name != b"content-length"]
        self._control = control
        self._args = args
        self._buffer = buffer
        # Events held back at most before they go while the strategies are still busy: as many as the reader's buffer (a
        # thousand strategies' trade round is thousands of events; flushed mid-round, their encoding held the GIL from the
        # journal's writer thread: half the buffer measured slower than three quarters).
        self._hold = buffer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        bus = self._control.daemon.services.bus
        types = None if self._args.types is None else [EVENT_CLASSES[name] for name in self._args.types]
        # Room for the events held back during a round besides the reader's own event_buffer: holding back never makes a reader slow.
        stream = bus.stream(types, self._args.strategy_id, maxlen=self._buffer + self._hold)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async with anyio.create_task_group() as tg:

                async def end_when_gone() -> None:
                    # A reader that hangs up is noticed at once, even with no matching event.
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    tg.cancel_scope.cancel()

                tg.start_soon(end_when_gone)
                await self._forward(stream, send)
                tg.cancel_scope.cancel()
        finally:
            bus.close_stream(stream)

    async def _forward(self, stream: EventStream, send: Send) -> None:
        if not await _chunk(send, b": streaming\n\n"):
            return
        async for event in stream:
            await self._after_candles(stream)
            if stream.dropped:
                message = f"reader too slow: {stream.dropped} events dropped; reconnect to resume"
                await _chunk(send, b"event: error\ndata: " + orjson.dumps({"error": {"code": "slow_reader", "message": message}}) + b"\n\n", final=True)
                return
            # The events that came meanwhile go with it: a round of a thousand strategies' events is a hundred writes, not thousands.
            # Still busy (the buffer filling, or held long enough): all of them, so the buffer's whole size is the reader's slack again.
            work = self._control.daemon.candle_work
            events = [event, *stream.take_buffered(EVENTS_PER_SEND - 1 if work is None or work.quiet else len(stream))]
            if not await _chunk(send, b"".join(b"data: " + encode_message(e) + b"\n\n" for e in events)):
                return


    async def _after_candles(self, stream: EventStream) -> None:
        """The strategies' candles first: while any is queued or in hand, the events gather (up to the reader's buffer more), then go."""
        # A send need not yield: a round falling due meanwhile is not kept waiting; one released then is waited for below.
        await anyio.lowlevel.checkpoint()
        pending = self._control.daemon.candle_work
        if pending is None or pending.quiet:
            return
        with anyio.move_on_after(HOLD_BACK_S):
            # Checked again here, where the events are sent from: a late feed releases the next round while the waiters unwind.
            while not pending.quiet and len(stream) < self._hold and not stream.closed:
                async with anyio.create_task_group() as tg:

                    async def first_of(wait: Callable[[], Awaitable[None]]) -> None:
                        await wait()
                        tg.cancel_scope.cancel()

                    tg.start_soon(first_of, pending.wait_quiet)
                    # The encoding held back is the strategies' time (a thousand strategies' trade round is thousands of events;
                    # encoding them mid-round holds the GIL from the journal's writer thread).
                    tg.start_soon(first_of, partial(stream.wait_filled, self._hold))


async def _chunk(send: Send, body: bytes, final: bool = False) -> bool:
    """Send one part of the body; False when the reader took nothing for SEND_TIMEOUT_S (the connection is then left to close)."""
    with anyio.move_on_after(SEND_TIMEOUT_S) as waited:
        await send({"type": "http.response.body", "body": body, "more_body": not final})
    return not waited.cancelled_caught
