"""Numbers in configuration are finite JSON numbers: a quoted number or a bool is refused, amounts are bounded."""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from bot.config.exchange import LiveFeedConfig
from bot.config.loader import deep_merge
from bot.config.models import StrategyConfig
from bot.strategy.config_load import load_config
from tests.config.builders import problems_of, valid_strategy, write_setup
from tests.support import REPO, strategy

STRATEGY_FILE = Path("strategies") / "a.json"


def problem_in_strategy(root: Path, **overrides: Any) -> tuple[str, str]:
    """(field, reason) of the one problem `load_config` finds in strategies/a.json with `overrides`."""
    path = write_setup(root, {"a.json": valid_strategy(**overrides)})
    problems = problems_of(path)
    assert len(problems) == 1, problems
    assert problems[0].file == str(root / STRATEGY_FILE)
    return problems[0].field, problems[0].reason


def reasons(exc: ValidationError) -> dict[str, str]:
    """Each error's dotted location and message."""
    return {".".join(str(p) for p in err["loc"]): err["msg"] for err in exc.errors()}


# --- quoted numbers and bools -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"quantity": "0.1"}, "quantity"),
        ({"starting_balance": "10000"}, "starting_balance"),
        ({"exits": {"stop_loss_pct": "1.5"}}, "exits.stop_loss_pct"),
        ({"exits": {"take_profit": [{"pct": 1, "close_pct": "50"}]}}, "exits.take_profit[0].close_pct"),
        ({"fees": {"taker_bps": "5"}}, "fees.taker_bps"),
        ({"risk": {"max_open_positions": "2"}}, "risk.max_open_positions"),
        ({"risk": {"max_daily_loss": "500"}}, "risk.max_daily_loss"),
    ],
)
def test_a_quoted_number_in_a_strategy_file_is_refused(tmp_path: Path, overrides: dict[str, Any], field: str) -> None:
    assert problem_in_strategy(tmp_path, **overrides) == (field, "a string is not a number")


def test_a_quoted_analyzer_or_filter_parameter_is_refused(tmp_path: Path) -> None:
    field, reason = problem_in_strategy(tmp_path, analyzers=[{"type": "rsi", "params": {"period": "14"}}])
    assert (field, reason) == ("analyzers[0]", "analyzer 'rsi': params.period: a string is not a number")
    field, reason = problem_in_strategy(tmp_path, filters=[{"type": "min_volume", "params": {"min_volume": "5"}}])
    assert (field, reason) == ("filters[0]", "filter 'min_volume': params.min_volume: a string is not a number")


def test_a_quoted_number_in_config_json_is_refused_where_it_is_written(tmp_path: Path) -> None:
    path = write_setup(
        tmp_path,
        {"a.json": valid_strategy()},
        {"risk": {"max_total_exposure": "50000"}, "feed": {"speed": "60"}, "strategy_defaults": {"starting_balance": "10000"}},
    )
    problems = problems_of(path)
    # config.json's own fields and the default the strategy file inherits, in one run.
    assert {(p.file, p.field, p.reason) for p in problems} == {
        (str(path), "risk.max_total_exposure", "a string is not a number"),
        (str(path), "feed.speed", "a string is not a number"),
        (str(path), "strategy_defaults.starting_balance", "a string is not a number"),
    }
    # Alone, the bad default is reported once, in config.json.
    path = write_setup(tmp_path, {"a.json": valid_strategy()}, {"strategy_defaults": {"starting_balance": "10000"}})
    assert [(p.file, p.field, p.reason) for p in problems_of(path)] == [
        (str(path), "strategy_defaults.starting_balance", "a string is not a number")
    ]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"quantity": True}, "quantity"),
        ({"risk": {"max_open_positions": True}}, "risk.max_open_positions"),
        ({"fees": {"maker_bps": False}}, "fees.maker_bps"),
    ],
)
def test_a_bool_is_not_a_number(tmp_path: Path, overrides: dict[str, Any], field: str) -> None:
    assert problem_in_strategy(tmp_path, **overrides) == (field, "a boolean is not a number")


def test_a_json_integer_is_fine_for_a_float_field_a_quoted_one_is_not(tmp_path: Path) -> None:
    numbers = {"quantity": 1, "starting_balance": 5000, "fees": {"maker_bps": 2}, "exits": {"stop_loss_pct": 2}}
    path = write_setup(tmp_path, {"a.json": valid_strategy(description="0.5", **numbers)}, {"risk": {"max_daily_loss": 1500}})
    loaded = load_config(path)
    spec = loaded.strategies[0]
    assert (spec.quantity, spec.starting_balance, spec.fees.maker_bps, spec.exits.stop_loss_pct) == (1.0, 5000.0, 2.0, 2.0)
    assert all(isinstance(v, float) for v in (spec.quantity, spec.starting_balance, spec.fees.maker_bps, loaded.bot.risk.max_daily_loss))
    assert spec.description == "0.5"  # a string field still takes a string
    assert problem_in_strategy(tmp_path, **{**numbers, "starting_balance": "5000"}) == ("starting_balance", "a string is not a number")


# --- amounts: finite, > 0 and <= 1e12 --------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"starting_balance": 1e308}, "starting_balance"),
        ({"quantity": 1e13}, "quantity"),
        ({"risk": {"max_position_size": 2e12}}, "risk.max_position_size"),
        ({"risk": {"max_daily_loss": 1e300}}, "risk.max_daily_loss"),
    ],
)
def test_an_amount_above_1e12_is_refused(tmp_path: Path, overrides: dict[str, Any], field: str) -> None:
    assert problem_in_strategy(tmp_path, **overrides) == (field, "Input should be less than or equal to 1000000000000")


def test_amounts_up_to_1e12_are_fine_and_volumes_may_be_zero(tmp_path: Path) -> None:
    path = write_setup(
        tmp_path,
        {"a.json": valid_strategy(quantity=1e12, starting_balance=1e12, filters=[{"type": "min_volume", "params": {"min_volume": 0}}])},
        {"risk": {"max_total_exposure": 1e12}},
    )
    assert load_config(path).strategies[0].starting_balance == 1e12
    field, reason = problem_in_strategy(tmp_path, filters=[{"type": "min_volume", "params": {"min_volume": 1e15}}])
    assert (field, reason) == ("filters[0]", "filter 'min_volume': params.min_volume: Input should be less than or equal to 1000000000000")


def test_a_config_with_a_huge_balance_is_refused(tmp_path: Path) -> None:
    path = write_setup(tmp_path, {"a.json": valid_strategy()}, {"strategy_defaults": {"starting_balance": 1e308}})
    assert [(p.file, p.field) for p in problems_of(path)] == [(str(path), "strategy_defaults.starting_balance")]


# --- NaN and infinity (not JSON, but a dict built in code or a control message's merge) --------


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_refused_with_the_reason(value: float) -> None:
    with pytest.raises(ValidationError) as caught:
        strategy(quantity=value)
    assert reasons(caught.value) == {"quantity": f"must be a finite number, got {value}"}
    with pytest.raises(ValidationError) as caught:
        LiveFeedConfig.model_validate({"stale_margin_s": value})
    assert reasons(caught.value) == {"stale_margin_s": f"must be a finite number, got {value}"}
    with pytest.raises(ValidationError) as caught:
        strategy(exits={"take_profit": [{"pct": value, "close_pct": 50}]})
    assert reasons(caught.value) == {"exits.take_profit.0.pct": f"must be a finite number, got {value}"}


# --- a runtime change (control `set`) validates the same way ----------------------------------


def test_a_runtime_change_keeps_numbers_strict() -> None:
    # `set` merges the change into the running spec dumped as JSON data, then validates the whole.
    spec = strategy(exits={"take_profit": [{"pct": 1, "close_pct": 50}]}, fees={"maker_bps": 2})
    dumped = spec.model_dump(mode="json")
    assert StrategyConfig.model_validate(deep_merge(dumped, {"quantity": 0.2})).quantity == 0.2
    assert StrategyConfig.model_validate(deep_merge(dumped, {"quantity": 2})).quantity == 2.0
    changes: list[tuple[dict[str, Any], str]] = [({"quantity": "0.2"}, "quantity"), ({"exits": {"stop_loss_pct": "2"}}, "exits.stop_loss_pct")]
    for change, where in changes:
        with pytest.raises(ValidationError) as caught:
            StrategyConfig.model_validate(deep_merge(dumped, change))
        assert reasons(caught.value) == {where: "a string is not a number"}
        assert "errors.pydantic.dev" not in str(caught.value)


# --- strategy modules: Params inheriting StrategyParams get the same rule -----------------------

MODULE = '''
from typing import Literal

from pydantic import BaseModel, Field
from bot.strategy.base import Strategy, StrategyParams


class Scale(BaseModel):
    """A plain pydantic model, not built on StrictNumbers."""

    factor: float = 1.0


class BandParams(StrategyParams):
    """Parameters."""

    threshold: float = Field(default=1.0, gt=0, description="how far")
    band: tuple[float, float] = (1.0, 2.0)
    weights: dict[str, float] = {}
    label: str | float = "x"
    size: float | Literal["auto"] = "auto"
    levels: list[float] | float = 1.0
    scale: float | Scale = 1.0


class Band(Strategy):
    """Does nothing with a band.

    Suits tests.
    """

    name = "band"
    version = "1.0.0"
    Params = BandParams
'''


def write_module_setup(root: Path, params: dict[str, Any]) -> Path:
    """A config whose strategy_paths hold the `band` module, and a strategy file using it with `params`."""
    (root / "plugins").mkdir(exist_ok=True)
    (root / "plugins" / "band.py").write_text(MODULE)
    (root / "strategies").mkdir(exist_ok=True)
    body = {"id": "b", "module": "band", "symbol": "BTC/USD", "quantity": 0.1, "params": params}
    (root / "strategies" / "b.json").write_bytes(orjson.dumps(body))
    path = root / "config.json"
    path.write_bytes(orjson.dumps({"strategy_paths": ["plugins"], "strategies": [{"file": "strategies/b.json"}]}))
    return path


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"threshold": "0.5"}, "params.threshold"),
        ({"band": [1, "2"]}, "params.band[1]"),
        ({"weights": {"a": 1, "b": "2"}}, "params.weights.b"),
    ],
)
def test_a_module_strategys_quoted_parameter_is_refused(tmp_path: Path, params: dict[str, Any], field: str) -> None:
    path = write_module_setup(tmp_path, params)
    problems = problems_of(path)
    assert [(p.file, p.field, p.reason) for p in problems] == [
        (str(tmp_path / "strategies" / "b.json"), field, "a string is not a number (strategy 'band')")
    ]


def test_a_module_strategys_numbers_are_taken_its_quoted_numbers_are_not(tmp_path: Path) -> None:
    params = {"threshold": 2, "band": [0.5, 3], "weights": {"a": 1}, "label": "0.5"}
    loaded = load_config(write_module_setup(tmp_path, params))
    typed = loaded.catalog.get("band").validate_params(loaded.strategies[0].params)
    # A str | float parameter takes the string as it is.
    assert (typed.threshold, typed.band, typed.weights, typed.label) == (2.0, (0.5, 3.0), {"a": 1.0}, "0.5")  # type: ignore[attr-defined]
    (problem,) = problems_of(write_module_setup(tmp_path, {**params, "threshold": "2"}))
    assert (problem.field, problem.reason) == ("params.threshold", "a string is not a number (strategy 'band')")


@pytest.mark.parametrize(
    ("params", "field", "reason"),
    [
        ({"size": "0.5"}, "params.size", "a string is not a number"),
        ({"size": True}, "params.size", "a boolean is not a number"),
        ({"levels": "2"}, "params.levels", "a string is not a number"),
        ({"levels": [1, "2"]}, "params.levels[1]", "a string is not a number"),
        ({"scale": "3"}, "params.scale", "a string is not a number"),
        ({"scale": {"factor": "3"}}, "params.scale.factor", "a string is not a number"),
        ({"label": False}, "params.label", "a boolean is not a number"),
    ],
    ids=["literal-arm", "literal-arm-bool", "list-arm", "list-arm-item", "model-arm", "model-arm-field", "str-arm-bool"],
)
def test_a_union_parameter_refuses_what_only_its_number_arm_would_take(tmp_path: Path, params: dict[str, Any], field: str, reason: str) -> None:
    # An arm that cannot take the value (a Literal without it, a list, a model) does not let it
    # through: pydantic would turn it into a number by way of the float arm.
    (problem,) = problems_of(write_module_setup(tmp_path, params))
    assert (problem.field, problem.reason) == (field, f"{reason} (strategy 'band')")


def test_a_union_parameter_takes_what_an_arm_takes_as_it_is(tmp_path: Path) -> None:
    params = {"size": "auto", "levels": [1, 2.5], "scale": {"factor": 2}, "label": "0.5"}
    loaded = load_config(write_module_setup(tmp_path, params))
    typed: Any = loaded.catalog.get("band").validate_params(loaded.strategies[0].params)
    assert (typed.size, typed.levels, typed.scale.factor, typed.label) == ("auto", [1.0, 2.5], 2.0, "0.5")
    typed = loaded.catalog.get("band").validate_params({"size": 0.5, "levels": 2, "scale": 3})
    assert (typed.size, typed.levels, typed.scale) == (0.5, 2.0, 3.0)


@pytest.mark.parametrize(
    ("module", "params", "field"),
    [
        ("trend_mtf", {"atr_mult": "3"}, "params.atr_mult"),
        ("trend_mtf", {"market": {"hours_utc": [9, "17"]}}, "params.market.hours_utc[1]"),
        ("hybrid", {"rsi": {"period": "14"}}, "params.rsi.period"),
        ("pairs_arbitrage", {"max_hold_bars": True}, "params.max_hold_bars"),
    ],
)
def test_the_catalogs_strategies_refuse_quoted_parameters(tmp_path: Path, module: str, params: dict[str, Any], field: str) -> None:
    body = {"id": "m", "module": module, "symbol": "BTC/USD", "quantity": 0.1, "params": params}
    path = write_setup(tmp_path, {"m.json": body}, {"strategy_paths": [str(REPO / "strategies")]})
    (problem,) = problems_of(path)
    assert problem.field == field
    assert problem.reason.startswith(("a string is not a number", "a boolean is not a number"))


# --- the real command line --------------------------------------------------------------------


def run_validate(root: Path) -> subprocess.CompletedProcess[str]:
    """`python -m bot validate --config config.json` run in `root`."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")}
    return subprocess.run(
        [sys.executable, "-m", "bot", "validate", "--config", "config.json"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def test_validate_names_file_field_and_reason(tmp_path: Path) -> None:
    write_setup(tmp_path, {"x.json": valid_strategy(quantity="0.1", starting_balance=1e308)})
    result = run_validate(tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: strategies/x.json: quantity: a string is not a number",
        "error: strategies/x.json: starting_balance: Input should be less than or equal to 1000000000000",
    ]


def test_validate_reports_a_module_strategys_quoted_parameter(tmp_path: Path) -> None:
    write_module_setup(tmp_path, {"threshold": "0.5", "size": "0.5"})
    result = run_validate(tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: strategies/b.json: params.threshold: a string is not a number (strategy 'band')",
        "error: strategies/b.json: params.size: a string is not a number (strategy 'band')",
    ]
    assert "pydantic" not in result.stderr

