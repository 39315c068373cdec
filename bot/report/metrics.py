"""Performance metrics of one strategy, as pure functions of its equity samples and closed trades."""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

YEAR_MS = 365 * 24 * 3_600_000  # crypto trades every day of the year, around the clock


def periods_per_year(interval_ms: int) -> float:
    """How many sampling periods of `interval_ms` fit in a 365-day year (8,760 for one hour)."""
    return YEAR_MS / interval_ms


def timed_returns(ts: Sequence[int], equity: Sequence[float], interval_ms: int) -> tuple[list[float], list[float]]:
    """Simple returns between consecutive samples, and how many intervals of time each spans.

    Samples are one interval apart on the grid, several after a long gap in the data (the
    replay then writes its two ends only). The opening and closing samples of a run may sit
    off the grid: the returns over those partial periods (under one interval) are left out.
    """
    returns: list[float] = []
    spans: list[float] = []
    for i in range(1, len(ts)):
        elapsed = ts[i] - ts[i - 1]
        if elapsed >= interval_ms and equity[i - 1] > 0:
            returns.append(equity[i] / equity[i - 1] - 1.0)
            spans.append(elapsed / interval_ms)
    return returns, spans


def _spans(returns: Sequence[float], spans: Sequence[float] | None) -> Sequence[float]:
    if spans is None:
        return [1.0] * len(returns)
    if len(spans) != len(returns):
        raise ValueError(f"{len(returns)} returns but {len(spans)} spans")
    return spans


def sharpe_ratio(returns: Sequence[float], periods: float, spans: Sequence[float] | None = None) -> float | None:
    """Annualised Sharpe ratio (risk-free rate 0): mean / sample standard deviation * sqrt(periods per year).

    A return spanning w periods (`spans`, 1 each when omitted) counts as w periods of time:
    mean = sum(r) / sum(w), variance = sum((r - mean * w)^2 / w) / (n - 1), the estimates of
    a per-period mean and variance that grow with time. With every w = 1 these are the plain
    mean and sample variance. None when undefined: fewer than two returns, or no variation.
    """
    n = len(returns)
    if n < 2:
        return None
    weights = _spans(returns, spans)
    mean = sum(returns) / sum(weights)
    variance = sum((r - mean * w) ** 2 / w for r, w in zip(returns, weights)) / (n - 1)
    if variance <= 0.0:
        return None
    return mean / math.sqrt(variance) * math.sqrt(periods)


def sortino_ratio(returns: Sequence[float], periods: float, spans: Sequence[float] | None = None) -> float | None:
    """Annualised Sortino ratio (target 0): mean / downside deviation * sqrt(periods per year).

    The mean is sum(r) / sum(w), the downside deviation sqrt(sum(min(r, 0)^2 / w) / n) over
    all n returns, w the periods each return spans: as in `sharpe_ratio`, a return over w
    periods is one random-walk step whose square grows with w, so each r^2 / w is one
    estimate per period, and there are n of them. With every w = 1 this is the plain
    downside deviation. None when there are fewer than two returns or no negative return.
    """
    n = len(returns)
    if n < 2:
        return None
    weights = _spans(returns, spans)
    downside = sum(r * r / w for r, w in zip(returns, weights) if r < 0.0) / n
    if downside <= 0.0:
        return None
    return (sum(returns) / sum(weights)) / math.sqrt(downside) * math.sqrt(periods)


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
