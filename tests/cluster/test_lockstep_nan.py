"""An action with a non-finite number fails that action alone (its context refuses it), in lockstep as in process.

The review's case: JSON has no NaN (msgspec writes null), so the hub's strict decode raised a ProtocolError that killed the run.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import orjson

from bot.trading.actions import ActivateTrailingStop, OpenPair, OpenPosition, UpdateStopLoss, non_finite
from tests.cluster.test_lockstep_equivalence import _config_copy, _equivalent
from tests.support import REPO

NAN_CLOSE = '''
from bot.strategy.base import Strategy, StrategyParams


class NanClose(Strategy[StrategyParams]):
    """Buys on its 30th candle; on its 40th asks to close a NaN percent of it (its sizing maths went wrong)."""

    name = "nan_close"
    version = "1.0.0"

    def __init__(self, params, context):
        super().__init__(params, context)
        self.seen = 0

    def on_candle(self, symbol, timeframe, candle):
        self.seen += 1
        if self.seen == 30:
            self.ctx.open("long", symbol)
        if self.seen == 40:
            position = self.ctx.position(symbol)
            if position is not None:
                self.ctx.close(position, float("nan"))
'''


def test_a_nan_action_fails_the_action_as_in_process(tmp_path: Path) -> None:
    strategies = tmp_path / "strategies"
    shutil.copytree(REPO / "strategies", strategies)
    (strategies / "nan_close.py").write_text(NAN_CLOSE)
    (strategies / "nan_close.json").write_bytes(orjson.dumps({
        "id": "nan_close", "module": "nan_close", "class_name": "NanClose", "symbol": "BTC/USD", "timeframe": "1m",
        "quantity": 0.01, "exits": {"stop_loss_pct": 5.0},
    }))
    config = _config_copy(tmp_path, {"extra": [{"file": "strategies/nan_close.json"}]})
    _equivalent(config, tmp_path)
    events = (tmp_path / "lockstep" / "events.jsonl").read_bytes()
    assert b"action_failed" in events and b"close_percent percent must be a finite number, got nan" in events
    assert b"strategy_error" not in events


def test_non_finite_names_the_number_in_every_kind() -> None:
    assert non_finite(OpenPosition("BTC/USD", "long", 0.1, "signal", float("inf"))) == "open_position limit_price must be a finite number, got inf"
    assert non_finite(UpdateStopLoss("s-p1", float("-inf"))) == "update_stop_loss price must be a finite number, got -inf"
    pair = OpenPair(OpenPosition("ETH/BTC", "long", 1.0), OpenPosition("XMR/BTC", "short", float("nan")))
    assert non_finite(pair) == "open_pair short: open_position quantity must be a finite number, got nan"
    assert non_finite(ActivateTrailingStop("s-p1", 0.5, 40_000.0)) is None
    assert non_finite(OpenPosition("BTC/USD", "long", 0.1)) is None
