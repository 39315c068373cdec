"""A strategy that keeps the Position it was given sees the book update it and close it, in lockstep as in process (the review's case: 18 trades in process, 1 with a mirror rebuilt per turn)."""
from __future__ import annotations

from pathlib import Path

import orjson

from tests.cluster.test_lockstep_equivalence import _equivalent
from tests.support import REPO

KEEPS = '''
from bot.strategy.base import Strategy, StrategyParams


class Keeps(Strategy[StrategyParams]):
    """Opens long when flat and keeps its position; when the kept one reports closed (its stop), says so and opens again."""

    name = "keeps"
    version = "1.0.0"

    def __init__(self, params, context):
        super().__init__(params, context)
        self.kept = None

    def on_candle(self, symbol, timeframe, candle):
        if self.kept is None:
            self.kept = self.ctx.position(symbol)
            if self.kept is None and self.ctx.is_flat(symbol):
                self.ctx.open("long", symbol)
        elif self.kept.status == "closed":
            self.ctx.signal("kept_closed", 0.0, symbol, candle)
            self.kept = None
'''


def test_a_kept_position_is_seen_closing_as_in_process(tmp_path: Path) -> None:
    strategies = tmp_path / "strategies"
    strategies.mkdir()
    (strategies / "keeps.py").write_text(KEEPS)
    # Two of them, one per worker; the second with a wider stop, so their positions close on different candles.
    for sid, stop in (("keeps_a", 0.3), ("keeps_b", 0.5)):
        (strategies / f"{sid}.json").write_bytes(orjson.dumps({
            "id": sid, "module": "keeps", "class_name": "Keeps", "symbol": "BTC/USD", "timeframe": "1m",
            "quantity": 0.01, "exits": {"stop_loss_pct": stop},
        }))
    config = {
        "mode": "replay",
        "replay": {"candles": {"BTC/USD": {"path": str(REPO / "data" / "BTC-USD-PERP_1m.csv")}}, "log_candles": False},
        "strategies": [{"file": "strategies/keeps_a.json"}, {"file": "strategies/keeps_b.json"}],
    }
    (tmp_path / "config.json").write_bytes(orjson.dumps(config))
    _equivalent(tmp_path / "config.json", tmp_path, ("2022-01-05", "2022-01-06"))
    events = (tmp_path / "lockstep" / "events.jsonl").read_bytes()
    assert events.count(b'"kept_closed"') > 5
