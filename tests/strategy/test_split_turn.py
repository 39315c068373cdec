"""bar + decide + settle (and decide_other + settle_other) are on_candle (and on_other_candle) in parts: same events, same trades."""
from __future__ import annotations

import filecmp
import shutil
from collections.abc import Callable
from pathlib import Path

import anyio
import orjson

from bot.bus import StrategyPublisher
from bot.config.models import StrategyConfig
from bot.kernel.assembly import RouterFactory
from bot.kernel.replay import build_replay
from bot.ohlcv import Candle
from bot.replay.sources import resolve_sources
from bot.replay.timerange import TimeRange
from bot.services import BotServices
from bot.strategy.manager import StreamRouter
from bot.strategy.orchestrator import TradingOrchestrator
from bot.trading.risk import RiskView
from tests.support import REPO, strategy

OUTPUTS = ("events.jsonl", "trades.csv", "equity.csv", "report.json")
_Route = tuple[TradingOrchestrator, Callable[[str, str, Candle, int], None]]
_Routes = dict[tuple[str, str], tuple[_Route, ...]]


class SplitRouter:
    """deliver_stream, with each active route's turn called in its three parts."""

    def deliver(
        self,
        active: _Routes,
        protect: _Routes,
        key: tuple[str, str],
        on_trade_error: Callable[[TradingOrchestrator, Exception], None],
        on_protect_error: Callable[[TradingOrchestrator, Exception], None],
        protected: Callable[[tuple[_Route, ...]], None],
        symbol: str,
        timeframe: str,
        candle: Candle,
        ts: int,
    ) -> None:
        routes = active.get(key)
        guarding = protect.get(key)
        for owner, handler in routes or ():
            try:
                if handler == owner.on_candle:
                    held = owner.bar(symbol, candle, ts)
                    owner.decide(symbol, timeframe, candle)
                    owner.settle(held, candle)
                else:
                    assert handler == owner.on_other_candle
                    owner.decide_other(symbol, timeframe, candle, ts)
                    owner.settle_other(ts)
            except Exception as exc:  # noqa: BLE001  as deliver_stream
                on_trade_error(owner, exc)
        if guarding:
            for owner, handler in guarding:
                try:
                    handler(symbol, timeframe, candle, ts)
                except Exception as exc:  # noqa: BLE001  as deliver_stream
                    on_protect_error(owner, exc)
            protected(guarding)

    def history(self, routes: tuple[_Route, ...], symbol: str, timeframe: str, candle: Candle, ts: int) -> None:
        """The orchestrators took it already."""

    def book(self, spec: StrategyConfig, publish: StrategyPublisher, risk: RiskView) -> tuple[StrategyPublisher, RiskView]:
        """Its own."""
        return publish, risk


def _split(services: BotServices) -> StreamRouter:
    return SplitRouter()


def _replay(config: Path, out: Path, time_range: TimeRange | None, router: RouterFactory | None) -> None:
    from bot.strategy.config_load import load_config

    loaded = load_config(config)
    sources, problems = resolve_sources(loaded)
    assert not problems
    anyio.run(build_replay(loaded, sources, out, None, None, time_range, router).run)


def _same_outputs(config: Path, tmp: Path, time_range: TimeRange | None) -> None:
    _replay(config, tmp / "whole", time_range, None)
    _replay(config, tmp / "split", time_range, _split)
    for name in OUTPUTS:
        assert filecmp.cmp(tmp / "whole" / name, tmp / "split" / name, shallow=False), name
    assert (tmp / "whole" / "trades.csv").read_text().count("\n") > 5


def test_the_turn_in_parts_replays_the_catalog_byte_for_byte(tmp_path: Path) -> None:
    # Global risk limits, a multi-timeframe strategy (on_other_candle) and the pairs strategy on two symbols.
    _same_outputs(REPO / "config.replay.json", tmp_path, TimeRange.parse("2022-01-05", "2022-01-06"))


def test_the_turn_in_parts_keeps_trailing_and_break_even_exits(tmp_path: Path) -> None:
    # settle's exit management: trailing activation and break-even after the first take-profit.
    shutil.copytree(REPO / "strategies", tmp_path / "strategies")
    specs = {
        "rsi": strategy(
            id="rsi", timeframe="5m", analyzers=[{"type": "rsi", "params": {"period": 14, "oversold": 35, "overbought": 65}}],
            exits={"stop_loss_pct": 0.8, "take_profit": [{"pct": 0.4, "close_pct": 50}, {"pct": 0.9, "close_pct": 50}],
                   "break_even_after_first_take_profit": True},
        ),
        "trail": strategy(
            id="trail", timeframe="15m", analyzers=[{"type": "ema_cross", "params": {"fast": 5, "slow": 13}}],
            exits={"trailing": {"activation_pct": 0.3, "distance_pct": 0.4}},
        ),
    }
    for name, spec in specs.items():
        (tmp_path / "strategies" / f"{name}.json").write_bytes(orjson.dumps(spec.model_dump()))
    config = {
        "mode": "replay",
        "replay": {"candles": {"BTC/USD": {"path": str(REPO / "data" / "BTC-USD-PERP_1m.csv")}}, "log_candles": False},
        "strategies": [{"file": f"strategies/{name}.json"} for name in specs],
    }
    (tmp_path / "config.json").write_bytes(orjson.dumps(config))
    _same_outputs(tmp_path / "config.json", tmp_path, TimeRange.parse("2022-01-03", "2022-01-10"))
