"""Long reads (an HTTP reply over every strategy, a scrape) cut into short slices of the loop that run between candle rounds.

The daemon's reads run on the strategies' event loop, and a read over a thousand strategies takes
tens of milliseconds in one piece: a candle round falling due meanwhile would wait for all of it.
Cut into slices, a round waits for one slice at most, and while any strategy has a candle queued
or in hand the read waits for it to finish: the strategies come first, a watcher second.
"""
from __future__ import annotations

import time
from collections.abc import AsyncIterator

import anyio
import anyio.lowlevel

from bot.daemon.inbox import QueuedCounter
from bot.errors import UnknownStrategyError
from bot.strategy.manager import StrategyManager
from bot.strategy.orchestrator import TradingOrchestrator

# The loop time one slice of a read may take before it gives the loop up.
SLICE_S = 0.002
# How long one read may wait for the strategies in all (then it only yields between slices): a
# daemon that is never idle still answers, slower.
PATIENCE_S = 2.0


class ReadSlices:
    """One read's slices: `await pause()` between its items gives the loop up whenever a slice's time is spent."""

    __slots__ = ("_pending", "_slice_s", "_patience_s", "_slice_ends", "waited_s")

    def __init__(self, pending: QueuedCounter | None, slice_s: float = SLICE_S, patience_s: float = PATIENCE_S) -> None:
        # None: nothing to wait for (no strategies' inboxes), the read only yields.
        self._pending = pending
        self._slice_s = slice_s
        self._patience_s = patience_s
        # The first pause ends a slice at once: a read that arrives while a round is handled starts after it.
        self._slice_ends = 0.0
        # Time this read spent waiting for the strategies.
        self.waited_s = 0.0

    async def pause(self) -> None:
        """Within the slice's time: return at once. After it: yield, waiting first until no strategy has a candle to handle."""
        if time.perf_counter() < self._slice_ends:
            return
        await self.yield_now()

    async def yield_now(self) -> None:
        """End the slice here: let the loop run what is ready, and the strategies finish their candles first."""
        pending = self._pending
        if pending is not None and not pending.idle and self.waited_s < self._patience_s:
            started = time.perf_counter()
            with anyio.move_on_after(self._patience_s - self.waited_s):
                await pending.wait_idle()
            self.waited_s += time.perf_counter() - started
        await anyio.lowlevel.checkpoint()
        self._slice_ends = time.perf_counter() + self._slice_s


async def each_strategy(manager: StrategyManager, slices: ReadSlices) -> AsyncIterator[tuple[str, TradingOrchestrator]]:
    """Every loaded strategy, in load order, read in slices (`slices.pause()` before each): one unloaded meanwhile is left out."""
    for sid in manager.ids():
        await slices.pause()
        try:
            orchestrator = manager.get(sid)
        except UnknownStrategyError:
            continue
        yield sid, orchestrator
