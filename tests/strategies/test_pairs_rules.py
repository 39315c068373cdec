"""pairs_arbitrage's rules one at a time, on hand-built candles whose spread z-scores are known
(hedge 'none', XMR/BTC held at 1, so the spread is log of the ETH/BTC close), and the z-score on recorded candles."""
from __future__ import annotations

import math
import sys
from typing import Any

import pytest

from bot.candles.reader import read_candles
from bot.events import OrderSubmitted, PositionClosed, PositionOpened, Signal
from bot.ohlcv import Candle
from tests.support import REPO, SHARED_DATA, Rig, module_strategy, repo_catalog

# strategies/ is a folder of top-level modules, not a package (the catalog loads each file by its path, mypy
# names each by its stem): import one by that name, never as strategies.<name>, which mypy sees as a second module.
sys.path.append(str(REPO / "strategies"))
from pairs_arbitrage import SpreadWindow

MINUTE = 60_000
T0 = 1_516_406_400_000  # 2018-01-20T00:00:00Z
# Window 10: one outlier among ten values has a z-score of at most 3.
PARAMS: dict[str, Any] = {"second_symbol": "XMR/BTC", "window": 10, "hedge": "none", "entry_z": 2.0, "exit_z": 0.5, "stop_z": 2.9, "max_hold_bars": None}
# Nine log spreads close to 0, so the tenth decides the first z-score.
CALM = [0.001 * (-1) ** i for i in range(9)]
A = 0.01


def run_pair(spreads: list[float], missing: dict[str, set[int]] | None = None, **params: Any) -> Rig:
    """Feed 1m candles, one per spread: ETH/BTC closing at exp(spread), XMR/BTC at 1 (minute i left out of a
    symbol's tape when listed in `missing`), ETH/BTC first at each minute, plus one more minute for the closes."""
    rig = Rig(feeds={"ETH/BTC": "1m", "XMR/BTC": "1m"}, catalog=repo_catalog())
    settings = {"symbol": "ETH/BTC", "timeframe": "1m", "quantity": 1.0, "params": {**PARAMS, **params}, "risk": {"max_open_positions": 2}}
    rig.start(module_strategy("pairs_arbitrage", **settings))
    gone = missing or {}
    previous = 1.0
    for i, spread in enumerate([*spreads, spreads[-1]]):
        close = math.exp(spread)
        ts = T0 + i * MINUTE
        if i not in gone.get("ETH/BTC", set()):
            rig.services.hub.ingest("ETH/BTC", Candle(ts, previous, max(previous, close), min(previous, close), close, 1.0))
        if i not in gone.get("XMR/BTC", set()):
            rig.services.hub.ingest("XMR/BTC", Candle(ts, 1.0, 1.0, 1.0, 1.0, 1.0))
        previous = close
    return rig


def decisions(rig: Rig) -> list[tuple[int, str, str, float]]:
    """(minute, entry/exit, reason, z) of every decision."""
    out = []
    for event in rig.of_type(Signal, "pairs_arbitrage"):
        # Signal.analyzers is typed dict[str, float], but pairs_arbitrage puts its reason text there.
        reason: object = event.analyzers["reason"]
        assert isinstance(reason, str)
        out.append(((event.ts - T0) // MINUTE - 1, event.decision, reason, event.score))
    return out


def entry_reasons(rig: Rig) -> list[tuple[str, str, str]]:
    """(symbol, side, reason) of each entry order sent."""
    return [(o.symbol, o.side, o.reason) for o in rig.of_type(OrderSubmitted) if o.intent == "open"]


def exit_reasons(rig: Rig) -> list[tuple[str, str]]:
    """(symbol, exit reason) of each closed leg."""
    return [(p.trade.symbol, p.trade.exit_reason) for p in rig.of_type(PositionClosed)]


def test_a_rich_spread_opens_short_first_long_second_and_an_overshoot_past_the_mean_exits() -> None:
    """z +2.86 opens spread_rich; the next z is -2.98: past the mean, beyond -stop_z on the pair's winning side,
    so it is z_exit (neither 'back within +-exit_z' nor a stop)."""
    rig = run_pair([*CALM, A, -10 * A])
    assert [(m, d, r) for m, d, r, _ in decisions(rig)] == [(9, "entry", "z_entry"), (10, "exit", "z_exit")]
    assert [round(z, 2) for *_, z in decisions(rig)] == [2.86, -2.98]
    assert entry_reasons(rig) == [("XMR/BTC", "buy", "spread_rich"), ("ETH/BTC", "sell", "spread_rich")]
    assert sorted(exit_reasons(rig)) == [("ETH/BTC", "z_exit"), ("XMR/BTC", "z_exit")]


def test_a_cheap_spread_opens_long_first_and_an_overshoot_the_other_way_exits() -> None:
    rig = run_pair([*CALM, -A, 10 * A])
    assert [(m, d, r) for m, d, r, _ in decisions(rig)] == [(9, "entry", "z_entry"), (10, "exit", "z_exit")]
    assert [round(z, 2) for *_, z in decisions(rig)] == [-2.86, 2.98]
    assert entry_reasons(rig) == [("ETH/BTC", "buy", "spread_cheap"), ("XMR/BTC", "sell", "spread_cheap")]


def test_only_the_adverse_side_reaching_stop_z_is_a_stop() -> None:
    """Short the rich first leg at z +2.86; the spread widens further to z +2.94 >= stop_z: z_stop."""
    rig = run_pair([*CALM, A, 5 * A])
    assert [(m, d, r) for m, d, r, _ in decisions(rig)] == [(9, "entry", "z_entry"), (10, "exit", "z_stop")]
    assert sorted(exit_reasons(rig)) == [("ETH/BTC", "z_stop"), ("XMR/BTC", "z_stop")]


def test_decisions_happen_only_on_bars_where_both_symbols_have_a_candle() -> None:
    """The same spike at minute 9, but XMR/BTC has no candle then: no z-score is taken there and nothing opens."""
    spreads = [*CALM, A, 0.001]
    assert decisions(run_pair(spreads))[0][:2] == (9, "entry")
    rig = run_pair(spreads, missing={"XMR/BTC": {9}})
    assert decisions(rig) == []
    assert entry_reasons(rig) == []


def test_each_leg_fills_at_its_own_symbols_next_candle() -> None:
    """Decided at minute 9; XMR/BTC has no candle at minutes 10 and 11: the ETH/BTC leg fills at 10, the XMR/BTC leg at 12."""
    rig = run_pair([*CALM, A, A, A, A, A], missing={"XMR/BTC": {10, 11}})
    opened = {e.position.symbol: (e.position.entry_ts - T0) // MINUTE for e in rig.of_type(PositionOpened)}
    assert opened == {"ETH/BTC": 10, "XMR/BTC": 12}


def test_the_time_limit_counts_elapsed_candles_of_the_timeframe() -> None:
    """max_hold_bars 4, legs filled at minute 10. Without a gap the pair closes at minute 13 (the 4th candle);
    with both tapes missing minutes 11-13 it closes at minute 14, the first bar after the gap (elapsed: 5)."""
    spreads = [*CALM, A, A, A, A, A, A]
    held = run_pair(spreads, max_hold_bars=4)
    assert [(m, d, r) for m, d, r, _ in decisions(held)] == [(9, "entry", "z_entry"), (13, "exit", "time_limit")]
    gap = {11, 12, 13}
    rig = run_pair(spreads, missing={"ETH/BTC": gap, "XMR/BTC": gap}, max_hold_bars=4)
    exits = [(m, r, z) for m, d, r, z in decisions(rig) if d == "exit"]
    assert [(m, r) for m, r, _ in exits] == [(14, "time_limit")]
    assert exits[0][2] > PARAMS["exit_z"]  # the spread alone would have held on


def _reference_z(ys: list[float], xs: list[float]) -> tuple[float, float]:
    """z-score of the newest spread and the hedge ratio: least-squares beta over the window, the whole window's
    spreads under that beta, population variance."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    beta = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    spreads = [y - beta * x for x, y in zip(xs, ys)]
    mean = sum(spreads) / n
    return (spreads[-1] - mean) / math.sqrt(sum((s - mean) ** 2 for s in spreads) / n), beta


def test_z_uses_the_whole_window_under_the_newest_hedge_ratio_and_the_population_variance() -> None:
    eth = {c.ts: c.close for c in read_candles(SHARED_DATA / "ETH-BTC_1m.csv")}
    xmr = {c.ts: c.close for c in read_candles(SHARED_DATA / "XMR-BTC_1m.csv")}
    minutes = sorted(set(eth) & set(xmr))[:600]
    window = SpreadWindow(100, "ols")
    checked = 0
    for i, ts in enumerate(minutes):
        got = window.update(eth[ts], xmr[ts])
        if i + 1 < 100:
            assert got is None
            continue
        chunk = minutes[i - 99 : i + 1]
        z, beta = _reference_z([math.log(eth[t]) for t in chunk], [math.log(xmr[t]) for t in chunk])
        assert got is not None
        assert got[0] == pytest.approx(z, rel=1e-9, abs=1e-9)
        assert got[1] == pytest.approx(beta, rel=1e-9)
        checked += 1
    assert checked == 501
