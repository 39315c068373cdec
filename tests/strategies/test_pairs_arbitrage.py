"""pairs_arbitrage on recorded ETH/BTC and XMR/BTC: entries and exits where an independent z-score says, legs together."""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any, TypedDict

import orjson
import pytest

from bot.candles.reader import read_candles
from bot.config.models import StrategyConfig
from bot.errors import ConfigError, StrategyError
from bot.events import ActionFailed, OrderSubmitted, PositionClosed, PositionOpened, RiskRejected, Signal, TradeRecord
from bot.ohlcv import Candle
from bot.strategy.config_load import load_config
from bot.trading.actions import ClosePercent
from tests.support import REPO, SHARED_DATA, Rig, module_strategy, repo_catalog

TF_MS = 300_000


class PairsParams(TypedDict):
    """The parameters these tests run pairs_arbitrage with."""

    second_symbol: str
    window: int
    entry_z: float
    exit_z: float
    stop_z: float
    max_hold_bars: int


PARAMS: PairsParams = {"second_symbol": "XMR/BTC", "window": 100, "entry_z": 2.0, "exit_z": 0.5, "stop_z": 4.0, "max_hold_bars": 288}


@pytest.fixture(scope="module")
def legs() -> tuple[list[Candle], list[Candle]]:
    """The recorded 1m candles of both legs (the same ten days of January 2018)."""
    return list(read_candles(SHARED_DATA / "ETH-BTC_1m.csv")), list(read_candles(SHARED_DATA / "XMR-BTC_1m.csv"))


def spec(**overrides: Any) -> StrategyConfig:
    """pairs_arbitrage on ETH/BTC against XMR/BTC, 5m, one ETH per pair, with `overrides` replacing top-level settings."""
    settings: dict[str, Any] = {"symbol": "ETH/BTC", "timeframe": "5m", "quantity": 1.0, "params": PARAMS, "risk": {"max_open_positions": 2}}
    return module_strategy("pairs_arbitrage", **{**settings, **overrides})


def pair_rig(**overrides: Any) -> Rig:
    """A rig with both legs' feeds and the strategy active."""
    rig = Rig(feeds={"ETH/BTC": "1m", "XMR/BTC": "1m"}, catalog=repo_catalog())
    rig.start(spec(**overrides))
    return rig


def interleaved(eth: list[Candle], xmr: list[Candle], xmr_first: bool = False) -> list[tuple[str, Candle]]:
    """Both legs' candles by time, as replay merges its sources; at a shared minute ETH/BTC first unless `xmr_first`."""
    rank = (1, 0) if xmr_first else (0, 1)
    rows = sorted([(c.ts, rank[0], "ETH/BTC", c) for c in eth] + [(c.ts, rank[1], "XMR/BTC", c) for c in xmr])
    return [(symbol, candle) for _, _, symbol, candle in rows]


def run(eth: list[Candle], xmr: list[Candle], xmr_first: bool = False, **overrides: Any) -> Rig:
    rig = pair_rig(**overrides)
    for symbol, candle in interleaved(eth, xmr, xmr_first):
        rig.services.hub.ingest(symbol, candle)
    return rig


def five_minute_closes(candles: list[Candle]) -> dict[int, float]:
    """Close of each 5-minute bucket: its last 1m candle's close (buckets after the last full one dropped)."""
    closes: dict[int, float] = {}
    for c in candles:
        closes[c.ts - c.ts % TF_MS] = c.close
    last = max(closes)
    del closes[last]  # the hub has not closed the bucket the data ends in
    return closes


def expected_trades(eth: list[Candle], xmr: list[Candle]) -> list[tuple[int, str, int, str]]:
    """(entry bar, direction of the first leg, exit bar, reason) from a from-scratch z-score and state machine."""
    a, b = five_minute_closes(eth), five_minute_closes(xmr)
    bars = sorted(set(a) & set(b))
    window = PARAMS["window"]
    trades = []
    holding: tuple[int, str] | None = None
    opened_from = 0
    for i, bar in enumerate(bars):
        z = None
        if i + 1 >= window:
            ys = [math.log(a[t]) for t in bars[i + 1 - window : i + 1]]
            xs = [math.log(b[t]) for t in bars[i + 1 - window : i + 1]]
            mx, my = sum(xs) / window, sum(ys) / window
            beta = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
            spreads = [y - beta * x for x, y in zip(xs, ys)]
            mean = sum(spreads) / window
            z = (spreads[-1] - mean) / math.sqrt(sum((s - mean) ** 2 for s in spreads) / window)
        if holding is not None:
            if bar < opened_from:
                continue  # legs not both filled yet
            entry_bar, direction = holding
            signed = None if z is None else -z if direction == "long" else z
            held = (bar - opened_from) // TF_MS + 1
            reason = None
            if signed is not None and signed <= PARAMS["exit_z"]:
                reason = "z_exit"
            elif signed is not None and signed >= PARAMS["stop_z"]:
                reason = "z_stop"
            elif held >= PARAMS["max_hold_bars"]:
                reason = "time_limit"
            if reason is not None:
                trades.append((entry_bar, direction, bar, reason))
                holding = None
            continue
        if z is not None and abs(z) >= PARAMS["entry_z"]:
            holding = (bar, "short" if z > 0 else "long")
            # Each leg fills at the open of its symbol's next 5m candle; the pair is complete at the later one.
            next_a = min(t for t in a if t > bar)
            next_b = min(t for t in b if t > bar)
            opened_from = max(next_a, next_b)
    return trades


def test_entries_and_exits_follow_an_independent_spread_z_score(legs: tuple[list[Candle], list[Candle]]) -> None:
    eth, xmr = legs
    expected = expected_trades(eth, xmr)
    assert len(expected) >= 30, "the recorded pair must diverge and revert often enough to test"
    rig = run(eth, xmr)
    signals = rig.of_type(Signal, "pairs_arbitrage")
    entries = [s for s in signals if s.decision == "entry"]
    exits = [s for s in signals if s.decision == "exit"]
    opened = {e.position.position_id: e.position for e in rig.of_type(PositionOpened)}
    got = []
    for entry, exit_ in zip(entries, exits):
        first_leg_side = "short" if entry.score > 0 else "long"
        got.append((first_leg_side, exit_.analyzers["reason"]))
    assert got == [(direction, reason) for _, direction, _, reason in expected]
    # The ETH/BTC leg's side matches the z-score's sign at entry: short when ETH is rich.
    eth_sides = [p.side for p in opened.values() if p.symbol == "ETH/BTC"]
    assert eth_sides == [direction for _, direction, _, _ in expected]
    assert {reason for *_, reason in expected} >= {"z_exit", "z_stop"}


def test_legs_open_and_close_together_and_pair_pnl_is_the_sum_of_its_legs(legs: tuple[list[Candle], list[Candle]]) -> None:
    eth, xmr = legs
    rig = run(eth, xmr, fees={"taker_bps": 10})
    orchestrator = rig.manager.get("pairs_arbitrage")
    by_group: dict[str, list[TradeRecord]] = defaultdict(list)
    opened_by_group: dict[str, list[PositionOpened]] = defaultdict(list)
    open_legs: dict[str, int] = defaultdict(int)
    bar_of_change: dict[str, int] = {}
    for event in rig.events:
        if event.strategy_id != "pairs_arbitrage":
            continue
        if isinstance(event, PositionOpened):
            group = event.position.group
            assert group is not None
            opened_by_group[group].append(event)
            open_legs[group] += 1
            bar_of_change[group] = event.fill.fill_ts
        elif isinstance(event, PositionClosed):
            group = event.trade.group
            assert group is not None
            by_group[group].append(event.trade)
            open_legs[group] -= 1
        elif isinstance(event, Signal):
            # Whenever the strategy decides, every pair is whole or gone: never one leg alone.
            assert all(n in (0, 2) for n in open_legs.values()), dict(open_legs)
    assert len(by_group) >= 30
    assert all(len(v) == 2 for v in opened_by_group.values()) and all(len(v) == 2 for v in by_group.values())
    for group, closed in by_group.items():
        first, second = sorted(closed, key=lambda t: t.symbol)
        assert {first.side, second.side} == {"long", "short"}
        # Closed by the same decision: the same reason and the same 5m bar (each at its symbol's next open).
        assert first.exit_reason == second.exit_reason
        assert abs(first.exit_ts - second.exit_ts) <= TF_MS
        for leg in closed:
            direction = 1 if leg.side == "long" else -1
            gross = direction * (leg.exit_price - leg.entry_price) * leg.quantity
            assert leg.pnl == pytest.approx(gross - leg.fees, rel=1e-9, abs=1e-12)
            assert leg.fees > 0
    total = sum(leg.pnl for closed in by_group.values() for leg in closed)
    portfolio = orchestrator.portfolio
    assert not orchestrator.positions.positions
    assert portfolio.realised - portfolio.fees == pytest.approx(total, rel=1e-9, abs=1e-12)
    assert portfolio.equity == pytest.approx(portfolio.start + total, rel=1e-12)


def test_closing_one_leg_closes_the_other_and_a_partial_close_of_a_leg_is_refused(legs: tuple[list[Candle], list[Candle]]) -> None:
    eth, xmr = legs
    rig = pair_rig()
    merged = interleaved(eth, xmr)
    orchestrator = rig.manager.get("pairs_arbitrage")
    index = 0
    while len(orchestrator.positions.positions) < 2:
        symbol, candle = merged[index]
        rig.services.hub.ingest(symbol, candle)
        index += 1
    eth_leg = orchestrator.positions.position_on("ETH/BTC")
    assert eth_leg is not None and eth_leg.group is not None
    orchestrator.actions.put(ClosePercent(eth_leg.id, 50.0))
    orchestrator.actions.drain()
    failed = rig.of_type(ActionFailed, "pairs_arbitrage")
    assert failed and "pairs close whole" in failed[-1].error
    orchestrator.actions.put(ClosePercent(eth_leg.id, 100.0, "manual"))
    orchestrator.actions.drain()
    for symbol, candle in merged[index : index + 20]:
        rig.services.hub.ingest(symbol, candle)
    closed = rig.of_type(PositionClosed, "pairs_arbitrage")
    assert [(c.trade.symbol, c.trade.exit_reason) for c in closed[:2]] == [("ETH/BTC", "manual"), ("XMR/BTC", "pair_leg_closed")]


def test_a_pair_whose_second_leg_breaks_a_risk_limit_opens_neither_leg(legs: tuple[list[Candle], list[Candle]]) -> None:
    eth, xmr = legs
    # One ETH (the first leg) is allowed; the ~3 XMR of equal notional are not.
    rig = run(eth[:6000], xmr[:6000], risk={"max_open_positions": 2, "max_position_size": 2.0})
    rejected = rig.of_type(RiskRejected, "pairs_arbitrage")
    assert rejected and all(r.pair for r in rejected)
    assert not rig.of_type(PositionOpened, "pairs_arbitrage")
    assert not rig.of_type(OrderSubmitted, "pairs_arbitrage")


def _setup(tmp_path: Path, params: dict[str, Any]) -> Path:
    strategy = {"id": "pairs", "module": "pairs_arbitrage", "symbol": "ETH/BTC", "timeframe": "5m", "quantity": 1, "params": params}
    (tmp_path / "pairs.json").write_bytes(orjson.dumps(strategy))
    config = {"strategy_paths": [str(REPO / "strategies")], "strategies": [{"file": "pairs.json"}]}
    (tmp_path / "config.json").write_bytes(orjson.dumps(config))
    return tmp_path / "config.json"


@pytest.mark.parametrize(
    "params,field,words",
    [
        ({"window": 5}, "params.window", "greater than or equal to 10"),
        ({"entry_z": 0.4, "exit_z": 0.5}, "params", "exit_z < entry_z < stop_z"),
        ({"hedge": "kalman"}, "params.hedge", "'ols' or 'none'"),
        ({"windw": 50}, "params.windw", "Extra inputs are not permitted"),
    ],
)
def test_bad_params_name_the_file_the_field_and_the_reason(tmp_path: Path, params: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_setup(tmp_path, params))
    (problem,) = caught.value.problems
    assert problem.file == str(tmp_path / "pairs.json")
    assert problem.field == field
    assert words in problem.reason and "pairs_arbitrage" in problem.reason


def test_trades_do_not_depend_on_which_leg_fills_first(legs: tuple[list[Candle], list[Candle]]) -> None:
    eth, xmr = legs
    baseline = run(eth, xmr)
    # XMR/BTC first at every shared minute: the second leg's fill now comes before the first's.
    swapped = run(eth, xmr, xmr_first=True)

    def trades(rig: Rig) -> list[tuple[str, str, str]]:
        return [(e.trade.symbol, e.trade.side, e.trade.exit_reason) for e in rig.of_type(PositionClosed, "pairs_arbitrage")]

    assert len(trades(baseline)) >= 60 and sorted(trades(swapped)) == sorted(trades(baseline))


def test_a_leg_left_alone_by_a_cancelled_entry_is_closed(legs: tuple[list[Candle], list[Candle]]) -> None:
    eth, xmr = legs
    rig, merged = pair_rig(), interleaved(eth, xmr)
    orchestrator = rig.manager.get("pairs_arbitrage")
    index = 0
    while len(orchestrator.positions.positions) < 1:
        symbol, candle = merged[index]
        rig.services.hub.ingest(symbol, candle)
        index += 1
    assert len(orchestrator.positions.pending_orders()) == 1  # the other leg still waits for its candle
    rig.manager.deactivate("pairs_arbitrage", "manage")
    for symbol, candle in merged[index : index + 20]:
        rig.services.hub.ingest(symbol, candle)
    assert not orchestrator.positions.positions and not orchestrator.positions.pending_orders()
    closed = rig.of_type(PositionClosed, "pairs_arbitrage")
    assert [c.trade.exit_reason for c in closed] == ["pair_incomplete"]


def test_unload_closing_positions_closes_both_legs_at_once(legs: tuple[list[Candle], list[Candle]]) -> None:
    eth, xmr = legs
    rig, merged = pair_rig(), interleaved(eth, xmr)
    orchestrator = rig.manager.get("pairs_arbitrage")
    index = 0
    while len(orchestrator.positions.positions) < 2:
        symbol, candle = merged[index]
        rig.services.hub.ingest(symbol, candle)
        index += 1
    snapshot = rig.manager.unload("pairs_arbitrage", close_positions=True)
    assert snapshot["positions"] == [] and snapshot["pending_orders"] == []
    closed = rig.of_type(PositionClosed, "pairs_arbitrage")
    assert sorted(c.trade.symbol for c in closed) == ["ETH/BTC", "XMR/BTC"]


@pytest.mark.parametrize(
    "overrides,words",
    [
        ({"exits": {"stop_loss_pct": 2.0}}, "do not apply to pair legs"),
        ({"risk": {"max_open_positions": 1}}, "a pair needs at least 2"),
    ],
)
def test_settings_a_pair_cannot_honour_refuse_the_load(overrides: dict[str, Any], words: str) -> None:
    rig = Rig(feeds={"ETH/BTC": "1m", "XMR/BTC": "1m"}, catalog=repo_catalog())
    with pytest.raises(StrategyError, match=words):
        rig.manager.load(spec(**overrides))
    assert rig.manager.ids() == []
