"""An action its context refuses (a non-finite number) counts as failed in orchestrator.actions.failed (the daemon's `metrics`:
actions_failed), as one the queue's handler refuses does."""
from __future__ import annotations

from pathlib import Path

from bot.events import ActionFailed
from bot.strategy.catalog import StrategyCatalog
from tests.support import Rig, candles_from, module_strategy

BAD_CLOSE = '''
from bot.strategy.base import Strategy, StrategyParams


class BadClose(Strategy[StrategyParams]):
    """Buys on its 2nd candle; on its 4th asks to close `percent` of it."""

    name = "bad_close"
    version = "1.0.0"
    percent = PERCENT

    def __init__(self, params, context):
        super().__init__(params, context)
        self.seen = 0

    def on_candle(self, symbol, timeframe, candle):
        self.seen += 1
        if self.seen == 2:
            self.ctx.open("long", symbol)
        if self.seen == 4:
            self.ctx.close(self.ctx.position(symbol), type(self).percent)
'''


def _run(tmp_path: Path, percent: str) -> tuple[int, int]:
    folder = tmp_path / percent.strip('"()')
    folder.mkdir()
    (folder / "bad_close.py").write_text(BAD_CLOSE.replace("PERCENT", percent))
    rig = Rig(catalog=StrategyCatalog.discover([folder]))
    rig.start(module_strategy("bad_close"))
    rig.feed("BTC/USD", candles_from([(100.0, 101.0, 99.0, 100.0)] * 8))
    return len(rig.of_type(ActionFailed, "bad_close")), rig.manager.get("bad_close").actions.failed


def test_a_refused_action_counts_as_failed(tmp_path: Path) -> None:
    assert _run(tmp_path, "150.0") == (1, 1)
    assert _run(tmp_path, 'float("nan")') == (1, 1)
