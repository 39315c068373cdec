"""An action with a value not of its field's type fails that action where the strategy asks for it, in process and in lockstep alike:
it could not travel to a book elsewhere (a strict decode would end the run), so neither path carries it out."""
from __future__ import annotations

from pathlib import Path

from tests.cluster.test_lockstep_equivalence import _equivalent, with_strategy

CLOSE_PAIR_OF_NONE = '''
from bot.strategy.base import Strategy, StrategyParams


class PairOfNone(Strategy[StrategyParams]):
    """Buys on its 30th candle; on its 40th closes 'the pair' of its position, which is no pair leg (group None)."""

    name = "pair_of_none"
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
                self.ctx.close_pair(position.group)
'''


def test_a_non_wire_value_fails_the_action_not_the_run(tmp_path: Path) -> None:
    config = with_strategy(tmp_path, "pair_of_none", "PairOfNone", CLOSE_PAIR_OF_NONE, {"stop_loss_pct": 5.0})
    _equivalent(config, tmp_path)
    assert b"close_pair: Expected `str`, got `null` - at `$.group`" in (tmp_path / "lockstep" / "events.jsonl").read_bytes()
