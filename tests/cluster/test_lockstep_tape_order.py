"""A kill switch tripped by a later strategy's bar (an entry fee) comes after an earlier strategy's entry in the same candle, in lockstep as in process.

The tape's proof: with TapedRisk applying at once instead of recording (its deferral removed), b's fee trips the switch
in pass 1, before a's entry is checked, and this test fails; the catalog's kill-switch test does not notice.
"""
from __future__ import annotations

from pathlib import Path

import orjson

from tests.cluster.test_lockstep_equivalence import _equivalent
from tests.support import REPO

OPENS_AT = '''
from bot.strategy.base import Strategy, StrategyParams


class OpensAt(Strategy[StrategyParams]):
    """Opens long once, on the candle its `quantity`'s thousandths name (a test strategy)."""

    name = "opens_at"
    version = "1.0.0"

    def __init__(self, params, context):
        super().__init__(params, context)
        self.seen = 0
        self.at = round(context.quantity * 1000) % 100

    def on_candle(self, symbol, timeframe, candle):
        self.seen += 1
        if self.seen == self.at:
            self.ctx.open("long", symbol)
'''


def test_a_kill_switch_tripped_in_a_later_bar_lets_the_earlier_entry_through(tmp_path: Path) -> None:
    strategies = tmp_path / "strategies"
    strategies.mkdir()
    (strategies / "opens_at.py").write_text(OPENS_AT)
    fees = {"taker_bps": 5.0, "maker_bps": 2.0}
    # a: load order 1, opens on its 31st candle (settle of candle 31); b: opens on its 30th, fills at candle 31's open (b's bar),
    # and the entry fee trips the kill switch: in process after a's entry was checked.
    for sid, quantity in (("a", 0.031), ("b", 0.030)):
        (strategies / f"{sid}.json").write_bytes(orjson.dumps({
            "id": sid, "module": "opens_at", "class_name": "OpensAt", "symbol": "BTC/USD", "timeframe": "1m",
            "quantity": quantity, "fees": fees, "exits": {"stop_loss_pct": 5.0},
        }))
    config = {
        "mode": "replay",
        "replay": {"candles": {"BTC/USD": {"path": str(REPO / "data" / "BTC-USD-PERP_1m.csv")}}, "log_candles": False},
        "risk": {"max_daily_loss": {"USD": 0.01}},
        "strategies": [{"file": "strategies/a.json"}, {"file": "strategies/b.json"}],
    }
    (tmp_path / "config.json").write_bytes(orjson.dumps(config))
    _equivalent(tmp_path / "config.json", tmp_path, ("2022-01-05", "2022-01-06"))
    events = (tmp_path / "lockstep" / "events.jsonl").read_bytes()
    assert b'"kill_switch"' in events
    opened = [orjson.loads(line)["strategy_id"] for line in events.splitlines() if b'"position_opened"' in line]
    assert opened == ["b", "a"], opened  # a's entry went through before b's fee tripped the switch
