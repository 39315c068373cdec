#!/usr/bin/env python3
"""The bench's reference: the EMA crossover as a plain Python loop, one object per strategy.

What a user would write without the bot: the csv module reads the recorded file, every row
parsed to a whole candle (as the bot's reader does), and each strategy is one small object holding its two EMAs and its position, and fills happen at the
next candle's open. It follows the bot's rule to the bit (the EMA seeded with the mean of its
first `period` closes, then a * x + (1 - a) * value; long when fast - slow goes from < 0 to
> 0 while flat, closed when it goes from > 0 to < 0; quantity 0.01, no fees), so its trades
equal the bot's trades.csv and the bench's ratio compares like with like.

    .venv/bin/python scripts/bench_reference.py DATA.csv 10,30 5,20   # prints one JSON line
"""
from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path

Candle = tuple[int, float, float, float, float, float]


@dataclass(frozen=True, slots=True)
class Trade:
    """One round trip: entry and exit at the open of the candle after each decision."""

    strategy_id: str
    quantity: float
    entry_ts: int
    entry_price: float
    exit_ts: int
    exit_price: float


class EmaCrossLoop:
    """One long-only EMA(fast)/EMA(slow) crossover strategy, with its own EMAs and position."""

    __slots__ = (
        "strategy_id", "quantity", "trades", "_fast_n", "_slow_n", "_fast_a", "_fast_b", "_slow_a", "_slow_b",
        "_fast_sum", "_slow_sum", "_seen", "_fast", "_slow", "_diff", "_holding", "_order", "_entry_ts", "_entry_price",
    )

    def __init__(self, strategy_id: str, fast: int, slow: int, quantity: float) -> None:
        self.strategy_id = strategy_id
        self.quantity = quantity
        self.trades: list[Trade] = []
        self._fast_n = fast
        self._slow_n = slow
        self._fast_a = 2.0 / (fast + 1.0)
        self._fast_b = 1.0 - self._fast_a
        self._slow_a = 2.0 / (slow + 1.0)
        self._slow_b = 1.0 - self._slow_a
        self._fast_sum = 0.0
        self._slow_sum = 0.0
        self._seen = 0
        self._fast: float | None = None
        self._slow: float | None = None
        self._diff = 0.0  # fast - slow after the previous candle, once both are seeded
        self._holding = False
        self._order = 0  # +1 buy, -1 sell, filled at the next candle's open
        self._entry_ts = 0
        self._entry_price = 0.0

    def on_candle(self, candle: Candle) -> None:
        """Fill the order decided on the last candle at this one's open, then decide on this close."""
        ts, open_, _high, _low, close, _volume = candle
        order = self._order
        if order:
            self._order = 0
            if order > 0:
                self._holding = True
                self._entry_ts = ts
                self._entry_price = open_
            else:
                self._holding = False
                self.trades.append(Trade(self.strategy_id, self.quantity, self._entry_ts, self._entry_price, ts, open_))
        fast = self._fast
        slow = self._slow
        if slow is not None and fast is not None:
            fast = self._fast_a * close + self._fast_b * fast
            slow = self._slow_a * close + self._slow_b * slow
            self._fast = fast
            self._slow = slow
            now = fast - slow
            before = self._diff
            self._diff = now
            if before < 0.0 < now:
                if not self._holding:
                    self._order = 1
            elif before > 0.0 > now and self._holding:
                self._order = -1
            return
        self._warm(close)

    def _warm(self, close: float) -> None:
        """Seed each EMA with the mean of its first `period` closes; the faster one then runs on alone."""
        seen = self._seen + 1
        self._seen = seen
        fast = self._fast
        if fast is None:
            self._fast_sum += close
            if seen == self._fast_n:
                self._fast = self._fast_sum / self._fast_n
        else:
            self._fast = self._fast_a * close + self._fast_b * fast
        self._slow_sum += close
        if seen == self._slow_n:
            self._slow = self._slow_sum / self._slow_n
            fast = self._fast
            assert fast is not None  # fast < slow
            self._diff = fast - self._slow


def strategy_id(fast: int, slow: int) -> str:
    """The id the bench gives the EMA(fast)/EMA(slow) strategy, in the bot's config and here."""
    return f"ema_{fast}_{slow}"


def run(path: Path, pairs: list[tuple[int, int]], quantity: float = 0.01) -> tuple[int, list[EmaCrossLoop]]:
    """Play the CSV file through one loop object per (fast, slow) pair; the candle count and the objects."""
    loops = [EmaCrossLoop(strategy_id(fast, slow), fast, slow, quantity) for fast, slow in pairs]
    handlers = [loop.on_candle for loop in loops]
    count = 0
    with path.open(newline="") as file:
        rows = csv.reader(file)
        next(rows)  # header
        for ts, open_, high, low, close, volume in rows:
            # Every field parsed, as the bot's reader does: a candle, whatever a strategy reads of it.
            candle = (int(ts), float(open_), float(high), float(low), float(close), float(volume))
            for handle in handlers:
                handle(candle)
            count += 1
    return count, loops


def main() -> int:
    data = Path(sys.argv[1])
    pairs = [(int(fast), int(slow)) for fast, slow in (arg.split(",") for arg in sys.argv[2:])]
    count, loops = run(data, pairs)
    print(json.dumps({"candles": count, "strategies": len(loops), "trades": sum(len(loop.trades) for loop in loops)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
