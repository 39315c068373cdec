"""Long reads (an HTTP reply over every strategy, a scrape) cut into short slices of the loop that run between candle rounds.

The daemon's reads run on the strategies' event loop, and a read over a thousand strategies takes
tens of milliseconds in one piece: a candle round falling due meanwhile would wait for all of it.
Slices of about 1 ms: a round at 100 strategies takes about 3 ms.
Cut into slices, a round waits for one slice of each read under way at most, and while any strategy has a candle queued
or in hand on the loop the read waits for it to finish: the strategies come first, a watcher second.
A reply is read strategy by strategy across those pauses: each strategy's row is consistent, the
reply as a whole is not one instant's snapshot.
"""
from __future__ import annotations

import time
from collections.abc import AsyncIterator

import anyio
import anyio.lowlevel

from bot.daemon.inbox import CandleWork
from bot.errors import UnknownStrategyError
from bot.strategy.manager import StrategyManager
from bot.strategy.orchestrator import TradingOrchestrator

# The loop time one slice of a read may take before it gives the loop up.
SLICE_S = 0.001
# How long one request may wait for the strategies in all (then it only yields between slices): a
# daemon that is never quiet still answers, slower.
PATIENCE_S = 2.0


class ReadSlices:
    """One request's slices: `await pause()` between its items gives the loop up whenever a slice's time is spent.

    The first pause ends a slice at once: a read that arrives while a round is handled starts after it.
    """

    __slots__ = ("_work", "_slice_s", "_patience_s", "_slice_ends", "_waited_s")

    def __init__(self, work: CandleWork | None, slice_s: float = SLICE_S, patience_s: float = PATIENCE_S) -> None:
        # None: nothing to wait for (no strategies' inboxes), the read only yields.
        self._work = work
        self._slice_s = slice_s
        self._patience_s = patience_s
        self._slice_ends = 0.0
        # Time this request spent waiting for the strategies.
        self._waited_s = 0.0

    @property
    def waited_s(self) -> float:
        """Seconds this request has waited for the strategies so far."""
        return self._waited_s

    async def pause(self) -> None:
        """Within the slice's time, the strategies quiet: return at once. Else: yield, then wait until no strategy has a candle to handle."""
        work = self._work
        # Within the slice's time and nothing for the strategies: go on. A caller that gave the loop up elsewhere
        # (a journal read in a worker thread) may find a round begun meanwhile: that ends the slice too.
        if time.perf_counter() < self._slice_ends and (work is None or work.quiet or self._waited_s >= self._patience_s):
            return
        await anyio.lowlevel.checkpoint()
        # Checked after the yield, and the slice begins in the step that saw it quiet: a round released during the
        # yield (by a feed that is late, right as the one before is handled) is handled before the slice, not after it.
        if work is not None and not work.quiet and self._waited_s < self._patience_s:
            started = time.perf_counter()
            with anyio.move_on_after(self._patience_s - self._waited_s):
                await work.wait_quiet()
            self._waited_s += time.perf_counter() - started
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
