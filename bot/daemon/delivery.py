"""Live-mode delivery: each orchestrator consumes its own bounded inbox in its own task."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import TaskGroup

from bot.candles.model import Candle
from bot.daemon.inbox import CandleInbox
from bot.strategy.delivery import CandleHandler

_Item = tuple[CandleHandler, str, str, Candle, int]
_TIME_SLICE_S = 0.001
ErrorHook = Callable[[Any, CandleHandler, Exception], None]


@dataclass(slots=True)
class _Lane:
    inbox: CandleInbox[_Item]
    processed: int = 0


def _span(older: _Item, newer: _Item) -> _Item:
    """Coalesce two queued candles of one stream into one spanning both.

    First open, extreme high and low, last close, summed volume: the strategy skips candles but
    its stops and take-profits still see every price it missed.
    """
    handler, symbol, timeframe, candle, ts = newer
    first = older[3]
    high = first.high if first.high > candle.high else candle.high
    low = first.low if first.low < candle.low else candle.low
    return handler, symbol, timeframe, Candle(candle.ts, first.open, high, low, candle.close, first.volume + candle.volume), ts


class InboxDelivery:
    """Routes each candle into the owner's inbox; a task per owner, in the daemon's task group, runs it.

    A slow strategy delays nobody else: the feed only appends to inboxes, and each owner's task
    yields to the others after every candle. Errors in a handler go to `on_error` (the manager's
    guarded seam), never out of the task.
    """

    def __init__(self, task_group: TaskGroup, inbox_size: int, on_error: ErrorHook) -> None:
        self._tg = task_group
        self._inbox_size = inbox_size
        self._on_error = on_error
        self._lanes: dict[object, _Lane] = {}

    def wrap(self, owner: object, handler: CandleHandler) -> CandleHandler:
        """A callable that queues the candle for `owner` with `handler`."""
        lane = self._lanes.get(owner)
        if lane is None:
            lane = self._lanes[owner] = _Lane(CandleInbox(self._inbox_size, _span))
            self._tg.start_soon(self._consume, owner, lane, name=f"inbox:{getattr(owner, 'strategy_id', owner)}")
        put = lane.inbox.put

        def enqueue(symbol: str, timeframe: str, candle: Candle, ts: int) -> None:
            put((symbol, timeframe), (handler, symbol, timeframe, candle, ts))

        return enqueue

    def reset(self, owner: object) -> list[tuple[str, str, Candle, int]]:
        """Take out what is queued for `owner` (routed under its previous role), oldest first."""
        lane = self._lanes.get(owner)
        if lane is None:
            return []
        return [(symbol, timeframe, candle, ts) for _, symbol, timeframe, candle, ts in lane.inbox.clear()]

    def detach(self, owner: object) -> None:
        """Close `owner`'s inbox; its task ends after the queue (cleared here) is empty."""
        lane = self._lanes.pop(owner, None)
        if lane is not None:
            lane.inbox.clear()
            lane.inbox.close()

    def stats(self, owner: object) -> dict[str, int]:
        """Inbox depth, overruns, coalesced candles and candles processed for `owner`."""
        lane = self._lanes.get(owner)
        if lane is None:
            return {"inbox_depth": 0, "overruns": 0, "coalesced": 0, "processed": 0}
        inbox = lane.inbox
        return {"inbox_depth": len(inbox), "overruns": inbox.overruns, "coalesced": inbox.coalesced, "processed": lane.processed}

    def queued(self) -> int:
        """Candles waiting in all inboxes."""
        return sum(len(lane.inbox) for lane in self._lanes.values())

    async def drain(self) -> None:
        """Wait until every inbox is empty (graceful stop)."""
        for lane in list(self._lanes.values()):
            await lane.inbox.drained()

    def close_all(self) -> None:
        """Close every inbox so every consumer task ends."""
        for owner in list(self._lanes):
            lane = self._lanes.pop(owner)
            lane.inbox.close()

    async def _consume(self, owner: object, lane: _Lane) -> None:
        inbox = lane.inbox
        while True:
            try:
                item: _Item | None = await inbox.get()
            except anyio.EndOfStream:
                return
            # Take queued candles for up to one time slice, then let the feed and the other
            # strategies run: a cheap strategy clears a burst in one turn, an expensive one
            # yields after every candle and, if it cannot keep up, its inbox coalesces.
            turn_ends = time.perf_counter() + _TIME_SLICE_S
            while item is not None:
                handler, symbol, timeframe, candle, ts = item
                try:
                    handler(symbol, timeframe, candle, ts)
                except Exception as exc:  # the guarded seam: the manager marks the strategy failed
                    self._on_error(owner, handler, exc)
                lane.processed += 1
                item = inbox.get_nowait() if time.perf_counter() < turn_ends else None
            await anyio.lowlevel.checkpoint()
