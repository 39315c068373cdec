"""Tests for higher-timeframe aggregation, against real recorded candles and hand-made gap cases."""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import pytest

from bot.candles.aggregate import EMPTY, Aggregator
from bot.candles.reader import read_candles
from bot.ohlcv import Candle, timeframe_ms

M = 60_000
T0 = 1_640_995_200_000  # 2022-01-01T00:00:00Z, a boundary of every timeframe up to 1d


def _bar(minute: int, o: float, h: float, lo: float, c: float, v: float) -> Candle:
    """A 1m candle `minute` minutes after T0."""
    return Candle(T0 + minute * M, o, h, lo, c, v)


def _feed(agg: Aggregator, candles: list[Candle]) -> list[tuple[Candle, ...]]:
    """Feed candles one by one and return each add() result."""
    return [agg.add(c) for c in candles]


def test_eth_btc_1m_reproduces_recorded_5m(shared_data: Path) -> None:
    """ETH-BTC 1m aggregated to 5m equals the recorded 5m file on all 2,880 fully covered buckets."""
    recorded = {c.ts: c for c in read_candles(shared_data / "ETH-BTC_5m.csv")}
    agg = Aggregator(M, 5 * M)
    emitted = [out for c in read_candles(shared_data / "ETH-BTC_1m.csv") for out in agg.add(c)]
    pending = agg.pending()
    assert pending is not None
    first, rest = emitted[0], emitted[1:] + [pending]
    # The 1m file starts at 04:53, so its first 5m bucket (04:50) is only partly covered.
    assert first.ts == 1_516_423_800_000
    assert first != recorded[first.ts]
    assert len(rest) == 2_880
    for mine in rest:
        theirs = recorded[mine.ts]
        assert mine[:5] == theirs[:5], mine.ts
        assert math.isclose(mine.volume, theirs.volume, rel_tol=1e-9), mine.ts
    # The bucket holding the one missing minute (05:18 on 2018-01-24) is emitted and still matches.
    assert 1_516_770_900_000 in {c.ts for c in rest}


@pytest.mark.parametrize("timeframe", ["15m", "1h", "4h", "1d"])
def test_alignment_and_values_on_btc_perp(shared_data: Path, timeframe: str) -> None:
    """Emitted candles sit on UTC epoch boundaries and summarise exactly their bucket's 1m candles."""
    target = timeframe_ms(timeframe)
    base = list(read_candles(shared_data / "BTC-USD-PERP_1m.csv"))
    buckets: defaultdict[int, list[Candle]] = defaultdict(list)
    for c in base:
        buckets[c.ts - c.ts % target].append(c)
    agg = Aggregator(M, target)
    emitted: list[Candle] = []
    for c in base:
        out = agg.add(c)
        emitted.extend(out)
        if out:
            # The file has no gaps, so each bucket is emitted on its own last minute, not one late.
            assert len(out) == 1 and out[0].ts + target == c.ts + M
    pending = agg.pending()
    assert pending is not None
    assert [c.ts for c in emitted] + [pending.ts] == sorted(buckets)
    for candle in emitted + [pending]:
        assert candle.ts % target == 0
        members = buckets[candle.ts]
        assert candle.open == members[0].open
        assert candle.high == max(m.high for m in members)
        assert candle.low == min(m.low for m in members)
        assert candle.close == members[-1].close
        assert math.isclose(candle.volume, sum(m.volume for m in members), rel_tol=1e-9)


def test_daily_from_btc_perp(shared_data: Path) -> None:
    """1m -> 1d: the partial first day (from 23:00) and 31 January days are emitted, Feb 1 stays pending."""
    agg = Aggregator(M, timeframe_ms("1d"))
    emitted = [out for c in read_candles(shared_data / "BTC-USD-PERP_1m.csv") for out in agg.add(c)]
    assert len(emitted) == 32
    assert emitted[0].ts == 1_640_908_800_000  # 2021-12-31T00:00Z
    assert emitted[1].ts == T0
    assert all(c.ts % 86_400_000 == 0 for c in emitted)
    pending = agg.pending()
    assert pending is not None and pending.ts == 1_643_673_600_000  # 2022-02-01T00:00Z


def test_complete_bucket_emitted_on_its_last_candle() -> None:
    """Five minutes make one 5m candle, returned by the fifth add; the others return the shared empty tuple."""
    agg = Aggregator(M, 5 * M)
    bars = [
        _bar(0, 10, 12, 9, 11, 1),
        _bar(1, 11, 15, 10, 14, 2),
        _bar(2, 14, 14, 7, 8, 3),
        _bar(3, 8, 9, 8, 9, 4),
        _bar(4, 9, 10, 8.5, 9.5, 5),
    ]
    results = _feed(agg, bars)
    assert all(r is EMPTY for r in results[:4])
    assert results[4] == (Candle(T0, 10, 15, 7, 9.5, 15),)
    assert agg.pending() is None


def test_missing_middle_minute_still_completes_on_time() -> None:
    """A hole inside a bucket does not delay it: the bucket's last minute closes it."""
    agg = Aggregator(M, 5 * M)
    results = _feed(agg, [_bar(0, 10, 11, 9, 10, 1), _bar(1, 10, 12, 10, 12, 1), _bar(4, 12, 13, 11, 11, 1)])
    assert results[:2] == [EMPTY, EMPTY]
    assert results[2] == (Candle(T0, 10, 13, 9, 11, 3),)


def test_gap_bucket_emitted_when_next_bucket_starts() -> None:
    """A bucket missing its last minute is emitted by the first candle of the next bucket."""
    agg = Aggregator(M, 5 * M)
    results = _feed(
        agg,
        [_bar(0, 10, 11, 9, 10, 1), _bar(1, 10, 12, 10, 12, 2), _bar(2, 12, 12, 11, 11.5, 3), _bar(6, 20, 21, 19, 20, 4)],
    )
    assert results[:3] == [EMPTY, EMPTY, EMPTY]
    assert results[3] == (Candle(T0, 10, 12, 9, 11.5, 6),)
    assert agg.pending() == Candle(T0 + 5 * M, 20, 21, 19, 20, 4)


def test_two_buckets_returned_at_once() -> None:
    """A pending partial bucket and a one-candle bucket completed by the same candle come back together."""
    agg = Aggregator(M, 5 * M)
    results = _feed(agg, [_bar(0, 10, 11, 9, 10, 1), _bar(1, 10, 12, 10, 12, 2), _bar(9, 30, 31, 29, 30.5, 7)])
    assert results[2] == (Candle(T0, 10, 12, 9, 12, 3), Candle(T0 + 5 * M, 30, 31, 29, 30.5, 7))
    assert agg.pending() is None


def test_lone_last_candle_after_empty_state() -> None:
    """With nothing pending, a bucket's last base candle alone forms (and completes) that bucket."""
    agg = Aggregator(M, 5 * M)
    assert agg.add(_bar(4, 1, 2, 0.5, 1.5, 9)) == (Candle(T0, 1, 2, 0.5, 1.5, 9),)
    assert agg.pending() is None


def test_pending_partial_not_emitted() -> None:
    """The partial bucket is visible through pending() and never emitted without a later candle."""
    agg = Aggregator(15 * M, timeframe_ms("4h"))
    assert agg.pending() is None
    results = _feed(agg, [Candle(T0 + 15 * M * i, 5, 6, 4, 5, 1) for i in range(3)])
    assert results == [EMPTY, EMPTY, EMPTY]
    assert agg.pending() == Candle(T0, 5, 6, 4, 5, 3)


def test_alignment_of_unaligned_start() -> None:
    """A stream starting mid-hour buckets by UTC boundary, not by its first candle."""
    agg = Aggregator(M, timeframe_ms("1h"))
    start = T0 + 37 * M
    results = _feed(agg, [Candle(start + i * M, 1, 1, 1, 1, 1) for i in range(30)])
    emitted = [c for r in results for c in r]
    assert emitted == [Candle(T0, 1, 1, 1, 1, 23)]
    assert agg.pending() == Candle(T0 + 3_600_000, 1, 1, 1, 1, 7)


def test_rejects_non_ascending() -> None:
    """Feeding a candle at or before the previous one raises ValueError."""
    agg = Aggregator(M, 5 * M)
    agg.add(_bar(1, 1, 1, 1, 1, 1))
    with pytest.raises(ValueError, match="not after"):
        agg.add(_bar(1, 1, 1, 1, 1, 1))
    with pytest.raises(ValueError, match="not after"):
        agg.add(_bar(0, 1, 1, 1, 1, 1))


@pytest.mark.parametrize(
    ("base", "target"),
    [(M, M), (5 * M, M), (M, 90_000), (0, 5 * M), (-M, 5 * M), (M, 0), (60_000.0, 300_000), (M, True)],
)
def test_invalid_constructor_args(base: int, target: int) -> None:
    """Target not a larger multiple of base, or non-positive/non-int values, raise ValueError."""
    with pytest.raises(ValueError):
        Aggregator(base, target)
