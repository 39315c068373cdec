"""Where each event of a replay that runs some of the strategies falls in the one-process replay of them all.

A replay run as parts (`bot replay --jobs N`: each process replays every candle for some of the
strategies) merges the parts' events by these keys. The one-process order they reproduce:

- set-up: each strategy loaded and activated in config order (with --from and a warm-up before
  it: all loaded first, then all activated), then `replay_started`;
- then each candle emission of the hub (a closed candle of one symbol and timeframe, in the
  hub's order): its market-wide events (`candle`, `candle_gap`) come first, then the events of
  the strategies it is delivered to: the active ones in config order, then those that failed
  earlier and now only protect their positions, in the order they failed;
- `replay_finished` last.

Every part's hub makes the same emissions (every part plays every file and derives every
timeframe any strategy reads), so an emission's number is the same in every part. A key is two
integers, compared as a pair: the emission (0 for the set-up) and the place within it.
"""
from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping
from pathlib import Path

from bot.candles.hub import CandleHub
from bot.events import Event, PositionClosed, ReplayStarted, StrategyStateChanged
from bot.ohlcv import Candle

# The place of a market-wide event: after every strategy's event of the same emission.
MARKET = 1 << 62
# Strategy positions take the low bits of a place; above them, the set-up step or the protect order.
_POSITION_BITS = 24
ORDER_FILES = ("order.hi", "order.lo", "trades.hi", "trades.lo")


class EventOrder:
    """Records the merge key of every event one part of a replay publishes (a bus subscriber), and of every trade."""

    __slots__ = ("_positions", "_emission", "_started", "_failed_at", "hi", "lo", "trades_hi", "trades_lo")

    def __init__(self, positions: Mapping[str, int]) -> None:
        if len(positions) >= 1 << _POSITION_BITS:
            raise ValueError(f"at most {(1 << _POSITION_BITS) - 1:,} strategies")
        # Each strategy's place in the config order of every strategy replayed, not only this part's.
        self._positions = dict(positions)
        self._emission = -1
        self._started = False
        # The emission on which a strategy failed: from the next one on it protects, after the active ones.
        self._failed_at: dict[str, int] = {}
        self.hi = array("q")
        self.lo = array("q")
        self.trades_hi = array("q")
        self.trades_lo = array("q")

    def attach(self, hub: CandleHub, streams: Iterable[tuple[str, str]]) -> None:
        """Count the hub's emissions on `streams` (every stream any strategy of the whole replay reads).

        Subscribed before any strategy, so the count moves on before the strategies get the candle;
        history candles (closing after a --from warm-up) count too.
        """
        for symbol, timeframe in streams:
            hub.subscribe(symbol, timeframe, self._emitted, self._emitted)

    def _emitted(self, symbol: str, timeframe: str, candle: Candle, ts: int) -> None:
        self._emission += 1

    def record(self, event: Event) -> None:
        """Take the key of the event just published (subscribe it to the bus before anything publishes)."""
        sid = event.strategy_id
        if sid is None:
            hi, lo = (self._emission + 2 if self._started else 0), MARKET
            if type(event) is ReplayStarted:
                self._started = True
        else:
            position = self._positions[sid]
            if not self._started:
                # Loads are step 0, the rest step 1: with a warm-up all are loaded before any is activated.
                loading = type(event) is StrategyStateChanged and event.change == "loaded"
                hi, lo = 0, (0 if loading else 1) << _POSITION_BITS << 16 | position
            else:
                failed = self._failed_at.get(sid)
                emission = self._emission
                hi = emission + 2
                # Protecting: ordered by the emission it failed on (+2: the set-up's -1 becomes 1), then by config order.
                lo = position if failed is None or failed >= emission else (failed + 2) << _POSITION_BITS | position
            if type(event) is StrategyStateChanged and event.state == "failed":
                self._failed_at[sid] = self._emission
        self.hi.append(hi)
        self.lo.append(lo)
        if type(event) is PositionClosed:
            self.trades_hi.append(hi)
            self.trades_lo.append(lo)

    def settle(self, warmed_up: bool) -> None:
        """Fix the set-up keys once it is known whether a warm-up split loading from activating (Replay.warmup_candles > 0)."""
        if warmed_up:
            return
        low = (1 << _POSITION_BITS << 16) - 1
        for keys_hi, keys_lo in ((self.hi, self.lo), (self.trades_hi, self.trades_lo)):
            for i, hi in enumerate(keys_hi):
                if hi:
                    break
                if keys_lo[i] != MARKET:
                    keys_lo[i] &= low

    def save(self, folder: Path) -> None:
        """Write the keys next to the part's outputs (ORDER_FILES)."""
        for name, keys in zip(ORDER_FILES, (self.hi, self.lo, self.trades_hi, self.trades_lo), strict=True):
            (folder / name).write_bytes(keys.tobytes())


def load_keys(folder: Path, name: str) -> array[int]:
    """One of a part's ORDER_FILES, as written by `save`."""
    keys = array("q")
    keys.frombytes((folder / name).read_bytes())
    return keys
