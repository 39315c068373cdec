"""Plain-Python references for the catalog tests: resampling, indicators and the position state machine.

Written from the documented semantics, not from the bot's code, so a test comparing the two
checks the strategy rather than repeating it.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from bot.candles.reader import read_candles
from bot.config.models import BotConfig
from bot.events import PositionClosed, Signal
from bot.ohlcv import Candle
from tests.support import BTC_1M, Rig, module_strategy, repo_catalog

MINUTE_MS = 60_000
Series = list[float | None]


@lru_cache(maxsize=1)
def btc_1m() -> tuple[Candle, ...]:
    """Every recorded 1m BTC-PERP candle (Jan 2022, no gaps, starting on an hour boundary)."""
    return tuple(read_candles(BTC_1M))


@dataclass(frozen=True, slots=True)
class Bar:
    """A higher-timeframe candle built from whole buckets of 1m candles."""

    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    close_ts: int


def resample(candles: Sequence[Candle], minutes: int) -> list[Bar]:
    """UTC-aligned `minutes` bars from 1m candles; only buckets holding every minute are kept."""
    length = minutes * MINUTE_MS
    buckets: dict[int, list[Candle]] = {}
    for candle in candles:
        buckets.setdefault(candle.ts - candle.ts % length, []).append(candle)
    bars = []
    for start, group in sorted(buckets.items()):
        if len(group) != minutes:
            continue
        bars.append(
            Bar(
                start,
                group[0].open,
                max(c.high for c in group),
                min(c.low for c in group),
                group[-1].close,
                sum(c.volume for c in group),
                start + length,
            )
        )
    return bars


def sma(values: Sequence[float], n: int) -> Series:
    """Mean of the last n values, the current one included."""
    return [None if i + 1 < n else sum(values[i + 1 - n : i + 1]) / n for i in range(len(values))]


def ema(values: Sequence[float], n: int) -> Series:
    """EMA seeded with the mean of its first n values, then alpha = 2/(n+1)."""
    a = 2 / (n + 1)
    out: Series = []
    value: float | None = None
    for i, x in enumerate(values):
        if i + 1 == n:
            value = sum(values[:n]) / n
        elif value is not None:
            value = a * x + (1 - a) * value
        out.append(value)
    return out


def rsi(closes: Sequence[float], n: int) -> Series:
    """Wilder's RSI: first averages are the means of the first n changes, then Wilder smoothing."""
    out: Series = [None]
    gain = loss = 0.0
    for i in range(1, len(closes)):
        change = closes[i] - closes[i - 1]
        up, down = max(change, 0.0), max(-change, 0.0)
        if i < n:
            gain, loss = gain + up, loss + down
            out.append(None)
            continue
        if i == n:
            gain, loss = (gain + up) / n, (loss + down) / n
        else:
            gain, loss = (gain * (n - 1) + up) / n, (loss * (n - 1) + down) / n
        out.append(100.0 if loss == 0 else 100.0 - 100.0 / (1.0 + gain / loss))
    return out


def atr(bars: Sequence[Bar], n: int) -> Series:
    """Wilder's ATR; the first true range is high - low, the first ATR the mean of the first n."""
    out: Series = []
    trs: list[float] = []
    value: float | None = None
    for i, bar in enumerate(bars):
        if i == 0:
            tr = bar.high - bar.low
        else:
            pc = bars[i - 1].close
            tr = max(bar.high - bar.low, abs(bar.high - pc), abs(bar.low - pc))
        trs.append(tr)
        if i + 1 == n:
            value = sum(trs) / n
        elif value is not None:
            value = (value * (n - 1) + tr) / n
        out.append(value)
    return out


def bollinger(closes: Sequence[float], n: int, k: float) -> tuple[Series, Series]:
    """(middle, lower) bands: the SMA and SMA - k population standard deviations."""
    middle: Series = []
    lower: Series = []
    for i in range(len(closes)):
        if i + 1 < n:
            middle.append(None)
            lower.append(None)
            continue
        window = closes[i + 1 - n : i + 1]
        mean = math.fsum(window) / n
        std = math.sqrt(math.fsum((x - mean) ** 2 for x in window) / n)
        middle.append(mean)
        lower.append(mean - k * std)
    return middle, lower


def clear_of(values: Sequence[float | None], threshold: float, label: str, rel: float = 1e-9) -> None:
    """Fail when a value sits so close to a threshold that float rounding could decide the comparison."""
    close = [v for v in values if v is not None and abs(v - threshold) <= rel * max(1.0, abs(threshold))]
    assert not close, f"{label}: {len(close)} values within rounding of {threshold}; the comparison is ambiguous"


@dataclass(slots=True)
class Trade:
    """A position of the reference state machine."""

    entry_ts: int
    entry_price: float
    stop: float | None
    exit_ts: int | None = None
    exit_price: float | None = None
    exit_reason: str | None = None


def simulate(
    bars: Sequence[Bar],
    first: int,
    enter: Callable[[int], bool],
    leave: Callable[[int], bool],
    stop_pct: float | None = None,
    ratchet: Callable[[int], float | None] | None = None,
    exit_reason: str = "signal",
) -> tuple[list[tuple[str, int]], list[Trade], list[tuple[int, float]]]:
    """Decisions from bar `first` on, with next-open fills and an intrabar stop (stop before the decision).

    Returns (signals as (decision, close_ts), trades, stop moves as (close_ts, stop)). `ratchet(i)`
    gives a stop candidate each bar a position is held; the stop moves when it is higher.
    """
    signals: list[tuple[str, int]] = []
    trades: list[Trade] = []
    moves: list[tuple[int, float]] = []
    position: Trade | None = None
    pending: str | None = None
    for i in range(first, len(bars)):
        bar = bars[i]
        if pending == "entry":
            stop = None if stop_pct is None else bar.open * (1 - stop_pct / 100.0)
            position = Trade(bar.ts, bar.open, stop)
            trades.append(position)
        elif pending == "exit" and position is not None:
            position.exit_ts, position.exit_price, position.exit_reason = bar.ts, bar.open, exit_reason
            position = None
        pending = None
        if position is not None and position.stop is not None and bar.low <= position.stop:
            # A gap through the stop fills at the open (never on the fill bar, which opens at entry).
            position.exit_ts, position.exit_price, position.exit_reason = bar.ts, min(bar.open, position.stop), "stop_loss"
            position = None
        if position is None:
            if enter(i):
                signals.append(("entry", bar.close_ts))
                pending = "entry"
        elif leave(i):
            signals.append(("exit", bar.close_ts))
            pending = "exit"
        elif ratchet is not None:
            candidate = ratchet(i)
            if candidate is not None and (position.stop is None or candidate > position.stop):
                position.stop = candidate
                moves.append((bar.close_ts, candidate))
    return signals, trades, moves


def run_strategy(
    module: str,
    timeframe: str,
    params: dict[str, Any] | None = None,
    exits: dict[str, Any] | None = None,
    warm_minutes: int = 0,
    candles: Sequence[Candle] | None = None,
) -> Rig:
    """Replay recorded 1m candles through a repository strategy module.

    The first `warm_minutes` candles only fill the hub's history; the strategy is then loaded
    and activated as the manager does (warm-up from that history) and trades the rest.
    """
    data = btc_1m() if candles is None else candles
    rig = Rig(BotConfig.model_validate({"replay": {"history_size": 100_000, "log_candles": False}}), catalog=repo_catalog())
    rig.feed("BTC/USD", list(data[:warm_minutes]))
    spec = module_strategy(module, timeframe=timeframe, params=params or {}, exits=exits or {}, fees={"maker_bps": 0, "taker_bps": 0})
    rig.start(spec)
    rig.feed("BTC/USD", list(data[warm_minutes:]))
    return rig


def signals_of(rig: Rig) -> list[tuple[str, int]]:
    """(decision, event time) of every signal the strategy published."""
    return [(e.decision, e.ts) for e in rig.of_type(Signal)]


def trades_of(rig: Rig) -> list[tuple[int, float, int, float, str]]:
    """(entry_ts, entry_price, exit_ts, exit_price, exit_reason) of every closed position, prices to 1e-6.

    The exit price is a quantity-weighted average, so it can be off the fill price in the last bit.
    """
    return [
        (t.entry_ts, round(t.entry_price, 6), t.exit_ts, round(t.exit_price, 6), t.exit_reason)
        for t in (e.trade for e in rig.of_type(PositionClosed))
    ]


def expected_trades(trades: Sequence[Trade]) -> list[tuple[int, float, int, float, str]]:
    """The closed reference trades in the shape of `trades_of`."""
    return [
        (t.entry_ts, round(t.entry_price, 6), t.exit_ts, round(t.exit_price, 6), t.exit_reason)  # type: ignore[arg-type, misc]
        for t in trades
        if t.exit_ts is not None
    ]
