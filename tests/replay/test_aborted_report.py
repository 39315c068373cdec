"""An aborted replay's report.json names the failing subscriber EventLog.write, whichever event class's writer failed."""
from __future__ import annotations

import json
from pathlib import Path

import anyio
import orjson
import pytest

from bot.kernel.replay import build_replay
from bot.replay.runner import ReplayAborted
from bot.replay.sources import resolve_sources
from bot.strategy.config_load import load_config
from tests.support import BTC_1M

STRATEGY = '''
from bot.ohlcv import Candle
from bot.strategy.base import Strategy, StrategyContext, StrategyParams


class Odd(Strategy[StrategyParams]):
    """Publishes a signal whose details orjson cannot encode (an int key) on its 50th candle."""

    name = "odd"
    version = "1.0.0"

    def __init__(self, params: StrategyParams, context: StrategyContext) -> None:
        super().__init__(params, context)
        self.n = 0

    def on_candle(self, symbol: str, timeframe: str, candle: Candle) -> None:
        self.n += 1
        if self.n == 50:
            self.ctx.signal("odd", 1.0, symbol, candle, {"k": {1: "int key"}})
'''


def test_an_aborted_runs_report_names_the_event_log_writer(tmp_path: Path) -> None:
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "odd.py").write_text(STRATEGY)
    (tmp_path / "strategies" / "odd.json").write_text(json.dumps({"id": "odd", "module": "odd", "symbol": "BTC/USD", "timeframe": "1m", "quantity": 0.1}))
    lines = BTC_1M.read_text().splitlines()[:200]
    (tmp_path / "btc.csv").write_text("\n".join(lines) + "\n")
    config = {"mode": "replay", "replay": {"candles": {"BTC/USD": {"path": "btc.csv", "timeframe": "1m"}}}, "strategies": [{"file": "strategies/odd.json"}]}
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = load_config(tmp_path / "config.json")
    sources, problems = resolve_sources(loaded)
    assert not problems
    with pytest.raises(ReplayAborted):
        anyio.run(build_replay(loaded, sources, tmp_path / "out").run)
    error = orjson.loads((tmp_path / "out" / "report.json").read_bytes())["replay"]["error"]
    assert "event subscriber EventLog.write failed on signal" in error, error
