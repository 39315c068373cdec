"""Lockstep with minds over two in-process transports replays exactly as in process: events, trades, equity and report byte for byte."""
from __future__ import annotations

import filecmp
import shutil
from pathlib import Path
from typing import Any

import anyio
import orjson

from bot.cluster.local import LocalMinds
from bot.cluster.lockstep import LockstepRouter
from bot.kernel.assembly import RouterFactory
from bot.kernel.replay import build_replay
from bot.replay.sources import resolve_sources
from bot.replay.timerange import TimeRange
from bot.services import BotServices
from bot.strategy.config_load import LoadedConfig, load_config
from bot.strategy.manager import StreamRouter
from tests.support import REPO

OUTPUTS = ("events.jsonl", "trades.csv", "equity.csv", "report.json")
ONE_DAY = ("2022-01-05", "2022-01-06")


def _replay(loaded: LoadedConfig, out: Path, time_range: TimeRange | None, router: RouterFactory | None) -> None:
    sources, problems = resolve_sources(loaded)
    assert not problems
    anyio.run(build_replay(loaded, sources, out, None, None, time_range, router).run)


def _two_workers(loaded: LoadedConfig, seen: list[LocalMinds]) -> RouterFactory:
    def router(services: BotServices) -> StreamRouter:
        workers = [LocalMinds(loaded.catalog), LocalMinds(loaded.catalog)]
        seen.extend(workers)
        return LockstepRouter(services, list(workers))

    return router


def _equivalent(config: Path, tmp: Path, span: tuple[str, str] | None = ONE_DAY) -> list[LocalMinds]:
    time_range = None if span is None else TimeRange.parse(*span)
    _replay(load_config(config), tmp / "in_process", time_range, None)
    workers: list[LocalMinds] = []
    loaded = load_config(config)
    _replay(loaded, tmp / "lockstep", time_range, _two_workers(loaded, workers))
    for name in OUTPUTS:
        assert filecmp.cmp(tmp / "in_process" / name, tmp / "lockstep" / name, shallow=False), name
    # Both workers decided: the strategies were split over them.
    assert all(w.strategy_ids() for w in workers)
    return workers


def _config_copy(tmp: Path, change: dict[str, Any]) -> Path:
    config = orjson.loads((REPO / "config.replay.json").read_bytes())
    for name, value in change.items():
        config[name] = value
    for source in config["replay"]["candles"].values():
        source["path"] = str(REPO / source["path"])
    config["strategies"] += config.pop("extra", [])
    if not (tmp / "strategies").exists():
        shutil.copytree(REPO / "strategies", tmp / "strategies")
    path = tmp / "config.json"
    path.write_bytes(orjson.dumps(config))
    return path


def with_strategy(tmp: Path, module: str, class_name: str, source: str, exits: dict[str, Any]) -> Path:
    """config.replay.json's catalog plus one test strategy (module `module` from `source`, on BTC/USD 1m), in `tmp`."""
    strategies = tmp / "strategies"
    shutil.copytree(REPO / "strategies", strategies)
    (strategies / f"{module}.py").write_text(source)
    spec = {"id": module, "module": module, "class_name": class_name, "symbol": "BTC/USD", "timeframe": "1m", "quantity": 0.01, "exits": exits}
    (strategies / f"{module}.json").write_bytes(orjson.dumps(spec))
    return _config_copy(tmp, {"extra": [{"file": f"strategies/{module}.json"}]})


def test_lockstep_replays_the_catalog_as_in_process(tmp_path: Path) -> None:
    # Global risk limits, a multi-timeframe strategy, the pairs strategy on two symbols, and the --from warm-up.
    workers = _equivalent(REPO / "config.replay.json", tmp_path)
    assert sorted(w for worker in workers for w in worker.strategy_ids()) == sorted(s.id for s in load_config(REPO / "config.replay.json").strategies)
    trades = (tmp_path / "lockstep" / "trades.csv").read_text().count("\n")
    assert trades > 5


def test_lockstep_trips_the_kill_switch_where_in_process_does(tmp_path: Path) -> None:
    config = _config_copy(tmp_path, {"risk": {"max_total_exposure": {"USD": 50000, "BTC": 1}, "max_daily_loss": {"USD": 20, "BTC": 0.001}}})
    _equivalent(config, tmp_path)
    assert b'"kill_switch"' in (tmp_path / "lockstep" / "events.jsonl").read_bytes()


FAILING = '''
from bot.strategy.base import Strategy, StrategyParams


class FailsLater(Strategy[StrategyParams]):
    """Buys on its 30th candle, then raises on its 90th."""

    name = "fails_later"
    version = "1.0.0"

    def __init__(self, params, context):
        super().__init__(params, context)
        self.seen = 0

    def on_candle(self, symbol, timeframe, candle):
        self.seen += 1
        if self.seen == 30:
            self.ctx.signal("entry", 1.0, symbol, candle)
            self.ctx.open("long", symbol)
        if self.seen == 90:
            self.ctx.signal("exit", -1.0, symbol, candle)
            raise RuntimeError(f"broken at candle {candle.ts}")
'''


def test_a_strategy_raising_mid_run_fails_as_in_process(tmp_path: Path) -> None:
    config = with_strategy(tmp_path, "fails_later", "FailsLater", FAILING, {"stop_loss_pct": 0.5})
    _equivalent(config, tmp_path)
    events = (tmp_path / "lockstep" / "events.jsonl").read_bytes()
    assert b"broken at candle" in events and b"fails_later.py:" in events


def test_lockstep_replays_the_whole_files_as_in_process(tmp_path: Path) -> None:
    # The acceptance check: about 3 s here, so it stays in the suite.
    _equivalent(REPO / "config.replay.json", tmp_path, None)
