"""The candle hub: ingests base candles per symbol, derives higher timeframes, keeps bounded history."""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import islice

from bot.bus import EventBus
from bot.candles.aggregate import Aggregator
from bot.errors import BotError
from bot.events import CandleClosed, CandleGap
from bot.ohlcv import Candle, timeframe_ms

CandleCallback = Callable[[str, str, Candle, int], None]
# Told of every candle a stream's history takes, as (symbol, timeframe, candle): the cluster's market-data outbox.
HistoryObserver = Callable[[str, str, Candle], None]


class CandleFeedError(BotError):
    """Candles that do not fit their declared timeframe (too close together or off its boundaries)."""

    def __init__(self, symbol: str, reason: str) -> None:
        self.symbol = symbol
        super().__init__(f"{symbol}: {reason}")


@dataclass(slots=True)
class _Derived:
    timeframe: str
    ms: int
    aggregator: Aggregator
    # Buckets starting before this are partial (the data began inside them): never emitted.
    min_ts: int | None
    # Buckets starting before this hold preloaded history (a replay's warm-up before --from):
    # whole candles, but history, so they go to the history callbacks when they close, never
    # published. Open times are >= 0, so 0 holds back nothing.
    history_before: int = 0


@dataclass(slots=True)
class _Feed:
    base_tf: str
    base_ms: int
    # The base stream's history and subscribers: the hub's own entries for it, held here too so a
    # base candle with nothing derived closing is emitted without a lookup.
    history: deque[Candle]
    subscribers: list[CandleCallback]
    last_ts: int | None = None
    derived: list[_Derived] = field(default_factory=list)


class CandleHub:
    """Publishes each closed candle of a (symbol, timeframe) to its subscribers, in time order.

    Base candles come from a source (a recorded file in replay, an exchange feed live).
    Higher timeframes are derived from them on UTC boundaries, only where someone asked.
    Missing base candles are reported as `candle_gap` events, never filled in silently.
    `on_history`, when given, is told of every candle any history takes (published, derived,
    preloaded, or closing as history), in the order taken; it must not block.
    """

    def __init__(
        self,
        bus: EventBus,
        history_size: int,
        advance_clock: Callable[[int], None] | None,
        publish_candles: bool,
        on_history: HistoryObserver | None = None,
    ) -> None:
        if history_size < 1:
            raise ValueError("history_size must be >= 1")
        self._bus = bus
        self._history_size = history_size
        self._advance = advance_clock
        self._publish_candles = publish_candles
        self._on_history = on_history
        self._feeds: dict[str, _Feed] = {}
        self._history: dict[tuple[str, str], deque[Candle]] = {}
        self._subscribers: dict[tuple[str, str], list[CandleCallback]] = {}
        # Per stream: (subscriber, its history callback), for candles that are history when they close.
        self._history_subscribers: dict[tuple[str, str], list[tuple[CandleCallback, CandleCallback]]] = {}
        self.gap_count = 0
        self.gaps: deque[dict[str, object]] = deque(maxlen=1_000)

    # -- wiring ---------------------------------------------------------------------------------
    def add_feed(self, symbol: str, base_timeframe: str) -> None:
        """Declare the base timeframe that `symbol`'s candles arrive in."""
        if symbol in self._feeds:
            if self._feeds[symbol].base_tf != base_timeframe:
                raise ValueError(f"{symbol} already has base timeframe {self._feeds[symbol].base_tf}, not {base_timeframe}")
            return
        key = (symbol, base_timeframe)
        history = self._history.setdefault(key, deque(maxlen=self._history_size))
        self._feeds[symbol] = _Feed(base_timeframe, timeframe_ms(base_timeframe), history, self._subscribers.setdefault(key, []))

    def remove_feed(self, symbol: str) -> None:
        """Forget a feed nobody subscribes to (an add that failed half-way)."""
        if any(key[0] == symbol and callbacks for key, callbacks in self._subscribers.items()):
            raise ValueError(f"{symbol} has subscribers; it cannot be removed")
        self._feeds.pop(symbol, None)
        for key in [k for k in self._history if k[0] == symbol]:
            del self._history[key]

    def symbols(self) -> list[str]:
        """Symbols with a feed."""
        return list(self._feeds)

    def timeframes(self, symbol: str) -> list[str]:
        """The timeframes `symbol` has candles in: its base one, then those derived from it, in the order asked for."""
        feed = self._feeds.get(symbol)
        return [] if feed is None else [feed.base_tf, *(d.timeframe for d in feed.derived)]

    def check(self, symbol: str, timeframe: str) -> None:
        """What `require` would refuse, without deriving anything: KeyError without a feed, ValueError for a timeframe its base cannot make."""
        feed = self._feeds.get(symbol)
        if feed is None:
            raise KeyError(f"no candle feed for symbol {symbol!r}")
        if timeframe == feed.base_tf or any(d.timeframe == timeframe for d in feed.derived):
            return
        target_ms = timeframe_ms(timeframe)
        if target_ms < feed.base_ms or target_ms % feed.base_ms:
            raise ValueError(f"{timeframe} cannot be derived from {symbol}'s {feed.base_tf} candles")

    def require(self, symbol: str, timeframe: str) -> None:
        """Make sure `timeframe` candles exist for `symbol`, deriving them from its base timeframe (from now on, on every base candle)."""
        self.check(symbol, timeframe)
        feed = self._feeds[symbol]
        if timeframe == feed.base_tf or any(d.timeframe == timeframe for d in feed.derived):
            return
        derived, history = self._derive(symbol, feed, timeframe)
        feed.derived.append(derived)
        self._history[(symbol, timeframe)] = history
        if self._on_history is not None:
            for candle in history:
                self._on_history(symbol, timeframe, candle)

    def preview(self, symbol: str, timeframe: str) -> list[Candle]:
        """The history `require` would give the stream now (its own when it exists), deriving nothing for later candles.

        A caller that may still refuse warms up from this and calls `require` once it no longer
        can, so a refusal leaves no stream aggregated on every base candle.
        """
        self.check(symbol, timeframe)
        kept = self._history.get((symbol, timeframe))
        if kept is not None:
            return list(kept)
        return list(self._derive(symbol, self._feeds[symbol], timeframe)[1])

    def _derive(self, symbol: str, feed: _Feed, timeframe: str) -> tuple[_Derived, deque[Candle]]:
        target_ms = timeframe_ms(timeframe)
        aggregator = Aggregator(feed.base_ms, target_ms)
        history: deque[Candle] = deque(maxlen=self._history_size)
        base_history = self._history[(symbol, feed.base_tf)]
        # Asked for mid-stream: build what the base history already holds, so the new timeframe
        # starts with history to warm up from and its pending bucket is complete.
        min_ts = base_history[0].ts if base_history else None
        if min_ts is not None:
            for candle in base_history:
                for derived in aggregator.add(candle):
                    if derived.ts >= min_ts:
                        history.append(derived)
        return _Derived(timeframe, target_ms, aggregator, min_ts), history

    def subscribe(self, symbol: str, timeframe: str, callback: CandleCallback, history: CandleCallback | None = None) -> None:
        """Deliver closed (symbol, timeframe) candles to `callback(symbol, timeframe, candle, ts)`.

        `history`, when given, gets the candles that close after a preload but are history (see
        `preload`): to warm up on, never to trade.
        """
        self.require(symbol, timeframe)
        self._subscribers.setdefault((symbol, timeframe), []).append(callback)
        if history is not None:
            self._history_subscribers.setdefault((symbol, timeframe), []).append((callback, history))

    def unsubscribe(self, symbol: str, timeframe: str, callback: CandleCallback) -> None:
        """Stop delivering to a callback (and to the history callback subscribed with it)."""
        callbacks = self._subscribers.get((symbol, timeframe))
        if callbacks and callback in callbacks:
            callbacks.remove(callback)
        paired = self._history_subscribers.get((symbol, timeframe))
        if paired:
            self._history_subscribers[(symbol, timeframe)] = [pair for pair in paired if pair[0] != callback]

    def subscriber_count(self) -> int:
        """Number of callbacks subscribed, over all streams."""
        return sum(len(c) for c in self._subscribers.values())

    # -- data -----------------------------------------------------------------------------------
    def history(self, symbol: str, timeframe: str, limit: int | None = None) -> list[Candle]:
        """A copy of the most recent closed candles, oldest first (read-only to the caller)."""
        candles = self._history.get((symbol, timeframe))
        if not candles:
            return []
        if limit is None or limit >= len(candles):
            return list(candles)
        # From the newest end: the cost is the candles asked for, not the whole history (up to 1,000,000).
        return list(islice(reversed(candles), limit))[::-1]

    def preload(self, symbol: str, candles: Iterable[Candle], history_before: int | None = None) -> int:
        """Fill a new feed's history from past candles without publishing them (a symbol added
        mid-session, a replay's warm-up before --from).

        Nobody is subscribed yet and these closes lie in the past of the event clock, so they
        are history to warm up from, not events. Higher timeframes already asked for are
        derived from them as they go, so each gets history of its own, not only what the base
        history holds at the end. With `history_before` (a replay's --from), a higher-timeframe
        candle of those that opens before it but closes later, once the candles after the
        preload complete it, is history too: it goes into the history and to the subscribers'
        history callbacks, and is neither published nor delivered as a candle to trade on.
        Returns how many were taken.
        """
        feed = self._feeds[symbol]
        if feed.last_ts is not None:
            raise ValueError(f"{symbol} already has candles; preload only a new feed")
        history = self._history[(symbol, feed.base_tf)]
        derived = [(item, self._history[(symbol, item.timeframe)]) for item in feed.derived]
        observe = self._on_history
        count = 0
        last = None
        for candle in candles:
            ts = candle.ts
            if ts % feed.base_ms:
                raise CandleFeedError(symbol, f"candle at {ts} is not on a {feed.base_tf} boundary (wrong timeframe declared?)")
            if last is not None and ts - last < feed.base_ms:
                raise CandleFeedError(symbol, f"candle at {ts} comes {ts - last} ms after the previous one, less than one {feed.base_tf}")
            history.append(candle)
            if observe is not None:
                observe(symbol, feed.base_tf, candle)
            for item, kept in derived:
                if item.min_ts is None:
                    item.min_ts = ts
                for closed in item.aggregator.add(candle):
                    if closed.ts >= item.min_ts:  # the data began inside this bucket: not a whole candle
                        kept.append(closed)
                        if observe is not None:
                            observe(symbol, item.timeframe, closed)
            last = ts
            count += 1
        feed.last_ts = last
        if history_before is not None:
            for item, _ in derived:
                item.history_before = history_before
        return count

    def ingest(self, symbol: str, candle: Candle) -> None:
        """Take the next closed base candle of a symbol and publish it and any derived candles."""
        feed = self._feeds[symbol]
        last = feed.last_ts
        base_ms = feed.base_ms
        ts = candle.ts
        if ts % base_ms:
            raise CandleFeedError(symbol, f"candle at {ts} is not on a {feed.base_tf} boundary (wrong timeframe declared?)")
        if last is None:
            for item in feed.derived:
                if item.min_ts is None:
                    item.min_ts = ts
        elif ts - last < base_ms:
            raise CandleFeedError(
                symbol, f"candle at {ts} comes {ts - last} ms after the previous one, less than one {feed.base_tf} (wrong timeframe declared?)"
            )
        feed.last_ts = ts
        close_ts = ts + base_ms
        if self._advance is not None:
            self._advance(close_ts)
        if last is not None and ts - last > base_ms:
            self._report_gap(symbol, feed, last, ts)
        completed: list[tuple[int, int, str, Candle, bool]] | None = None
        for item in feed.derived:
            for derived in item.aggregator.add(candle):
                if derived.ts < item.min_ts:  # type: ignore[operator]  # set by the first candle (above), before any bucket closes
                    # The data began inside this bucket: it is not a whole candle, drop it.
                    continue
                if completed is None:
                    completed = []
                completed.append((derived.ts + item.ms, -item.ms, item.timeframe, derived, derived.ts < item.history_before))
        if completed is None:
            # _emit for the base stream, from the feed's own references (the replay's per-candle path).
            feed.history.append(candle)
            if self._on_history is not None:
                self._on_history(symbol, feed.base_tf, candle)
            if self._publish_candles:
                self._bus.publish(CandleClosed, close_ts, symbol, feed.base_tf, candle)
            for callback in feed.subscribers:
                callback(symbol, feed.base_tf, candle, close_ts)
            return
        # Everything that closed at this instant is known before anyone decides on it: older
        # closes first (a bucket closed late by a gap), then the higher timeframe before the
        # lower one, the base candle last. A bucket closed late is announced now, so event time
        # never runs backwards.
        completed.append((close_ts, -base_ms, feed.base_tf, candle, False))
        completed.sort(key=lambda item: (item[0], item[1]))
        for _, _, timeframe, closed, history in completed:
            if history:
                self._emit_history(symbol, timeframe, closed, close_ts)
            else:
                self._emit(symbol, timeframe, closed, close_ts)

    def _emit(self, symbol: str, timeframe: str, candle: Candle, close_ts: int) -> None:
        key = (symbol, timeframe)
        self._history[key].append(candle)
        if self._on_history is not None:
            self._on_history(symbol, timeframe, candle)
        if self._publish_candles:
            self._bus.publish(CandleClosed, close_ts, symbol, timeframe, candle)
        callbacks = self._subscribers.get(key)
        if callbacks:
            for callback in callbacks:
                callback(symbol, timeframe, candle, close_ts)

    def _emit_history(self, symbol: str, timeframe: str, candle: Candle, close_ts: int) -> None:
        key = (symbol, timeframe)
        self._history[key].append(candle)
        if self._on_history is not None:
            self._on_history(symbol, timeframe, candle)
        for _, callback in self._history_subscribers.get(key, ()):
            callback(symbol, timeframe, candle, close_ts)

    def _report_gap(self, symbol: str, feed: _Feed, last: int, now: int) -> None:
        missing = (now - last) // feed.base_ms - 1
        gap = {"symbol": symbol, "timeframe": feed.base_tf, "after": last, "next": now, "missing": missing}
        self.gap_count += 1
        self.gaps.append(gap)
        # Stamped with the event clock (already at this candle's close), never behind it.
        self._bus.publish(CandleGap, None, symbol, feed.base_tf, last, now, missing)
