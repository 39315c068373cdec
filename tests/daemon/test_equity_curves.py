"""An equity curve stays bounded however long the daemon runs, spread evenly in time, with its first and newest points, only moving forward."""
from __future__ import annotations

from itertools import pairwise

from bot.daemon.equity_curves import MAX_POINTS, EquityCurve

MINUTE = 60_000
DAY = 1_440 * MINUTE


def _points(curve: EquityCurve) -> list[tuple[int, float]]:
    return list(zip(curve.times, curve.values, strict=True))


def test_a_curve_keeps_every_point_until_it_is_full() -> None:
    curve = EquityCurve()
    for i in range(1, MAX_POINTS + 1):
        curve.add(i * MINUTE, float(i))
    assert _points(curve) == [(i * MINUTE, float(i)) for i in range(1, MAX_POINTS + 1)]


def test_a_long_run_is_thinned_to_at_most_max_points_spread_over_all_of_it() -> None:
    curve = EquityCurve()
    count = 40 * MAX_POINTS
    for i in range(1, count + 1):
        curve.add(i * MINUTE, float(i))
        assert len(curve.times) <= MAX_POINTS
    times = list(curve.times)
    assert _points(curve)[0] == (MINUTE, 1.0) and _points(curve)[-1] == (count * MINUTE, float(count))
    assert times == sorted(set(times)) and len(times) > MAX_POINTS // 4
    # Spread evenly: no gap between kept points is more than a few times the average one.
    gaps = [b - a for a, b in pairwise(times)]
    assert max(gaps) <= 4 * (times[-1] - times[0]) / len(gaps)
    # Every point is one that was added.
    assert all(equity == ts / MINUTE for ts, equity in _points(curve))


def test_the_newest_point_is_always_the_latest_equity() -> None:
    curve = EquityCurve()
    for i in range(1, 3 * MAX_POINTS):
        curve.add(i * MINUTE, float(i))
        assert _points(curve)[-1] == (i * MINUTE, float(i))


def test_an_older_time_is_ignored_and_the_same_time_replaces() -> None:
    curve = EquityCurve()
    curve.add(MINUTE, 1.0)
    curve.add(2 * MINUTE, 2.0)
    curve.add(MINUTE, 9.0)
    curve.add(2 * MINUTE, 3.0)
    assert _points(curve) == [(MINUTE, 1.0), (2 * MINUTE, 3.0)]


def test_journalled_days_go_in_front_and_a_later_day_is_ignored() -> None:
    curve = EquityCurve()
    curve.add(10 * DAY, 5.0)
    curve.prepend([(8 * DAY, 3.0), (9 * DAY, 4.0), (10 * DAY, 99.0), (11 * DAY, 99.0)])
    assert _points(curve) == [(8 * DAY, 3.0), (9 * DAY, 4.0), (10 * DAY, 5.0)]


def test_a_year_of_days_then_minutes_stays_even_in_time() -> None:
    # A restart after a year: its days in front, then two days of one-minute candles. The curve must
    # neither keep the minutes dense while dropping days, nor stop adding points.
    curve = EquityCurve()
    start = 400 * DAY
    for i in range(2 * 1_440):
        curve.add(start + i * MINUTE, 1_000.0 + i)
    curve.prepend([(start - (365 - d) * DAY, float(d)) for d in range(365)])
    for i in range(2 * 1_440, 4 * 1_440):
        curve.add(start + i * MINUTE, 1_000.0 + i)
    times = list(curve.times)
    assert len(times) <= MAX_POINTS
    assert all(start - (365 - d) * DAY in set(times) for d in range(365))  # every day kept: the spacing is under a day
    gaps = [b - a for a, b in pairwise(times)]
    assert max(gaps) <= DAY and max(b - a for a, b in pairwise(t for t in times if t >= start)) <= 2 * curve.spacing
    assert _points(curve)[-1] == (start + (4 * 1_440 - 1) * MINUTE, 1_000.0 + 4 * 1_440 - 1)


def test_a_reply_of_at_most_n_points_is_even_in_time_with_the_ends() -> None:
    curve = EquityCurve()
    for i in range(1, MAX_POINTS + 1):
        curve.add(i * MINUTE, float(i))
    for wanted in (2, 3, 10, 999, 1_000, MAX_POINTS):
        points = curve.points(wanted)
        assert len(points) <= wanted and points[0] == (MINUTE, 1.0) and points[-1] == (MAX_POINTS * MINUTE, float(MAX_POINTS))
        assert len(points) >= min(wanted, MAX_POINTS) // 2
