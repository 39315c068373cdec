"""Performance metrics of one strategy, as pure functions of its equity samples and closed trades."""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

YEAR_MS = 365 * 24 * 3_600_000  # crypto trades every day of the year, around the clock


def periods_per_year(interval_ms: int) -> float:
    """How many sampling periods of `interval_ms` fit in a 365-day year (8,760 for one hour)."""
    return YEAR_MS / interval_ms


def grid_returns(ts: Sequence[int], equity: Sequence[float], interval_ms: int) -> list[float]:
    """Simple returns between consecutive samples exactly one interval apart.

    The opening and closing samples of a run may sit off the grid: the returns over those
    partial periods are left out so that every return covers the same length of time.
    """
    returns = []
    for i in range(1, len(ts)):
        if ts[i] - ts[i - 1] == interval_ms and equity[i - 1] > 0:
            returns.append(equity[i] / equity[i - 1] - 1.0)
    return returns


def sharpe_ratio(returns: Sequence[float], periods: float) -> float | None:
    """Annualised Sharpe ratio (risk-free rate 0): mean / sample standard deviation * sqrt(periods per year).

    None when it is undefined: fewer than two returns, or no variation at all.
    """
    n = len(returns)
    if n < 2:
        return None
    mean = sum(returns) / n
    variance = sum((r - mean) ** 2 for r in returns) / (n - 1)
    if variance <= 0.0:
        return None
    return mean / math.sqrt(variance) * math.sqrt(periods)


def sortino_ratio(returns: Sequence[float], periods: float) -> float | None:
    """Annualised Sortino ratio (target 0): mean / downside deviation * sqrt(periods per year).

    The downside deviation is sqrt(sum(min(r, 0)^2) / n) over all n returns. None when
    there are fewer than two returns or no negative return.
    """
    n = len(returns)
    if n < 2:
        return None
    downside = sum(r * r for r in returns if r < 0.0) / n
    if downside <= 0.0:
        return None
    return (sum(returns) / n) / math.sqrt(downside) * math.sqrt(periods)


def drawdowns_pct(equity: Sequence[float]) -> list[float]:
    """At each sample, the percentage below the highest equity so far (0 or negative)."""
    out = []
    peak = -math.inf
    for value in equity:
        peak = max(peak, value)
        out.append(100.0 * (value - peak) / peak if peak > 0 else 0.0)
    return out


def max_drawdown(equity: Sequence[float]) -> tuple[float, float]:
    """The largest fall from a running peak: (amount, percent of that peak); (0, 0) when equity never fell."""
    peak = -math.inf
    worst, worst_pct = 0.0, 0.0
    for value in equity:
        if value > peak:
            peak = value
            continue
        fall = peak - value
        if fall > worst:
            worst = fall
            worst_pct = 100.0 * fall / peak if peak > 0 else 0.0
    return worst, worst_pct


def win_rate(pnls: Sequence[float]) -> float | None:
    """The share of trades with a positive net PnL; None without trades."""
    if not pnls:
        return None
    return sum(1 for p in pnls if p > 0) / len(pnls)


def profit_factor(pnls: Sequence[float]) -> float | None:
    """Gross profit / gross loss of the trades; inf with profits and no loss, None with neither."""
    profit = sum(p for p in pnls if p > 0)
    loss = -sum(p for p in pnls if p < 0)
    if loss == 0:
        return math.inf if profit > 0 else None
    return profit / loss


def exposure(intervals: Iterable[tuple[int, int]], start: int, end: int) -> float:
    """The share of [start, end] covered by at least one of the (from, to) intervals (overlaps counted once)."""
    if end <= start:
        return 0.0
    covered = 0
    reach = start
    for lo, hi in sorted(intervals):
        lo, hi = max(lo, reach), min(hi, end)
        if hi > lo:
            covered += hi - lo
            reach = hi
    return covered / (end - start)
