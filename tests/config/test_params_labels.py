"""A module's params problem, as `bot ctl set` and a restart's re-applied changes report it: the line leads with
the strategy id, and names the strategy module only when the id does not already."""
from __future__ import annotations

import pytest

from bot.errors import ConfigError
from bot.strategy.config_load import changed_strategy
from tests.support import module_strategy, repo_catalog


@pytest.mark.parametrize(
    ("sid", "line"),
    [
        ("ema_cross", "ema_cross: params: fast (40) must be smaller than slow (26)"),
        ("fast_cross", "fast_cross: params: fast (40) must be smaller than slow (26) (strategy 'ema_cross')"),
    ],
)
def test_a_params_problem_names_the_strategy_module_unless_the_line_leads_with_it(sid: str, line: str) -> None:
    spec = module_strategy("ema_cross", id=sid, params={"fast": 12, "slow": 26})
    with pytest.raises(ConfigError) as refused:
        changed_strategy(spec, {"params": {"fast": 40}}, repo_catalog(), sid)
    assert [str(problem) for problem in refused.value.problems] == [line]
