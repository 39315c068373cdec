"""ema_cross (the catalog module) on recorded BTC candles: entries on upward crosses, only where its ATR% condition holds."""
from __future__ import annotations

from bot.events import Signal
from tests.strategies.reference import atr, btc_1m, clear_of, ema, resample, run_strategy

CANDLES = 45_031  # the whole recorded month
MIN_ATR_PCT = 0.4


def _bars_and_conditions() -> tuple[list[int], list[int], list[int]]:
    """Close times of (all upward crosses, crosses where ATR% >= MIN_ATR_PCT, downward crosses) on 15m bars."""
    bars = resample(btc_1m()[:CANDLES], 15)
    closes = [b.close for b in bars]
    fast, slow, ranges = ema(closes, 12), ema(closes, 26), atr(bars, 14)
    ups, allowed, downs = [], [], []
    for i in range(1, len(bars)):
        if None in (fast[i - 1], slow[i - 1], fast[i], slow[i]):
            continue
        before = fast[i - 1] - slow[i - 1]  # type: ignore[operator]
        now = fast[i] - slow[i]  # type: ignore[operator]
        if before < 0 < now:
            ups.append(bars[i].close_ts)
            value = ranges[i]
            assert value is not None
            pct = 100.0 * value / bars[i].close
            clear_of([pct], MIN_ATR_PCT, "atr_pct")
            if pct >= MIN_ATR_PCT:
                allowed.append(bars[i].close_ts)
        elif before > 0 > now:
            downs.append(bars[i].close_ts)
    return ups, allowed, downs


def test_entries_are_the_upward_crosses_where_atr_pct_holds_while_flat() -> None:
    ups, allowed, downs = _bars_and_conditions()
    blocked = sorted(set(ups) - set(allowed))
    assert len(allowed) >= 10 and len(blocked) >= 10, (len(allowed), len(blocked))
    rig = run_strategy("ema_cross", "15m", params={"market": {"min_atr_pct": MIN_ATR_PCT}}, candles=btc_1m()[:CANDLES])
    entries = [e.ts for e in rig.of_type(Signal) if e.decision == "entry"]
    exits = [e.ts for e in rig.of_type(Signal) if e.decision == "exit"]
    # Replay the position state machine: an entry on an allowed cross while flat, an exit on the next down cross.
    expected_entries, expected_exits, holding = [], [], False
    for ts, kind in sorted([(t, "up") for t in allowed] + [(t, "down") for t in downs]):
        if kind == "up" and not holding:
            expected_entries.append(ts)
            holding = True
        elif kind == "down" and holding:
            expected_exits.append(ts)
            holding = False
    assert entries == expected_entries and exits == expected_exits
    assert not set(entries) & set(blocked)
    # Without the condition the blocked crosses trade too: the filter is what held them back.
    free = run_strategy("ema_cross", "15m", candles=btc_1m()[:CANDLES])
    free_entries = {e.ts for e in free.of_type(Signal) if e.decision == "entry"}
    assert free_entries & set(blocked)
