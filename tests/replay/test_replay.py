"""Whole replays on real candles: determinism, the accounting identity, failure staying local."""
from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from bot.errors import CandleFileError
from bot.event_codec import event_lines
from bot.events import CandleClosed, Event, OrderFilled, PositionClosed, PositionOpened, PositionReduced, StrategyFault, StrategyStateChanged
from bot.indicators.averages import EMA
from bot.kernel.replay import build_replay
from bot.ohlcv import Candle
from bot.replay.sources import resolve_sources
from bot.replay.timerange import TimeRange
from bot.strategy.analyzers import AnalyzerRegistry
from bot.strategy.config_load import load_config
from tests.support import BASIC_CONFIG, ETH_5M, REPO, Rig, declarative, module_strategy, repo_catalog, state_of, strategy, without_seq

RSI = {
    "id": "rsi",
    "timeframe": "5m",
    "analyzers": [{"type": "rsi", "params": {"period": 14, "oversold": 35, "overbought": 65}}],
    "filters": [{"type": "mtf_trend", "params": {"timeframe": "1h", "period": 20}}],
    "exits": {
        "stop_loss_pct": 0.8,
        "take_profit": [{"pct": 0.4, "close_pct": 50}, {"pct": 0.9, "close_pct": 50}],
        "break_even_after_first_take_profit": True,
    },
    "fees": {"maker_bps": 2, "taker_bps": 5},
    "fill": {"slippage_bps": 1},
}
TRAIL = {
    "id": "trail",
    "timeframe": "15m",
    "analyzers": [{"type": "ema_cross", "params": {"fast": 5, "slow": 13}}],
    "exits": {"trailing": {"activation_pct": 0.3, "distance_pct": 0.4}},
    "fees": {"taker_bps": 4},
    "fill": {"model": "close", "slippage_bps": 2},
}


def _write_config(tmp: Path, data_file: Path) -> Path:
    shutil.copytree(REPO / "strategies", tmp / "strategies")
    (tmp / "strategies" / "rsi.json").write_bytes(orjson.dumps(strategy(**RSI).model_dump()))
    (tmp / "strategies" / "trail.json").write_bytes(orjson.dumps(strategy(**TRAIL).model_dump()))
    config = orjson.loads(BASIC_CONFIG.read_bytes())
    config["replay"]["candles"] = {"BTC/USD": {"path": str(data_file)}}
    config["strategies"] += [{"file": "strategies/rsi.json"}, {"file": "strategies/trail.json"}]
    path = tmp / "config.json"
    path.write_bytes(orjson.dumps(config))
    return path


def _run(config_path: Path, out: Path) -> dict[str, Any]:
    loaded = load_config(config_path)
    sources, problems = resolve_sources(loaded)
    assert not problems
    result = anyio.run(build_replay(loaded, sources, out).run)
    # The count the summary prints: every line of events.jsonl, the set-up's (written once the folder exists) included.
    assert result.events == len(event_lines((out / "events.jsonl").read_bytes()))
    return result.report


def test_two_replays_write_byte_identical_outputs(tmp_path: Path, btc_slice_file: Path) -> None:
    config = _write_config(tmp_path, btc_slice_file)
    first = _run(config, tmp_path / "one")
    second = _run(config, tmp_path / "two")
    one = (tmp_path / "one" / "events.jsonl").read_bytes()
    assert one == (tmp_path / "two" / "events.jsonl").read_bytes()
    assert (tmp_path / "one" / "trades.csv").read_bytes() == (tmp_path / "two" / "trades.csv").read_bytes()
    assert (tmp_path / "one" / "equity.csv").read_bytes() == (tmp_path / "two" / "equity.csv").read_bytes()
    assert (tmp_path / "one" / "report.json").read_bytes() == (tmp_path / "two" / "report.json").read_bytes()
    assert first == second
    lines = event_lines(one)
    assert len(lines) > 12_000
    assert all(first["strategies"][sid]["trades"] > 0 for sid in ("ema_cross", "rsi", "trail")), first["strategies"]
    # Event time is candle time, never the wall clock: every ts lies inside the replayed data.
    stamps = [orjson.loads(line)["ts"] for line in lines]
    assert min(stamps) == stamps[0] == 1_640_991_600_000
    assert stamps == sorted(stamps)
    assert max(stamps) <= 1_640_991_600_000 + 12_001 * 60_000


def test_accounting_identity_holds_after_every_event(btc_candles: list[Candle]) -> None:
    rig = Rig()
    specs = [strategy(**RSI), strategy(**TRAIL), strategy(id="plain")]
    checked = 0

    def check(event: Event) -> None:
        nonlocal checked
        for sid in ("rsi", "trail", "plain"):
            if sid not in rig.factory:
                continue
            p = rig.manager.get(sid).portfolio
            expected = p.start + p.realised - p.fees + p.unrealised
            assert math.isclose(p.equity, expected, rel_tol=1e-9, abs_tol=1e-6), (event, sid, p.record())
            checked += 1
        if isinstance(event, (PositionOpened, PositionReduced, PositionClosed)):
            s = event.portfolio
            assert math.isclose(s.equity, s.start + s.realised - s.fees + s.unrealised, rel_tol=1e-9, abs_tol=1e-6)

    rig.services.bus.subscribe(check)
    rig.start(*specs)
    rig.feed("BTC/USD", btc_candles)
    reasons = {e.trade.exit_reason for e in rig.of_type(PositionClosed)}
    assert {"take_profit_2", "stop_loss", "trailing_stop", "signal"} & reasons >= {"stop_loss", "trailing_stop"}, reasons
    assert rig.of_type(PositionReduced), "partial closes should occur"
    assert checked > 30_000
    for sid in ("rsi", "trail"):
        assert rig.manager.get(sid).portfolio.fees > 0


class _ExplodingAnalyzers:
    """Stands in for one orchestrator's analyzer registry and raises on its nth candle."""

    def __init__(self, inner: AnalyzerRegistry, after: int) -> None:
        self._inner = inner
        self._left = after

    def score(self, candle: Candle) -> float:
        self._left -= 1
        if self._left < 0:
            raise ZeroDivisionError("boom inside the strategy")
        return float(self._inner.score(candle))

    def breakdown(self, candle: Candle) -> dict[str, float]:
        return dict(self._inner.breakdown(candle))


def test_an_exception_in_one_strategy_fails_it_alone_and_its_stops_stay_live(btc_candles: list[Candle]) -> None:
    candles = btc_candles[:6_000]
    baseline = Rig()
    baseline.start(strategy(id="healthy"))
    baseline.feed("BTC/USD", candles)

    rig = Rig()
    doomed_spec = strategy(id="doomed", exit_threshold=None, analyzers=[{"type": "ema_trend", "params": {"period": 5}}], exits={"stop_loss_pct": 0.5})
    rig.start(doomed_spec, strategy(id="healthy"))
    doomed = rig.manager.get("doomed")
    rig.feed("BTC/USD", candles[:30])
    assert doomed.positions.positions, "ema_trend should hold a position within 30 candles"
    registry = declarative(doomed).analyzers
    declarative(doomed).analyzers = _ExplodingAnalyzers(registry, after=0)  # type: ignore[assignment]  # a stand-in, not a registry
    rig.feed("BTC/USD", candles[30:])

    assert doomed.state == "failed" and "ZeroDivisionError: boom" in (doomed.last_error or "")
    errors = rig.of_type(StrategyFault, "doomed")
    assert len(errors) == 1 and "boom" in errors[0].error
    assert rig.of_type(StrategyStateChanged, "doomed")[-1].state == "failed"
    assert doomed.metrics.errors == 1
    # Its open position stayed protected: the stop fired after the failure.
    closed = rig.of_type(PositionClosed, "doomed")
    assert closed and closed[-1].trade.exit_reason == "stop_loss"
    assert closed[-1].ts > errors[0].ts
    # The other strategy did exactly what it does alone.
    healthy = [without_seq(e) for e in rig.events if e.strategy_id == "healthy"]
    assert healthy == [without_seq(e) for e in baseline.events if e.strategy_id == "healthy"]
    # activate brings it back.
    declarative(doomed).analyzers = registry
    rig.manager.activate("doomed")
    assert state_of(doomed) == "active" and doomed.last_error is None
    assert rig.routed_to("BTC/USD", "1m") == ["healthy", "doomed"]


@pytest.mark.parametrize("engine", ["declarative", "module"])
@pytest.mark.parametrize("fast,slow", [(12, 26), (5, 20)])
def test_ema_cross_matches_an_independent_reference(btc_candles: list[Candle], fast: int, slow: int, engine: str) -> None:
    """Trades equal a from-scratch reading of the architecture guide's ema_cross semantics."""
    candles = btc_candles[:8_000]

    def ema_series(n: int) -> list[float | None]:
        a = 2 / (n + 1)
        out: list[float | None] = []
        ema = None
        for i, c in enumerate(candles):
            if i + 1 < n:
                out.append(None)
                continue
            if i + 1 == n:
                ema = sum(x.close for x in candles[:n]) / n
            else:
                ema = a * c.close + (1 - a) * ema  # type: ignore[operator]
            out.append(ema)
        return out

    f, s = ema_series(fast), ema_series(slow)
    expected = []
    holding = False
    entry: tuple[int, float] | None = None
    for i in range(1, len(candles) - 1):
        if f[i - 1] is None or s[i - 1] is None:
            continue
        before, now = f[i - 1] - s[i - 1], f[i] - s[i]  # type: ignore[operator]
        nxt = candles[i + 1]
        if before < 0 < now and not holding:
            holding, entry = True, (nxt.ts, nxt.open)
        elif before > 0 > now and holding:
            assert entry is not None
            expected.append((entry[0], entry[1], nxt.ts, nxt.open, round((nxt.open - entry[1]) * 2.0, 6)))
            holding = False
    if engine == "declarative":
        rig = Rig()
        rig.start(strategy(id="ema", quantity=2.0, analyzers=[{"type": "ema_cross", "params": {"fast": fast, "slow": slow}}]))
    else:  # strategies/ema_cross.py, the catalog's ema_cross
        rig = Rig(catalog=repo_catalog())
        rig.start(module_strategy("ema_cross", id="ema", quantity=2.0, params={"fast": fast, "slow": slow}))
    rig.feed("BTC/USD", candles)
    got = [
        (p.trade.entry_ts, p.trade.entry_price, p.trade.exit_ts, p.trade.exit_price, round(p.trade.pnl, 6))
        for p in rig.of_type(PositionClosed, "ema")
    ]
    assert len(expected) > 20
    assert got == expected


def test_a_failing_subscriber_never_corrupts_trading_state(btc_candles: list[Candle]) -> None:
    from bot.config.models import BotConfig
    from bot.kernel import build_services
    from bot.log import BotLogger
    from bot.strategy.factory import OrchestratorFactory
    from bot.strategy.manager import StrategyManager

    def run(with_bad_subscriber: bool) -> tuple[Any, int]:
        logger = BotLogger.to_stderr(level=60, name="bot.tests.isolated")
        services = build_services(BotConfig(), logger)  # isolation on, as in production
        manager = StrategyManager(services, OrchestratorFactory(services))
        if with_bad_subscriber:

            def bad(event: Event) -> None:
                raise RuntimeError("subscriber bug")

            services.bus.subscribe(bad, types=[OrderFilled, CandleClosed, PositionOpened])
        services.hub.add_feed("BTC/USD", "1m")
        manager.load(strategy(id="s", exits={"stop_loss_pct": 0.5}))
        manager.activate("s")
        for candle in btc_candles[:3_000]:
            services.hub.ingest("BTC/USD", candle)
        orchestrator = manager.get("s")
        assert orchestrator.state == "active"
        snapshot = orchestrator.snapshot()
        return snapshot, services.bus.handler_errors

    clean, clean_errors = run(False)
    dirty, dirty_errors = run(True)
    assert clean_errors == 0 and dirty_errors > 3_000
    assert dirty == clean  # every fill booked, no phantom pending order


def test_replay_with_a_failing_subscriber_reports_incomplete_output(tmp_path: Path, btc_slice_file: Path) -> None:
    from bot.replay.runner import ReplayAborted

    config = _write_config(tmp_path, btc_slice_file)
    loaded = load_config(config)
    sources, _ = resolve_sources(loaded)
    replay = build_replay(loaded, sources, tmp_path / "out")

    def bad(event: Event) -> None:
        raise RuntimeError("disk full")

    replay.services.bus.subscribe(bad, types=[PositionClosed])
    with pytest.raises(ReplayAborted, match="event subscriber error.*disk full.*partial output"):
        anyio.run(replay.run)
    report = orjson.loads((tmp_path / "out" / "report.json").read_bytes())
    assert report["replay"]["status"] == "aborted" and report["replay"]["candles"] == 12_000


# --- the time window: the wall clock and a source's latest_ts_ms --------------------------------

DAY = 86_400_000


class _StoppedClock:
    """A wall clock that always reads the same instant."""

    def __init__(self, now_ms: int) -> None:
        self._now = now_ms

    def now_ms(self) -> int:
        return self._now


def _small_setup(tmp: Path, candles: list[Candle], source: dict[str, Any] | None = None) -> tuple[Path, int]:
    """A config over the first 300 BTC minutes (written to a CSV file); returns it and the last open time."""
    data = tmp / "btc_1m.csv"
    data.write_text("\n".join(["ts_ms,open,high,low,close,volume", *(",".join(repr(v) for v in c) for c in candles[:300])]) + "\n")
    config = _write_config(tmp, data)
    if source:
        body = orjson.loads(config.read_bytes())
        body["replay"]["candles"]["BTC/USD"].update(source)
        config.write_bytes(orjson.dumps(body))
    return config, candles[299].ts


def _replay_at(config: Path, out: Path, now_ms: int) -> Any:
    loaded = load_config(config)
    sources, problems = resolve_sources(loaded)
    assert not problems
    return anyio.run(build_replay(loaded, sources, out, None, _StoppedClock(now_ms)).run)


def test_the_default_window_ends_one_timeframe_after_the_wall_clock(tmp_path: Path, btc_candles: list[Candle]) -> None:
    config, last = _small_setup(tmp_path, btc_candles)
    # The bound is `now` + one timeframe, inclusive: a candle opening a whole timeframe after
    # `now` (the one after the candle in progress) is accepted; one opening 1 ms later is not.
    assert _replay_at(config, tmp_path / "ok", last - 60_000).report["replay"]["status"] == "complete"
    with pytest.raises(CandleFileError) as info:
        _replay_at(config, tmp_path / "early", last - 60_001)
    assert str(info.value).startswith(f"{tmp_path / 'btc_1m.csv'}: last line: timestamp {last} (2022-01-01T03:59:00Z) is after")
    assert not (tmp_path / "early").exists()


def test_latest_ts_ms_sets_the_bound_in_play_time(tmp_path: Path, btc_candles: list[Candle]) -> None:
    long_ago = btc_candles[0].ts - 3_650 * DAY  # a wall clock ten years before the data
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    config, last = _small_setup(tmp_path / "a", btc_candles, {"shift_days": 1, "latest_ts_ms": btc_candles[299].ts + DAY})
    assert _replay_at(config, tmp_path / "ok", long_ago).report["replay"]["status"] == "complete"
    config, last = _small_setup(tmp_path / "b", btc_candles, {"shift_days": 1, "latest_ts_ms": last + DAY - 1})
    with pytest.raises(CandleFileError) as info:
        _replay_at(config, tmp_path / "late", long_ago)
    assert "(played at 2022-01-02T03:59:00Z after shift_days) is after the latest allowed open time, 2022-01-02T03:58:59Z" in str(info.value)
    assert "(replay.candles.BTC/USD.latest_ts_ms)" in str(info.value)
    assert not (tmp_path / "late").exists()


# --- a time range: warm-up before --from, per-file cut at --to ----------------------------------

WARM_BOMB = '''
from bot.strategy.base import Strategy


class WarmBomb(Strategy):
    """Raises on the first candle of warm-up history."""

    name = "warm_bomb"
    version = "1.0.0"

    def on_history(self, symbol, timeframe, candle):
        raise RuntimeError(f"cannot digest {candle.ts}")
'''


def _ranged(config: Path, out: Path, start: str | None, end: str | None) -> Any:
    loaded = load_config(config)
    sources, problems = resolve_sources(loaded)
    assert not problems
    return anyio.run(build_replay(loaded, sources, out, None, None, TimeRange.parse(start, end)).run)


def test_a_strategy_whose_warm_up_raises_fails_alone(tmp_path: Path, btc_slice_file: Path) -> None:
    config = _write_config(tmp_path, btc_slice_file)
    (tmp_path / "strategies" / "warm_bomb.py").write_text(WARM_BOMB)
    body = orjson.loads(config.read_bytes())
    (tmp_path / "strategies" / "bomb.json").write_bytes(
        orjson.dumps({"id": "bomb", "module": "warm_bomb", "symbol": "BTC/USD", "timeframe": "1m", "quantity": 0.1})
    )
    body["strategies"].append({"file": "strategies/bomb.json"})
    config.write_bytes(orjson.dumps(body))
    alone = _write_config(tmp_path / "alone", btc_slice_file)

    result = _ranged(config, tmp_path / "out", "2022-01-02", None)
    baseline = _ranged(alone, tmp_path / "baseline", "2022-01-02", None)

    # Warm-up feeds the history the hub keeps: history_size (1,000) candles before --from.
    first_warm = 1_641_081_600_000 - 1_000 * 60_000
    bomb = result.report["strategies"]["bomb"]
    assert bomb["state"] == "failed" and bomb["last_error"] == f"RuntimeError: cannot digest {first_warm}"
    assert bomb["candles"] == 0
    logged = [orjson.loads(line) for line in event_lines((tmp_path / "out" / "events.jsonl").read_bytes())]
    errors = [e for e in logged if e["type"] == "strategy_error"]
    assert [(e["strategy_id"], e["payload"]["note"]) for e in errors] == [("bomb", "warm-up failed; strategy not activated")]
    # The others warmed up and traded exactly as they do without it.
    for sid in ("ema_cross", "rsi", "trail"):
        assert result.report["strategies"][sid] == baseline.report["strategies"][sid]
        assert result.report["strategies"][sid]["state"] == "active"
    assert result.report["strategies"]["ema_cross"]["trades"] > 0


def test_to_cuts_each_file_at_its_own_open_times(tmp_path: Path, btc_slice_file: Path) -> None:
    # ETH/BTC 5m moved to start at 2022-01-01T04:55Z, beside BTC/USD 1m from 2021-12-31T23:00Z.
    config = _write_config(tmp_path, btc_slice_file)
    body = orjson.loads(config.read_bytes())
    body["replay"]["candles"]["ETH/BTC"] = {"path": str(ETH_5M), "timeframe": "5m", "shift_days": 1452}
    config.write_bytes(orjson.dumps(body))
    end = "2022-01-01T06:02"  # not on a 5m boundary

    result = _ranged(config, tmp_path / "out", None, end)

    # 1m candles 23:00 to 06:01, and 5m ones 04:55 to 06:00: the 06:00 candle opens before --to
    # though it closes after 1m candles that do not.
    assert result.report["replay"]["candles"] == 422 + 14
    logged = [orjson.loads(line) for line in event_lines((tmp_path / "out" / "events.jsonl").read_bytes())]
    base = [(e["payload"]["symbol"], e["payload"]["candle"][0]) for e in logged if e["type"] == "candle" and e["payload"]["timeframe"] in ("1m", "5m")]
    assert base[-2:] == [("BTC/USD", 1_641_016_860_000), ("ETH/BTC", 1_641_016_800_000)]  # 06:01 (1m) and 06:00 (5m)
    assert result.report["replay"]["range"] == {
        "from_ms": None, "to_ms": 1_641_016_920_000, "from": None, "to": "2022-01-01T06:02:00Z", "warmup_candles": 0,
    }


RECORDER = '''
from bot.strategy.base import Strategy


class Recorder(Strategy):
    """Records every candle that reaches it, as history or to decide on; keeps an EMA(5) of the 1h closes."""

    name = "recorder"
    version = "1.0.0"

    def __init__(self, params, context):
        super().__init__(params, context)
        self.trend = context.indicators(context.symbol, "1h").require("ema", period=5)
        self.seen = []

    def subscriptions(self):
        return ((self.ctx.symbol, self.ctx.timeframe), (self.ctx.symbol, "1h"))

    def reset(self):
        self.seen = []

    def on_history(self, symbol, timeframe, candle):
        self.seen.append(("history", timeframe, candle.ts))

    def on_candle(self, symbol, timeframe, candle):
        self.seen.append(("candle", timeframe, candle.ts))
'''


def test_a_higher_timeframe_candle_that_opens_before_from_is_warm_up_not_traded(tmp_path: Path, btc_slice_file: Path) -> None:
    config = _write_config(tmp_path, btc_slice_file)
    (tmp_path / "strategies" / "recorder.py").write_text(RECORDER)
    (tmp_path / "strategies" / "rec.json").write_bytes(
        orjson.dumps({"id": "rec", "module": "recorder", "symbol": "BTC/USD", "timeframe": "15m", "quantity": 0.1})
    )
    body = orjson.loads(config.read_bytes())
    body["strategies"] = [{"file": "strategies/rec.json"}]
    config.write_bytes(orjson.dumps(body))
    loaded = load_config(config)
    sources, _ = resolve_sources(loaded)
    start, hour, quarter = 1_641_084_900_000, 3_600_000, 900_000  # --from 2022-01-02T00:55: inside a 15m and a 1h candle
    replay = build_replay(loaded, sources, tmp_path / "out", None, None, TimeRange.parse("2022-01-02T00:55", "2022-01-02T04:00"))
    anyio.run(replay.run)

    # The 1h candle opening at 00:00 and the 15m one opening at 00:45 close at 01:00, inside the range, but hold
    # warm-up candles: they reach the strategy as history, in the order the hub closes them (the longer timeframe
    # first), and it decides on neither.
    seen = replay.manager.get("rec").strategy.seen  # type: ignore[attr-defined]
    played = seen[[kind for kind, _, _ in seen].index("candle") - 2 :]
    assert played[:4] == [
        ("history", "1h", start - 55 * 60_000),
        ("history", "15m", start - 10 * 60_000),
        ("candle", "15m", start + 5 * 60_000),
        ("candle", "15m", start + 5 * 60_000 + quarter),
    ]
    assert all(ts >= start for kind, _, ts in seen if kind == "candle")
    assert [(tf, ts) for kind, tf, ts in played if kind == "candle" and tf == "1h"] == [("1h", start + 5 * 60_000 + n * hour) for n in range(3)]
    # Nothing before --from is written: no candle of any timeframe opening earlier, and the strategy saw 12 15m candles.
    logged = [orjson.loads(line) for line in event_lines((tmp_path / "out" / "events.jsonl").read_bytes())]
    opens = {(e["payload"]["timeframe"], e["payload"]["candle"][0]) for e in logged if e["type"] == "candle"}
    assert min(ts for _, ts in opens) == start and ("1h", start + 5 * 60_000) in opens and ("15m", start + 5 * 60_000) in opens
    assert replay.manager.get("rec").metrics.candles == 12
    # Its 1h indicator took that candle too: it is the EMA of every 1h candle the hub holds, in order.
    hours = replay.services.hub.history("BTC/USD", "1h")
    assert start - 55 * 60_000 in [c.ts for c in hours]
    reference = EMA(5)
    for candle in hours:
        reference.update(candle)
    assert replay.manager.get("rec").strategy.trend.value == reference.value  # type: ignore[attr-defined]
