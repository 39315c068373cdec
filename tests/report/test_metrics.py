"""The report's metrics against values worked out by hand."""
from __future__ import annotations

import math
import random

import pytest

from bot.report import metrics
from bot.report.rundata import EquitySeries, StrategyFacts, StrategyRun, Trade
from bot.report.summary import held_intervals, summarise

HOUR = 3_600_000


def test_periods_per_year_counts_every_hour_of_365_days() -> None:
    assert metrics.periods_per_year(HOUR) == 8760
    assert metrics.periods_per_year(24 * HOUR) == 365


def test_sharpe_is_mean_over_sample_deviation_times_root_periods() -> None:
    # mean 0.01; squared deviations 1e-4, 4e-4, 4e-4, 1e-4 -> variance 1e-3 / 3; sqrt(0.01^2 / (1e-3/3)) = sqrt(0.3).
    assert metrics.sharpe_ratio([0.02, -0.01, 0.03, 0.0], 4) == pytest.approx(2 * math.sqrt(0.3))


def test_sortino_uses_the_downside_deviation_over_all_returns() -> None:
    # downside deviation sqrt(0.01^2 / 4) = 0.005; 0.01 / 0.005 * sqrt(4) = 4.
    assert metrics.sortino_ratio([0.02, -0.01, 0.03, 0.0], 4) == pytest.approx(4.0)


def test_ratios_are_undefined_without_enough_variation() -> None:
    assert metrics.sharpe_ratio([0.01], 8760) is None
    assert metrics.sharpe_ratio([0.01, 0.01, 0.01], 8760) is None
    assert metrics.sortino_ratio([0.01, 0.02], 8760) is None


def test_drawdowns_and_max_drawdown() -> None:
    equity = [100.0, 120.0, 90.0, 130.0, 117.0]
    assert metrics.drawdowns_pct(equity) == pytest.approx([0.0, 0.0, -25.0, 0.0, -10.0])
    assert metrics.max_drawdown(equity) == pytest.approx((30.0, 25.0))
    assert metrics.max_drawdown([100.0, 101.0, 102.0]) == (0.0, 0.0)


def test_win_rate_and_profit_factor() -> None:
    assert metrics.win_rate([10.0, -5.0, 0.0, 20.0]) == 0.5  # a break-even trade is no win
    assert metrics.profit_factor([10.0, -5.0, 0.0, 20.0]) == 6.0
    assert metrics.win_rate([]) is None
    assert metrics.profit_factor([]) is None
    assert metrics.profit_factor([5.0]) == math.inf


def test_exposure_counts_overlaps_once_and_clips_to_the_run() -> None:
    spans = [(0, 10), (5, 20), (30, 40), (90, 200), (-10, 2)]
    # [0, 20] + [30, 40] + [90, 100] = 40 of 100
    assert metrics.exposure(spans, 0, 100) == pytest.approx(0.4)
    assert metrics.exposure([], 0, 100) == 0.0
    assert metrics.exposure([(0, 5)], 5, 5) == 0.0


def _facts() -> StrategyFacts:
    return StrategyFacts(
        state="active", symbol="BTC/USD", timeframe="1m", trades=1, starting_balance=100.0, final_equity=110.0,
        return_pct=10.0, net_pnl=10.0, fees=0.0, max_drawdown=0.0, max_drawdown_pct=0.0, open_positions=1,
    )


def test_a_position_open_at_the_end_counts_from_the_first_sample_showing_it() -> None:
    trade = Trade("BTC/USD", "long", 1.0, 0, 100.0, HOUR, 101.0, 1.0, 0.0, "signal", "s-p1")
    series = EquitySeries(ts=[0, HOUR, 2 * HOUR, 3 * HOUR, 4 * HOUR], equity=[100.0, 101.0, 101.0, 104.0, 110.0], open_positions=[0, 0, 1, 1, 1])
    run = StrategyRun("s", _facts(), series, [trade])
    assert held_intervals(run) == [(0, HOUR), (2 * HOUR, 4 * HOUR)]
    summary = summarise(run, HOUR)
    assert summary.exposure == pytest.approx(0.75)
    assert summary.returns_used == 4
    assert summary.win_rate == 1.0
    assert summary.drawdowns_pct == [0.0] * 5


# --- returns over the time between samples (a long gap in the data: two rows, years apart) ---

YEAR = 365 * 24 * HOUR


def test_timed_returns_keep_a_return_spanning_several_periods_with_its_span() -> None:
    # 0 -> 10 and 10 -> 20 are one period each; 20 -> 50 (a gap's two ends) spans three; 50 -> 55 is partial.
    returns, spans = metrics.timed_returns([0, 10, 20, 50, 55], [100.0, 110.0, 99.0, 99.0, 120.0], 10)
    assert returns == pytest.approx([0.1, -0.1, 0.0])
    assert spans == [1.0, 1.0, 3.0]


def _series(ts: list[int], equity: list[float]) -> StrategyRun:
    return StrategyRun("s", _facts(), EquitySeries(ts=ts, equity=equity, open_positions=[0] * len(ts)), [])


def test_samples_every_w_periods_give_the_ratios_of_a_w_period_interval() -> None:
    # The same equity read every 3 hours: each return spans 3 one-hour periods, or is one
    # 3-hour period. Annualised, a random walk's ratios are the same either way.
    equity = [100.0, 101.2, 100.4, 102.0, 101.1, 103.5, 102.9, 102.2, 104.0, 103.1]
    ts = [i * 3 * HOUR for i in range(len(equity))]
    hourly = summarise(_series(ts, equity), HOUR)
    three_hourly = summarise(_series(ts, equity), 3 * HOUR)
    assert three_hourly.sharpe is not None and three_hourly.sortino is not None
    assert hourly.sharpe == pytest.approx(three_hourly.sharpe)
    assert hourly.sortino == pytest.approx(three_hourly.sortino)


def _walk(hours: int, seed: int) -> list[float]:
    """Hourly equity of a random walk in log price: drift 0.02% and deviation 0.5% an hour."""
    rng = random.Random(seed)
    level, equity = 0.0, [100.0]
    for _ in range(hours):
        level += rng.gauss(0.0002, 0.005)
        equity.append(100.0 * math.exp(level))
    return equity


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_merging_periods_into_long_returns_keeps_sharpe_and_sortino(seed: int) -> None:
    # One path, read every hour, or every hour for 500 hours and then every 35 hours (100
    # returns of 35 periods each): both estimate the same walk, so the ratios agree within
    # the sampling error of 600 returns, and Sortino / Sharpe stays near sqrt(2), the ratio
    # of the deviation to the downside deviation of a walk whose drift is small beside it.
    equity = _walk(4_000, seed)
    hours = list(range(501)) + list(range(535, 4_001, 35))
    grid = summarise(_series([h * HOUR for h in range(4_001)], equity), HOUR)
    merged = summarise(_series([h * HOUR for h in hours], [equity[h] for h in hours]), HOUR)
    assert merged.returns_used == 600 and grid.returns_used == 4_000
    assert grid.sharpe is not None and grid.sortino is not None and merged.sharpe is not None and merged.sortino is not None
    assert merged.sharpe == pytest.approx(grid.sharpe, rel=0.15)
    assert merged.sortino == pytest.approx(grid.sortino, rel=0.15)
    assert merged.sortino / merged.sharpe == pytest.approx(grid.sortino / grid.sharpe, rel=0.1)
    assert grid.sortino / grid.sharpe == pytest.approx(math.sqrt(2), rel=0.1)


def test_on_the_grid_the_weighted_ratios_are_exactly_the_plain_ones() -> None:
    returns = [0.013, -0.0071, 0.0021, 0.0, -0.0003, 0.0117]
    n = len(returns)
    mean = sum(returns) / n
    plain_sharpe = mean / math.sqrt(sum((r - mean) ** 2 for r in returns) / (n - 1)) * math.sqrt(8760)
    plain_sortino = mean / math.sqrt(sum(r * r for r in returns if r < 0.0) / n) * math.sqrt(8760)
    assert metrics.sharpe_ratio(returns, 8760, [1.0] * n) == plain_sharpe == metrics.sharpe_ratio(returns, 8760)
    assert metrics.sortino_ratio(returns, 8760, [1.0] * n) == plain_sortino == metrics.sortino_ratio(returns, 8760)


def test_three_flat_years_between_two_rows_dilute_the_annualised_ratios() -> None:
    equity = [100.0, 101.0, 100.5, 102.0, 101.0, 103.0]
    hourly = EquitySeries(ts=[i * HOUR for i in range(6)], equity=equity, open_positions=[0] * 6)
    # The same hours, then the replay's two rows of a three-year hole, then the same moves again.
    ts = [i * HOUR for i in range(6)] + [6 * HOUR, 6 * HOUR + 3 * YEAR] + [6 * HOUR + 3 * YEAR + i * HOUR for i in range(1, 6)]
    gapped = EquitySeries(ts=ts, equity=equity + [103.0, 103.0] + [103.0 * e / 100.0 for e in equity[1:]], open_positions=[0] * 13)
    plain = summarise(StrategyRun("s", _facts(), hourly, []), HOUR)
    summary = summarise(StrategyRun("s", _facts(), gapped, []), HOUR)
    spans = metrics.timed_returns(gapped.ts, gapped.equity, HOUR)[1]
    assert summary.returns_used == 12 and max(spans) == 3 * 8760
    assert plain.sharpe is not None and plain.sortino is not None and summary.sharpe is not None and summary.sortino is not None
    # Ten hours of gains spread over three years: the per-hour mean, so each ratio, is far smaller.
    assert 0 < summary.sharpe < plain.sharpe / 100
    assert 0 < summary.sortino < plain.sortino / 100
    # The same moves, so the same balance of losses to variation: the flat years change neither.
    assert summary.sortino / summary.sharpe == pytest.approx(plain.sortino / plain.sharpe, rel=0.1)
