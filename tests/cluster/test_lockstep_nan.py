"""An action with a non-finite number fails that action alone (its context refuses it), in lockstep as in process.

The review's case: JSON has no NaN (msgspec writes null), so the hub's strict decode raised a ProtocolError that killed the run.
"""
from __future__ import annotations

from pathlib import Path

from bot.trading.actions import ActivateTrailingStop, OpenPair, OpenPosition, UpdateStopLoss, non_finite
from tests.cluster.test_lockstep_equivalence import _equivalent, with_strategy

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
    config = with_strategy(tmp_path, "nan_close", "NanClose", NAN_CLOSE, {"stop_loss_pct": 5.0})
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
