"""IndicatorRegistry: sharing, independence, parameter errors, update/reset/clear."""
from __future__ import annotations

import csv
import itertools
from pathlib import Path
from typing import Any

import pytest

from bot.indicators import (
    ADX,
    ATR,
    EMA,
    INDICATOR_NAMES,
    ROC,
    RSI,
    SMA,
    BollingerBands,
    Donchian,
    Indicator,
    IndicatorRegistry,
)
from bot.ohlcv import Candle

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def load_candles(name: str, limit: int | None = None) -> list[Candle]:
    """Read a recorded `ts_ms,open,high,low,close,volume` CSV into candles."""
    with (DATA / name).open(newline="") as f:
        reader = csv.reader(f)
        next(reader)
        return [
            Candle(int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5]))
            for r in itertools.islice(reader, limit)
        ]


@pytest.fixture(scope="module")
def sample() -> list[Candle]:
    return load_candles("BTC-USD-PERP_1m.csv", 500)


def test_same_params_same_instance() -> None:
    reg = IndicatorRegistry()
    a = reg.require("ema", period=12)
    assert isinstance(a, EMA)
    assert reg.require("ema", period=12) is a
    assert reg.require("ema", period=12, source="close") is a  # default filled in
    assert reg.require("ema", period=26) is not a
    assert reg.require("ema", period=12, source="high") is not a
    assert reg.require("rsi") is reg.require("rsi", period=14, source="close")
    assert reg.require("bollinger", k=2) is reg.require("bollinger", period=20, k=2.0)
    assert len(reg) == 5
    assert reg.keys() == [
        "ema(period=12,source=close)",
        "ema(period=26,source=close)",
        "ema(period=12,source=high)",
        "rsi(period=14,source=close)",
        "bollinger(period=20,k=2.0,source=close)",
    ]


def test_every_name_builds_its_class() -> None:
    reg = IndicatorRegistry()
    expected = {
        "sma": SMA, "ema": EMA, "rsi": RSI, "atr": ATR, "bollinger": BollingerBands,
        "roc": ROC, "donchian": Donchian, "adx": ADX,
    }
    assert set(INDICATOR_NAMES) == set(expected)
    for name, cls in expected.items():
        params = {"period": 5} if name in ("sma", "ema") else {}
        assert type(reg.require(name, **params)) is cls
    assert reg.keys() == [
        "sma(period=5,source=close)",
        "ema(period=5,source=close)",
        "rsi(period=14,source=close)",
        "atr(period=14)",
        "bollinger(period=20,k=2.0,source=close)",
        "roc(period=10,source=close)",
        "donchian(period=20)",
        "adx(period=14)",
    ]


def test_two_registries_are_independent(sample: list[Candle]) -> None:
    r1 = IndicatorRegistry()
    r2 = IndicatorRegistry()
    e1 = r1.require("ema", period=12)
    e2 = r2.require("ema", period=12)
    assert e1 is not e2
    for c in sample:
        r1.update(c)
    assert e1.ready and not e2.ready and e2.value is None
    assert len(r2) == 1
    r1.clear()
    assert len(r1) == 0 and len(r2) == 1


def test_update_feeds_each_once_in_creation_order(sample: list[Candle]) -> None:
    reg = IndicatorRegistry()
    shared: list[Indicator] = [reg.require("ema", period=9), reg.require("rsi"), reg.require("adx", period=5)]
    reg.require("ema", period=9)  # a second user of the same indicator must not double-feed it
    standalone: list[Indicator] = [EMA(9), RSI(14), ADX(5)]
    for c in sample:
        reg.update(c)
        for ind in standalone:
            ind.update(c)
    for ours, ref in zip(shared, standalone, strict=True):
        assert ours.value == ref.value and ours.ready
    assert [u.__self__ for u in reg._updates] == shared  # type: ignore[attr-defined]


def test_reset_keeps_instances(sample: list[Candle]) -> None:
    reg = IndicatorRegistry()
    ema = reg.require("ema", period=5)
    bb = reg.require("bollinger")
    for c in sample:
        reg.update(c)
    assert ema.ready and bb.ready
    reg.reset()
    assert len(reg) == 2
    assert ema.value is None and not ema.ready and ema.prev is None
    assert bb.value is None and bb.upper is None and not bb.ready
    assert reg.require("ema", period=5) is ema


def test_clear_drops_everything(sample: list[Candle]) -> None:
    reg = IndicatorRegistry()
    ema = reg.require("ema", period=5)
    reg.clear()
    assert len(reg) == 0 and reg.keys() == []
    reg.update(sample[0])  # nothing registered: a no-op
    again = reg.require("ema", period=5)
    assert again is not ema and not again.ready


@pytest.mark.parametrize(
    ("name", "params", "pattern"),
    [
        ("macd", {}, r"unknown indicator 'macd'"),
        ("EMA", {"period": 3}, r"unknown indicator 'EMA'"),
        ("ema", {}, r"ema: parameter 'period' is required"),
        ("sma", {"source": "close"}, r"sma: parameter 'period' is required"),
        ("ema", {"period": 0}, r"ema: parameter 'period' must be an int >= 1"),
        ("ema", {"period": -3}, r"ema: parameter 'period' must be an int >= 1"),
        ("rsi", {"period": 14.0}, r"rsi: parameter 'period' must be an int >= 1"),
        ("atr", {"period": "14"}, r"atr: parameter 'period' must be an int >= 1"),
        ("adx", {"period": True}, r"adx: parameter 'period' must be an int >= 1"),
        ("donchian", {"lookback": 20}, r"donchian: unknown parameter 'lookback'"),
        ("atr", {"source": "close"}, r"atr: unknown parameter 'source'"),
        ("roc", {"source": "price"}, r"roc: parameter 'source' must be one of"),
        ("bollinger", {"k": 0}, r"bollinger: parameter 'k' must be a finite number > 0"),
        ("bollinger", {"k": float("nan")}, r"bollinger: parameter 'k'"),
        ("bollinger", {"k": "2"}, r"bollinger: parameter 'k'"),
    ],
)
def test_bad_requests_raise_value_error(name: str, params: dict[str, Any], pattern: str) -> None:
    reg = IndicatorRegistry()
    with pytest.raises(ValueError, match=pattern):
        reg.require(name, **params)
    assert len(reg) == 0


def test_no_shared_class_state() -> None:
    assert not hasattr(IndicatorRegistry(), "__dict__")
    for name, value in vars(IndicatorRegistry).items():
        if not name.startswith("__"):
            assert not isinstance(value, (list, dict, set)), name
