"""A strategy's bounded candle inbox: when it falls behind, pending candles coalesce per stream."""
from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

import anyio

Item = TypeVar("Item")
Key = tuple[str, str]


class QueuedCounter:
    """Items queued across a set of inboxes, kept current in O(1) (is everything processed?)."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


class CandleInbox(Generic[Item]):
    """Bounded FIFO of candles for one orchestrator; never blocks the publisher.

    When full, the pending items are coalesced to one per (symbol, timeframe), in the order of
    each stream's newest arrival, and the overrun is counted: a strategy that falls behind skips
    to the latest candle of each stream instead of growing a backlog or slowing the rest.
    `merge(older, newer)` folds the skipped items into the kept one (by default the newer wins).
    A strategy with more streams than `maxlen` keeps one item per stream.
    """

    def __init__(self, maxlen: int, merge: Callable[[Item, Item], Item] | None = None, counter: QueuedCounter | None = None) -> None:
        if maxlen < 1:
            raise ValueError("inbox size must be >= 1")
        self._items: deque[tuple[Key, Item]] = deque()
        self._maxlen = maxlen
        self._merge = merge
        self._counter = counter if counter is not None else QueuedCounter()
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
        self._counter.n -= len(items)
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

    async def drained(self) -> None:
        """Wait until the consumer has taken every queued item."""
        while self._items:
            await anyio.sleep(0.001)
