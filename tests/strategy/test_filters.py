"""The multi-timeframe gate, checked against an independent hourly EMA on real candles."""
from __future__ import annotations

from typing import Any

from bot.events import Signal
from bot.ohlcv import Candle
from tests.support import Rig, strategy

RSI: dict[str, Any] = {
    "timeframe": "5m",
    "analyzers": [{"type": "rsi", "params": {"period": 14, "oversold": 35, "overbought": 65}}],
    "exits": {"stop_loss_pct": 0.5, "take_profit": [{"pct": 0.5, "close_pct": 100}]},
}
HOUR = 3_600_000


def _hourly_ema_above(candles: list[Candle], period: int) -> dict[int, bool]:
    """For each hour close time: was that hour's close above its EMA (SMA-seeded)?"""
    hours: dict[int, list[Candle]] = {}
    for c in candles:
        hours.setdefault(c.ts - c.ts % HOUR, []).append(c)
    first = candles[0].ts
    closes = [(start + HOUR, group[-1].close) for start, group in sorted(hours.items()) if start >= first and len(group) == 60]
    above: dict[int, bool] = {}
    a = 2 / (period + 1)
    ema = None
    for i, (close_ts, close) in enumerate(closes):
        if i + 1 == period:
            ema = sum(c for _, c in closes[:period]) / period
        elif ema is not None:
            ema = a * close + (1 - a) * ema
        if ema is not None:
            above[close_ts] = close > ema
    return above


def test_mtf_trend_gate_allows_entries_only_in_the_higher_timeframe_uptrend(btc_candles: list[Candle]) -> None:
    rig = Rig()
    rig.start(
        strategy(id="free", **RSI),
        strategy(id="gated", filters=[{"type": "mtf_trend", "params": {"timeframe": "1h", "period": 10}}], **RSI),
    )
    rig.feed("BTC/USD", btc_candles)
    above = _hourly_ema_above(btc_candles, 10)

    def regime_at(ts: int) -> bool | None:
        # At a shared close time the hour is delivered before the 5m candle that closes with
        # it, so the gate already sees that hour.
        last_hour = max((h for h in above if h <= ts), default=None)
        return None if last_hour is None else above[last_hour]

    gated = [e.ts for e in rig.of_type(Signal, "gated") if e.decision == "entry"]
    free = [e.ts for e in rig.of_type(Signal, "free") if e.decision == "entry"]
    assert len(gated) >= 5 and len(free) > len(gated)
    assert all(regime_at(ts) is True for ts in gated)
    assert any(regime_at(ts) is False for ts in free), "the ungated strategy should also buy in downtrends"
    # The gated strategy subscribes to the hour stream on top of its own.
    assert rig.manager.get("gated").subscriptions() == [("BTC/USD", "5m"), ("BTC/USD", "1h")]
