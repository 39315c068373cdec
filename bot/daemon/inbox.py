"""A strategy's bounded candle inbox: when it falls behind, pending candles coalesce per stream."""
from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

import anyio

Item = TypeVar("Item")
Key = tuple[str, str]


class CandleWork:
    """The strategies' candle work, kept current in O(1): candles queued across a delivery's inboxes and lanes handling one.

    `n` counts what waits in the inboxes, `in_hand` the lanes handling a candle (taken, its turn not
    settled yet), `elsewhere` those of them waiting on what is not the loop's work (a worker's
    decision over the network). Drained is nothing queued or in hand: every candle published was
    handled and its turn settled (the feed position, a graceful stop). Quiet is nothing queued and
    nothing in hand but what waits elsewhere: long reads (HTTP replies, scrapes, the event stream)
    wait for quiet between their slices (bot.daemon.read_slices), so a round never waits behind them.

    CandleInbox changes `n` directly where it cannot reach zero with nothing in hand (a put, a
    coalesce, a get just before the lane takes the candle in hand); every change that can make the
    work quiet or drained goes through `settled`, `cleared` or `waits_elsewhere`, which wake the waiters.
    """

    __slots__ = ("n", "in_hand", "elsewhere", "_quiet", "_drained")

    def __init__(self) -> None:
        self.n = 0
        self.in_hand = 0
        self.elsewhere = 0
        # Set (and dropped) when the work goes quiet / drained; made by the first waiter of a busy spell.
        self._quiet: anyio.Event | None = None
        self._drained: anyio.Event | None = None

    @property
    def quiet(self) -> bool:
        """Whether no candle is queued and no lane handles one on the loop."""
        return self.n == 0 and self.in_hand == self.elsewhere

    @property
    def drained(self) -> bool:
        """Whether no candle is queued and no lane holds one (every turn settled)."""
        return self.n == 0 and self.in_hand == 0

    def took(self) -> None:
        """A lane took a candle (or other work of its turns) in hand."""
        self.in_hand += 1

    def settled(self) -> bool:
        """A lane is done with what it took; whether the work is drained now (waiters are woken)."""
        self.in_hand -= 1
        self._wake()
        return self.n == 0 and self.in_hand == 0

    def waits_elsewhere(self, waiting: bool) -> None:
        """A lane in hand starts (True) or stops (False) waiting on what is not the loop's work."""
        self.elsewhere += 1 if waiting else -1
        self._wake()

    def cleared(self, count: int) -> None:
        """`count` queued candles were taken out unhandled (an inbox cleared): waiters are woken if that made the work quiet.

        Not reported to the delivery's `on_drained` (the feed position), though `wait_drained` waiters
        are woken: a strategy's candles taken out on a reset are routed again at once, and the feed
        position waits for the next round's end (a restart replays at most that round).
        """
        self.n -= count
        if count:
            self._wake()

    async def wait_quiet(self) -> None:
        """Return once quiet (at once when quiet now)."""
        while not self.quiet:
            if self._quiet is None:
                self._quiet = anyio.Event()
            await self._quiet.wait()

    async def wait_drained(self) -> None:
        """Return once drained (at once when drained now)."""
        while not self.drained:
            if self._drained is None:
                self._drained = anyio.Event()
            await self._drained.wait()

    def _wake(self) -> None:
        if self.n != 0 or self.in_hand != self.elsewhere:
            return
        quiet, self._quiet = self._quiet, None
        if quiet is not None:
            quiet.set()
        if self.in_hand == 0:
            drained, self._drained = self._drained, None
            if drained is not None:
                drained.set()


class CandleInbox(Generic[Item]):
    """Bounded FIFO of candles for one orchestrator; never blocks the publisher.

    When full, the pending items are coalesced to one per (symbol, timeframe), in the order of
    each stream's newest arrival, and the overrun is counted: a strategy that falls behind skips
    to the latest candle of each stream instead of growing a backlog or slowing the rest.
    `merge(older, newer)` folds the skipped items into the kept one (by default the newer wins).
    A strategy with more streams than `maxlen` keeps one item per stream.
    """

    def __init__(self, maxlen: int, merge: Callable[[Item, Item], Item] | None = None, counter: CandleWork | None = None) -> None:
        if maxlen < 1:
            raise ValueError("inbox size must be >= 1")
        self._items: deque[tuple[Key, Item]] = deque()
        self._maxlen = maxlen
        self._merge = merge
        self._counter = counter if counter is not None else CandleWork()
        self._wakeup = anyio.Event()
        self._closed = False
        self.overruns = 0
        self.coalesced = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, key: Key, item: Item) -> None:
        """Queue an item (the publisher's side: synchronous, never waits)."""
        if self._closed:
            return
        self._items.append((key, item))
        self._counter.n += 1
        if len(self._items) > self._maxlen:
            self._coalesce()
        self._wakeup.set()

    def items(self) -> list[Item]:
        """What is queued, oldest first, left in place."""
        return [item for _, item in self._items]

    def first(self) -> Item | None:
        """The item first in line, left queued (None when empty)."""
        return self._items[0][1] if self._items else None

    def put_back(self, key: Key, item: Item) -> None:
        """Queue an item taken out again, first in line (it is older than everything queued)."""
        if self._closed:
            return
        self._items.appendleft((key, item))
        self._counter.n += 1
        self._wakeup.set()

    def _coalesce(self) -> None:
        before = len(self._items)
        merged: dict[Key, Item] = {}
        last_seen: dict[Key, int] = {}
        merge = self._merge
        for position, (key, item) in enumerate(self._items):
            previous = merged.get(key)
            merged[key] = item if previous is None or merge is None else merge(previous, item)
            last_seen[key] = position
        # One per stream even if that exceeds maxlen: dropping a whole stream would hide its
        # prices; the streams of one strategy are few, so this stays bounded.
        kept = sorted(merged.items(), key=lambda entry: last_seen[entry[0]])
        self._items = deque(kept)
        self.overruns += 1
        self.coalesced += before - len(kept)
        self._counter.n -= before - len(kept)

    def clear(self) -> list[Item]:
        """Take every queued item out, oldest first, and return them."""
        items = [item for _, item in self._items]
        self._items.clear()
        self._counter.cleared(len(items))
        return items

    def close(self) -> None:
        """End the inbox: the consumer finishes what is queued, then `get` raises EndOfStream."""
        self._closed = True
        self._wakeup.set()

    def get_nowait(self) -> Item | None:
        """The next item if one is queued, else None."""
        if not self._items:
            return None
        self._counter.n -= 1
        return self._items.popleft()[1]

    async def get(self) -> Item:
        """The next item, waiting for one; EndOfStream once closed and drained."""
        while not self._items:
            if self._closed:
                raise anyio.EndOfStream
            self._wakeup = anyio.Event()
            await self._wakeup.wait()
        self._counter.n -= 1
        return self._items.popleft()[1]
