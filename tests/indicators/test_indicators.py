"""Indicators checked value-for-value against talipp on recorded candles, plus edge cases."""
from __future__ import annotations

import csv
import itertools
import math
import statistics
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
import talipp.indicators as ta  # type: ignore[import-untyped]
from talipp.ohlcv import OHLCV  # type: ignore[import-untyped]

from bot.indicators import (
    ADX,
    ATR,
    EMA,
    ROC,
    RSI,
    SMA,
    BollingerBands,
    Donchian,
    Indicator,
)
from bot.ohlcv import Candle

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"

REL = 1e-9
ABS = 1e-12

# (file, number of candles or None for all). ETH-BTC prices are ~0.09, so an absolute tolerance
# sized for BTC prices would hide real errors there; BTC-USD_1h spans 1,800..19,800, which
# stresses drift in running sums.
SERIES: tuple[tuple[str, int | None], ...] = (
    ("BTC-USD-PERP_1m.csv", 5000),
    ("ETH-BTC_5m.csv", None),
    ("BTC-USD_1h.csv", None),
)


def load_candles(name: str, limit: int | None = None) -> list[Candle]:
    """Read a recorded `ts_ms,open,high,low,close,volume` CSV into candles."""
    out: list[Candle] = []
    with (DATA / name).open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        assert header == ["ts_ms", "open", "high", "low", "close", "volume"]
        for row in itertools.islice(reader, limit):
            out.append(
                Candle(int(row[0]), float(row[1]), float(row[2]), float(row[3]), float(row[4]), float(row[5]))
            )
    return out


@pytest.fixture(scope="module", params=SERIES, ids=[s[0] for s in SERIES])
def candles(request: pytest.FixtureRequest) -> list[Candle]:
    name, limit = request.param
    return load_candles(name, limit)


@pytest.fixture(scope="module")
def btc_1m() -> list[Candle]:
    return load_candles("BTC-USD-PERP_1m.csv")


def ohlcv(candles: Iterable[Candle]) -> list[OHLCV]:
    return [OHLCV(c.open, c.high, c.low, c.close, c.volume) for c in candles]


def run(ind: Indicator, candles: Iterable[Candle], *attrs: str) -> list[tuple[Any, ...]]:
    """Feed `candles` one by one, recording the given attributes after each update."""
    out: list[tuple[Any, ...]] = []
    for c in candles:
        ind.update(c)
        assert ind.ready == (ind.value is not None)
        out.append(tuple(getattr(ind, a) for a in attrs))
    return out


def assert_match(
    label: str,
    ours: Sequence[float | None],
    theirs: Sequence[float | None],
    rel: float = REL,
    abs_tol: float | Callable[[int], float] = ABS,
) -> None:
    assert len(ours) == len(theirs)
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        if b is None:
            assert a is None, f"{label}[{i}]: ours {a!r}, talipp None"
            continue
        assert a is not None, f"{label}[{i}]: ours None, talipp {b!r}"
        tol = abs_tol(i) if callable(abs_tol) else abs_tol
        assert math.isclose(a, b, rel_tol=rel, abs_tol=tol), f"{label}[{i}]: ours {a!r}, talipp {b!r}"


def column(rows: Sequence[tuple[Any, ...]], i: int) -> list[Any]:
    return [r[i] for r in rows]


# --- value-for-value against talipp ------------------------------------------------------------


@pytest.mark.parametrize("period", [1, 2, 9, 50])
@pytest.mark.parametrize("source", ["close", "high", "volume"])
def test_sma_matches_talipp(candles: list[Candle], period: int, source: str) -> None:
    xs = [getattr(c, source) for c in candles]
    ours = column(run(SMA(period, source), candles, "value"), 0)
    theirs = list(ta.SMA(period, input_values=xs))
    exact: list[float | None] = [None] * (period - 1) + [
        math.fsum(xs[i - period + 1 : i + 1]) / period for i in range(period - 1, len(xs))
    ]
    label = f"sma({period},{source})"
    # Against the exactly rounded window mean, tightly. A running sum's rounding is relative to
    # the magnitudes that have passed through it (volume spikes of 1e3x), hence the absolute
    # part scaled to the series' largest input.
    scale = max(abs(x) for x in xs)
    assert_match(label + " vs exact", ours, exact, rel=1e-12, abs_tol=1e-13 * scale)

    # talipp's running update drifts too: on BTC-USD_1h volume (zero-volume hours among values
    # in the thousands) it returns 1.7e-12 where the exact mean is 0. Its own measured error is
    # added to the absolute tolerance so the comparison tests us, not talipp.
    def talipp_error(i: int) -> float:
        return ABS + abs(float(theirs[i]) - float(exact[i]))  # type: ignore[arg-type]

    assert_match(label, ours, theirs, abs_tol=talipp_error)


@pytest.mark.parametrize("period", [1, 2, 12, 26, 200])
@pytest.mark.parametrize("source", ["close", "low", "volume"])
def test_ema_matches_talipp(candles: list[Candle], period: int, source: str) -> None:
    xs = [getattr(c, source) for c in candles]
    rows = run(EMA(period, source), candles, "value", "prev")
    theirs = list(ta.EMA(period, input_values=xs))
    assert_match(f"ema({period},{source})", column(rows, 0), theirs)
    # Same operations in the same order as talipp, so the values are in fact bit-identical.
    assert column(rows, 0) == theirs
    assert column(rows, 1) == [None] + theirs[:-1]


@pytest.mark.parametrize("period", [2, 14, 30])
def test_rsi_matches_talipp(candles: list[Candle], period: int) -> None:
    xs = [c.close for c in candles]
    ours = column(run(RSI(period), candles, "value"), 0)
    # talipp's first value comes from a differently rounded (algebraically equal) seed.
    assert_match(f"rsi({period})", ours, list(ta.RSI(period, input_values=xs)))


@pytest.mark.parametrize("period", [1, 2, 14, 50])
def test_atr_matches_talipp(candles: list[Candle], period: int) -> None:
    ours = column(run(ATR(period), candles, "value"), 0)
    theirs = list(ta.ATR(period, input_values=ohlcv(candles)))
    assert_match(f"atr({period})", ours, theirs)
    assert ours == theirs  # same convention and same float operations


@pytest.mark.parametrize(("period", "k"), [(20, 2.0), (5, 1.5), (50, 2.5), (1, 2.0)])
def test_bollinger_matches_talipp(candles: list[Candle], period: int, k: float) -> None:
    xs = [c.close for c in candles]
    rows = run(BollingerBands(period, k), candles, "value", "upper", "lower", "width")
    theirs = list(ta.BB(period, k, input_values=xs))
    label = f"bb({period},{k})"
    assert_match(label + ".middle", column(rows, 0), [None if t is None else t.cb for t in theirs])
    assert_match(label + ".upper", column(rows, 1), [None if t is None else t.ub for t in theirs])
    assert_match(label + ".lower", column(rows, 2), [None if t is None else t.lb for t in theirs])

    assert_match(label + ".width", column(rows, 3), [None if t is None else t.ub - t.lb for t in theirs])


@pytest.mark.parametrize("period", [1, 2, 10, 50])
@pytest.mark.parametrize("source", ["close", "open"])
def test_roc_matches_talipp(candles: list[Candle], period: int, source: str) -> None:
    xs = [getattr(c, source) for c in candles]
    ours = column(run(ROC(period, source), candles, "value"), 0)
    theirs = list(ta.ROC(period, input_values=xs))
    assert_match(f"roc({period},{source})", ours, theirs)
    assert ours == theirs


@pytest.mark.parametrize("period", [1, 2, 20, 55])
def test_donchian_matches_talipp(candles: list[Candle], period: int) -> None:
    rows = run(Donchian(period), candles, "value", "upper", "lower")
    theirs = list(ta.DonchianChannels(period, input_values=ohlcv(candles)))
    for i, attr in enumerate(("cb", "ub", "lb")):
        expected = [None if t is None else getattr(t, attr) for t in theirs]
        assert_match(f"donchian({period}).{attr}", column(rows, i), expected)
        assert column(rows, i) == expected  # max/min are exact


@pytest.mark.parametrize("period", [1, 2, 14, 30])
def test_adx_matches_talipp(candles: list[Candle], period: int) -> None:
    rows = run(ADX(period), candles, "value", "plus_di", "minus_di")
    theirs = list(ta.ADX(period, period, input_values=ohlcv(candles)))
    label = f"adx({period})"
    assert_match(label, column(rows, 0), [None if t is None else t.adx for t in theirs])
    assert_match(label + ".plus_di", column(rows, 1), [None if t is None else t.plus_di for t in theirs])
    assert_match(label + ".minus_di", column(rows, 2), [None if t is None else t.minus_di for t in theirs])


# --- conventions and edge cases ----------------------------------------------------------------


def closes(*xs: float) -> list[Candle]:
    return [Candle(i * 60_000, x, x, x, x, 1.0) for i, x in enumerate(xs)]


def test_ema_seeding_by_hand() -> None:
    ema = EMA(3)
    values: list[float | None] = []
    prevs: list[float | None] = []
    for c in closes(10.0, 11.0, 13.0, 12.0, 15.0):
        ema.update(c)
        values.append(ema.value)
        prevs.append(ema.prev)
    a = 2.0 / (3 + 1)
    seed = (10.0 + 11.0 + 13.0) / 3
    fourth = a * 12.0 + (1 - a) * seed
    fifth = a * 15.0 + (1 - a) * fourth
    assert values == [None, None, seed, fourth, fifth]
    assert prevs == [None, None, None, seed, fourth]
    assert math.isclose(fifth, 13.3333333333333333, rel_tol=1e-15)


def test_warmup_lengths() -> None:
    """Number of candles before `value` is set, for period p."""
    p = 5
    cases: list[tuple[Indicator, int]] = [
        (SMA(p), p),
        (EMA(p), p),
        (RSI(p), p + 1),
        (ATR(p), p),
        (BollingerBands(p), p),
        (ROC(p), p + 1),
        (Donchian(p), p),
        (ADX(p), 2 * p),
    ]
    for ind, needed in cases:
        for i, c in enumerate(closes(*(100.0 + (j % 3) for j in range(needed)))):
            assert ind.value is None and not ind.ready, (ind, i)
            ind.update(c)
        assert ind.ready and ind.value is not None, ind


def test_rsi_flat_and_monotonic() -> None:
    flat = RSI(3)
    for c in closes(5.0, 5.0, 5.0, 5.0, 5.0):
        flat.update(c)
    assert flat.value == 100.0  # avg gain = avg loss = 0: talipp's convention
    rising = RSI(3)
    for c in closes(1.0, 2.0, 3.0, 4.0):
        rising.update(c)
    assert rising.value == 100.0
    falling = RSI(3)
    for c in closes(4.0, 3.0, 2.0, 1.0):
        falling.update(c)
    assert falling.value == 0.0


def test_roc_zero_reference_is_nan() -> None:
    roc = ROC(1, source="volume")
    roc.update(Candle(0, 1.0, 1.0, 1.0, 1.0, 0.0))
    roc.update(Candle(1, 1.0, 1.0, 1.0, 1.0, 5.0))
    assert roc.ready and roc.value is not None and math.isnan(roc.value)
    roc.update(Candle(2, 1.0, 1.0, 1.0, 1.0, 10.0))
    assert roc.value == 100.0


@pytest.mark.parametrize("name", ["BTC-USD-PERP_1m.csv", "XMR-BTC_1m.csv"])
@pytest.mark.parametrize("period", [2, 20])
def test_bollinger_std_is_accurate(name: str, period: int) -> None:
    """Half the band width / k equals a two-pass population std of the window.

    BTC at ~46,000 catches naive sum-of-squares cancellation; thinly traded XMR-BTC at ~0.03
    has windows whose std collapses 1000x right after a move (sums still holding the move).
    """
    k = 2.0
    bb = BollingerBands(period, k)
    window: deque[float] = deque(maxlen=period)
    for i, c in enumerate(load_candles(name)):
        bb.update(c)
        window.append(c.close)
        if not bb.ready:
            continue
        assert bb.upper is not None and bb.lower is not None and bb.value is not None
        mean = math.fsum(window) / period
        exact = math.sqrt(math.fsum([(x - mean) ** 2 for x in window]) / period)  # two-pass
        ours = (bb.upper - bb.lower) / (2 * k)
        # The bands are rounded to floats at the price level: that rounding (a few ulps of the
        # price) is all we allow on top of 1e-11 relative.
        tol = 1e-11 * exact + 4 * math.ulp(bb.value)
        assert abs(ours - exact) <= tol, (i, ours, exact)
        assert math.isclose(bb.value, mean, rel_tol=1e-13)


def test_bollinger_far_from_first_price() -> None:
    """A window far from where the series started (naive sum of squares would lose it all)."""
    bb = BollingerBands(4, 1.0)
    xs = [1.0] * 10 + [1e9 + d for d in (0.0, 1.0, 2.0, 3.0)] * 50
    for c in closes(*xs):
        bb.update(c)
    assert bb.value == 1e9 + 1.5
    assert bb.upper is not None and bb.width is not None
    # Exact up to the rounding of the band itself to a float near 1e9.
    assert abs((bb.upper - bb.value) - statistics.pstdev([0.0, 1.0, 2.0, 3.0])) <= 2 * math.ulp(1e9)


def test_bollinger_flat_window_has_zero_width() -> None:
    bb = BollingerBands(5)
    for c in closes(46_000.0, 46_010.0, 45_990.0, *([46_001.0] * 300)):
        bb.update(c)
    assert bb.value == 46_001.0
    assert bb.width == 0.0  # the re-centre on heavy cancellation makes it exact


def test_donchian_monotonic_series() -> None:
    up = Donchian(3)
    down = Donchian(3)
    for i in range(100):
        up.update(Candle(i, i, i + 1.0, i - 1.0, i, 1.0))
        down.update(Candle(i, -i, -i + 1.0, -i - 1.0, -i, 1.0))
    assert (up.lower, up.upper, up.value) == (96.0, 100.0, 98.0)
    assert (down.lower, down.upper, down.value) == (-100.0, -96.0, -98.0)


ALL_FACTORIES: tuple[Callable[[], Indicator], ...] = (
    lambda: SMA(20),
    lambda: SMA(7, "volume"),
    lambda: EMA(12),
    lambda: RSI(14),
    lambda: ATR(14),
    lambda: BollingerBands(20, 2.0),
    lambda: ROC(10),
    lambda: Donchian(20),
    lambda: ADX(14),
)


@pytest.mark.parametrize("factory", ALL_FACTORIES)
def test_reset_replays_identically(factory: Callable[[], Indicator], btc_1m: list[Candle]) -> None:
    sample = btc_1m[:600]
    fresh = factory()
    ind = factory()
    attrs = [a for a in ("value", "upper", "lower", "width", "plus_di", "minus_di", "prev") if hasattr(ind, a)]
    expected = run(fresh, sample, *attrs)
    run(ind, btc_1m[1000:1400], *attrs)
    ind.reset()
    assert ind.value is None and not ind.ready
    assert run(ind, sample, *attrs) == expected


def _slot_values(obj: object) -> Iterable[tuple[str, object]]:
    for cls in type(obj).__mro__:
        for name in getattr(cls, "__slots__", ()):
            yield name, getattr(obj, name)


@pytest.mark.parametrize("factory", ALL_FACTORIES)
def test_memory_is_bounded(factory: Callable[[], Indicator], btc_1m: list[Candle]) -> None:
    ind = factory()
    assert isinstance(ind, Indicator)
    assert not hasattr(ind, "__dict__")  # __slots__ all the way down
    for c in itertools.islice(itertools.cycle(btc_1m), 50_000):
        ind.update(c)
    period = ind.period  # type: ignore[attr-defined]
    for name, val in _slot_values(ind):
        if isinstance(val, (list, deque, dict, set)):
            assert len(val) <= period, f"{type(ind).__name__}.{name} holds {len(val)} > {period}"


def test_bad_constructor_params() -> None:
    with pytest.raises(ValueError, match="sma.*period"):
        SMA(0)
    with pytest.raises(ValueError, match="ema.*period"):
        EMA(2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rsi.*source"):
        RSI(14, "Close")
    with pytest.raises(ValueError, match="bollinger.*'k'"):
        BollingerBands(20, -1.0)
    with pytest.raises(ValueError, match="adx.*period"):
        ADX(True)
