"""One strategy's figures for the page: report.json's results plus the metrics computed from its series and trades."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from itertools import pairwise

from bot.report import metrics
from bot.report.rundata import RunData, StrategyRun


@dataclass(frozen=True, slots=True)
class StrategySummary:
    """The figures shown for one strategy (ratios None where undefined)."""

    run: StrategyRun
    win_rate: float | None
    profit_factor: float | None
    sharpe: float | None
    sortino: float | None
    returns_used: int
    exposure: float
    drawdowns_pct: list[float]


def interval_of(data: RunData) -> int:
    """The equity sampling step: as report.json states it, else the commonest step between samples."""
    if data.replay.equity_interval_ms:
        return data.replay.equity_interval_ms
    steps: Counter[int] = Counter()
    for run in data.strategies.values():
        ts = run.equity.ts
        steps.update(b - a for a, b in pairwise(ts))
    return steps.most_common(1)[0][0] if steps else metrics.YEAR_MS


def held_intervals(run: StrategyRun) -> list[tuple[int, int]]:
    """When the strategy held a position: each closed trade, and a position still open at the end.

    An open position is not in trades.csv: it counts from the first sample of the final
    unbroken run of samples that show one open (so up to one interval too short).
    """
    spans = [(t.entry_ms, t.exit_ms) for t in run.trades]
    ts, held = run.equity.ts, run.equity.open_positions
    if held and held[-1] > 0:
        first = len(held) - 1
        while first > 0 and held[first - 1] > 0:
            first -= 1
        spans.append((ts[first], ts[-1]))
    return spans


def summarise(run: StrategyRun, interval_ms: int) -> StrategySummary:
    """Compute one strategy's metrics."""
    pnls = [t.pnl for t in run.trades]
    ts, equity = run.equity.ts, run.equity.equity
    returns, spans = metrics.timed_returns(ts, equity, interval_ms)
    periods = metrics.periods_per_year(interval_ms)
    return StrategySummary(
        run=run,
        win_rate=metrics.win_rate(pnls),
        profit_factor=metrics.profit_factor(pnls),
        sharpe=metrics.sharpe_ratio(returns, periods, spans),
        sortino=metrics.sortino_ratio(returns, periods, spans),
        returns_used=len(returns),
        exposure=metrics.exposure(held_intervals(run), ts[0], ts[-1]),
        drawdowns_pct=metrics.drawdowns_pct(equity),
    )
