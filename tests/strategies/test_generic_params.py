"""Strategy[Params]: the type argument is the parameter model, read typed as `self.params`; the older way still loads."""
from __future__ import annotations

from pathlib import Path

from bot.events import PositionClosed
from bot.ohlcv import Candle
from bot.strategy.catalog import StrategyCatalog
from tests.support import Rig, module_strategy

_PARAMS = '''
from pydantic import Field
from bot.strategy.base import Strategy, StrategyParams


class CrossParams(StrategyParams):
    """Parameters."""

    fast: int = Field(default=5, ge=1)
    slow: int = Field(default=20, ge=2)
'''

_DECIDE = '''
    def on_candle(self, symbol, timeframe, candle):
        """Enter on an upward cross, exit on a downward one."""
        fast, slow = self.fast.value, self.slow.value
        if fast is None or slow is None:
            return
        above = fast > slow
        crossed, self.above = self.above is not None and above != self.above, above
        position = self.ctx.position()
        if crossed and above and position is None and self.ctx.is_flat():
            self.ctx.open("long")
        elif crossed and not above and position is not None and position.closable:
            self.ctx.close(position)
'''

NEW_WAY = _PARAMS + '''

class NewWay(Strategy[CrossParams]):
    """EMA cross, written with the type argument.

    Suits tests.
    """

    name = "new_way"
    version = "1.0.0"

    def __init__(self, params: CrossParams, context) -> None:
        super().__init__(params, context)
        self.fast = context.indicators().require("ema", period=self.params.fast)
        self.slow = context.indicators().require("ema", period=self.params.slow)
        self.above = None
''' + _DECIDE

OLD_WAY = _PARAMS + '''

class OldWay(Strategy):
    """EMA cross, written the way strategies were written before the type argument.

    Suits tests.
    """

    name = "old_way"
    version = "1.0.0"
    Params = CrossParams

    def __init__(self, params, context):
        super().__init__(params, context)
        self.p = params
        self.fast = context.indicators().require("ema", period=self.p.fast)
        self.slow = context.indicators().require("ema", period=self.p.slow)
        self.above = None
''' + _DECIDE

MISMATCHED = _PARAMS + '''

class OtherParams(StrategyParams):
    """Another model."""


class Mismatched(Strategy[CrossParams]):
    """Declares one model and names another.

    Suits nothing.
    """

    name = "mismatched"
    version = "1.0.0"
    Params = OtherParams
'''


def _catalog(tmp_path: Path) -> StrategyCatalog:
    folder = tmp_path / "plugins"
    folder.mkdir()
    for name, source in {"new_way.py": NEW_WAY, "old_way.py": OLD_WAY, "mismatched.py": MISMATCHED}.items():
        (folder / name).write_text(source)
    return StrategyCatalog.discover([folder])


def test_the_type_argument_is_the_params_model(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    entry = catalog.get("new_way")
    assert entry.cls.Params.__name__ == "CrossParams"
    assert entry.defaults() == {"fast": 5, "slow": 20}
    assert entry.validate_params({"fast": 3}).model_dump() == {"fast": 3, "slow": 20}


def test_a_params_attribute_that_contradicts_the_type_argument_is_a_discovery_problem(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    assert "mismatched" not in {e.name for e in catalog.entries()}
    (problem,) = [p for p in catalog.problems if p.path.name == "mismatched.py"]
    assert "Params 'OtherParams' is not its type argument 'CrossParams'" in problem.reason


def test_a_module_written_the_old_way_loads_and_trades_as_the_new_way_does(tmp_path: Path, btc_candles: list[Candle]) -> None:
    rig = Rig(catalog=_catalog(tmp_path))
    rig.start(module_strategy("new_way", id="new", params={"fast": 4}), module_strategy("old_way", id="old", params={"fast": 4}))
    rig.feed("BTC/USD", btc_candles[:3_000])
    assert rig.manager.get("new").strategy.params.fast == 4 and rig.manager.get("old").strategy.p.fast == 4  # type: ignore[attr-defined]

    def trades(sid: str) -> list[tuple[object, ...]]:
        return [(e.trade.entry_ts, e.trade.exit_ts, e.trade.pnl) for e in rig.of_type(PositionClosed, sid)]

    assert len(trades("new")) > 10
    assert trades("new") == trades("old")
    assert rig.manager.states() == {"new": "active", "old": "active"}
