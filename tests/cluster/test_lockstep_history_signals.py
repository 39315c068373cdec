"""A strategy that signals (or queues an action) from on_history: published once, as in process (the hub's copy runs on_history;
the mind forgets what its own copy announced on history)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster.test_lockstep_equivalence import _equivalent, with_strategy

NOISY = '''
from bot.strategy.base import Strategy, StrategyParams


class Noisy(Strategy[StrategyParams]):
    """Says what it sees in its history; {action}"""

    name = "noisy"
    version = "1.0.0"

    def __init__(self, params, context):
        super().__init__(params, context)
        self.seen = 0

    def on_history(self, symbol, timeframe, candle):
        self.seen += 1
        if self.seen % 500 == 0:
            self.ctx.signal("warming", 0.0, symbol, candle)
            {action}

    def on_candle(self, symbol, timeframe, candle):
        pass
'''


@pytest.mark.parametrize("action", ["pass", "self.ctx.open('long', symbol) if self.seen == 1000 else None"], ids=["signal", "signal+open"])
def test_a_strategy_signalling_in_its_history_replays_as_in_process(tmp_path: Path, action: str) -> None:
    config = with_strategy(tmp_path, "noisy", "Noisy", NOISY.replace("{action}", action), {"stop_loss_pct": 0.5})
    _equivalent(config, tmp_path)
    assert b'"warming"' in (tmp_path / "in_process" / "events.jsonl").read_bytes()
