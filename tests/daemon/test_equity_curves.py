"""An equity curve stays bounded however long the daemon runs, keeps its first and newest points, and only moves forward."""
from __future__ import annotations

from itertools import pairwise

from bot.daemon.equity_curves import MAX_POINTS, EquityCurve

MINUTE = 60_000


def test_a_curve_keeps_every_point_until_it_is_full() -> None:
    curve = EquityCurve()
    for i in range(1, MAX_POINTS + 1):
        curve.add(i * MINUTE, float(i))
    assert curve.points == [(i * MINUTE, float(i)) for i in range(1, MAX_POINTS + 1)]


def test_a_long_run_is_thinned_to_at_most_max_points_spread_over_all_of_it() -> None:
    curve = EquityCurve()
    count = 40 * MAX_POINTS
    for i in range(1, count + 1):
        curve.add(i * MINUTE, float(i))
        assert len(curve.points) <= MAX_POINTS
    times = [ts for ts, _ in curve.points]
    assert curve.points[0] == (MINUTE, 1.0) and curve.points[-1] == (count * MINUTE, float(count))
    assert times == sorted(set(times)) and len(times) > MAX_POINTS // 4
    # Spread over the whole run: no gap between kept points is more than a few times the average one.
    gaps = [b - a for a, b in pairwise(times)]
    assert max(gaps) <= 4 * (times[-1] - times[0]) / len(gaps)
    # Every point is one that was added.
    assert all(equity == ts / MINUTE for ts, equity in curve.points)


def test_the_newest_point_is_always_the_latest_equity() -> None:
    curve = EquityCurve()
    for i in range(1, 3 * MAX_POINTS):
        curve.add(i * MINUTE, float(i))
        assert curve.points[-1] == (i * MINUTE, float(i))


def test_an_older_time_is_ignored_and_the_same_time_replaces() -> None:
    curve = EquityCurve([(MINUTE, 1.0), (2 * MINUTE, 2.0)])
    curve.add(MINUTE, 9.0)
    curve.add(2 * MINUTE, 3.0)
    assert curve.points == [(MINUTE, 1.0), (2 * MINUTE, 3.0)]
