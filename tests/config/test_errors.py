"""Bad configurations: every problem is reported with the file that supplied it, the field path and a reason."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.errors import ConfigError, ConfigProblem
from bot.strategy.config_load import load_config
from tests.config.builders import problems_of, valid_strategy, write_setup


def only(problems: list[ConfigProblem]) -> ConfigProblem:
    """The single problem of a list, failing with the whole list otherwise."""
    assert len(problems) == 1, problems
    return problems[0]


def test_config_json_not_found(tmp_path: Path) -> None:
    path = tmp_path / "missing.json"
    problem = only(problems_of(path))
    assert (problem.file, problem.field) == (str(path), "")
    assert "file not found" in problem.reason


def test_config_json_is_garbage_bytes(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(b"\x00\xff\xfe garbage {")
    problem = only(problems_of(path))
    assert (problem.file, problem.field) == (str(path), "")
    assert problem.reason.startswith("not valid JSON")


@pytest.mark.parametrize("text", ["[]", "42", '"config"', "null"])
def test_config_json_top_level_not_an_object(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(text)
    problem = only(problems_of(path))
    assert (problem.file, problem.field) == (str(path), "")
    assert "top level must be a JSON object" in problem.reason


def test_unknown_top_level_field(tmp_path: Path) -> None:
    path = write_setup(tmp_path, {}, {"strategy_default": {}})
    problem = only(problems_of(path))
    assert (problem.file, problem.field) == (str(path), "strategy_default")
    assert "Extra inputs are not permitted" in problem.reason


def test_wrong_type(tmp_path: Path) -> None:
    path = write_setup(tmp_path, {}, {"replay": {"history_size": "lots"}})
    problem = only(problems_of(path))
    assert (problem.file, problem.field) == (str(path), "replay.history_size")
    assert problem.reason == "a string is not a number"


def test_wrong_type_not_a_number(tmp_path: Path) -> None:
    path = write_setup(tmp_path, {}, {"replay": {"history_size": [1000]}})
    problem = only(problems_of(path))
    assert (problem.file, problem.field) == (str(path), "replay.history_size")
    assert "valid integer" in problem.reason


def test_several_problems_in_config_json_are_all_reported(tmp_path: Path) -> None:
    path = write_setup(tmp_path, {}, {"mode": "yolo", "replay": {"history_size": 0, "candles": {"BTC/USD": {}}}})
    problems = problems_of(path)
    assert {p.file for p in problems} == {str(path)}
    assert {p.field for p in problems} == {"mode", "replay.history_size", "replay.candles.BTC/USD.path"}


def test_strategy_file_missing(tmp_path: Path) -> None:
    path = write_setup(tmp_path, {"a.json": valid_strategy()}, refs=[{"file": "strategies/a.json"}, {"file": "strategies/gone.json"}])
    problem = only(problems_of(path))
    assert (problem.file, problem.field) == (str(tmp_path / "strategies" / "gone.json"), "")
    assert "file not found" in problem.reason
    assert f"{path} strategies[1].file" in problem.reason


def test_strategy_file_not_json(tmp_path: Path) -> None:
    path = write_setup(tmp_path, {"a.json": '{"id": "a", '})
    problem = only(problems_of(path))
    assert (problem.file, problem.field) == (str(tmp_path / "strategies" / "a.json"), "")
    assert problem.reason.startswith("not valid JSON")
    assert f"{path} strategies[0].file" in problem.reason


def test_strategy_file_top_level_not_an_object(tmp_path: Path) -> None:
    path = write_setup(tmp_path, {"a.json": [valid_strategy()]})
    problem = only(problems_of(path))
    assert (problem.file, problem.field) == (str(tmp_path / "strategies" / "a.json"), "")
    assert "top level must be a JSON object" in problem.reason


def test_missing_required_field_is_reported_in_the_strategy_file(tmp_path: Path) -> None:
    strategy = valid_strategy()
    del strategy["quantity"]
    path = write_setup(tmp_path, {"a.json": strategy}, {"strategy_defaults": {"starting_balance": 500}})
    problem = only(problems_of(path))
    assert (problem.file, problem.field) == (str(tmp_path / "strategies" / "a.json"), "quantity")
    assert "Field required" in problem.reason


def test_unknown_field_in_strategy_file(tmp_path: Path) -> None:
    path = write_setup(tmp_path, {"a.json": valid_strategy(risk={"max_open_position": 2})})
    problem = only(problems_of(path))
    assert (problem.file, problem.field) == (str(tmp_path / "strategies" / "a.json"), "risk.max_open_position")
    assert "Extra inputs are not permitted" in problem.reason


def test_bad_value_set_in_strategy_file_is_reported_there(tmp_path: Path) -> None:
    path = write_setup(tmp_path, {"a.json": valid_strategy(quantity=-1)}, {"strategy_defaults": {"quantity": 1}})
    problem = only(problems_of(path))
    assert (problem.file, problem.field) == (str(tmp_path / "strategies" / "a.json"), "quantity")
    assert "greater than 0" in problem.reason


def test_bad_value_inherited_from_strategy_defaults_is_reported_in_config_json(tmp_path: Path) -> None:
    path = write_setup(tmp_path, {"a.json": valid_strategy()}, {"strategy_defaults": {"starting_balance": -5}})
    problem = only(problems_of(path))
    assert (problem.file, problem.field) == (str(path), "strategy_defaults.starting_balance")
    assert "greater than 0" in problem.reason


def test_bad_nested_value_inherited_from_strategy_defaults_is_reported_in_config_json(tmp_path: Path) -> None:
    path = write_setup(tmp_path, {"a.json": valid_strategy()}, {"strategy_defaults": {"risk": {"max_open_positions": 0}}})
    problem = only(problems_of(path))
    assert (problem.file, problem.field) == (str(path), "strategy_defaults.risk.max_open_positions")
    assert "greater than or equal to 1" in problem.reason


def test_bad_nested_default_is_reported_in_config_json_when_the_file_sets_a_sibling_key(tmp_path: Path) -> None:
    path = write_setup(
        tmp_path, {"a.json": valid_strategy(fees={"maker_bps": 2})}, {"strategy_defaults": {"fees": {"taker_bps": -1}}}
    )
    problem = only(problems_of(path))
    assert (problem.file, problem.field) == (str(path), "strategy_defaults.fees.taker_bps")


def test_bad_default_is_reported_once_not_once_per_strategy(tmp_path: Path) -> None:
    path = write_setup(
        tmp_path,
        {"a.json": valid_strategy(id="a"), "b.json": valid_strategy(id="b")},
        {"strategy_defaults": {"starting_balance": -5}},
    )
    problems = problems_of(path)
    assert [(p.file, p.field) for p in problems] == [(str(path), "strategy_defaults.starting_balance")]


def test_unknown_analyzer_type_names_the_analyzer_index(tmp_path: Path) -> None:
    analyzers = [{"type": "ema_cross"}, {"type": "macd", "params": {"fast": 12}}]
    path = write_setup(tmp_path, {"a.json": valid_strategy(analyzers=analyzers)})
    problem = only(problems_of(path))
    assert (problem.file, problem.field) == (str(tmp_path / "strategies" / "a.json"), "analyzers[1]")
    assert "unknown analyzer type 'macd'" in problem.reason
    assert "ema_cross" in problem.reason  # the known types are listed


@pytest.mark.parametrize(
    ("params", "phrase"),
    [
        ({"fast": 9, "slow": 3}, "fast (9) must be smaller than slow (3)"),
        ({"fast": 5, "slow": 5}, "fast (5) must be smaller than slow (5)"),
        ({"fast": 3, "slow": 6, "signal": 9}, "params.signal: Extra inputs are not permitted"),
        ({"fast": "quick"}, "params.fast: a string is not a number"),
        ({"fast": 2.5}, "params.fast: Input should be a valid integer"),
    ],
)
def test_bad_analyzer_params_name_the_analyzer_index(tmp_path: Path, params: dict[str, Any], phrase: str) -> None:
    analyzers = [{"type": "rsi"}, {"type": "ema_cross", "params": params}]
    path = write_setup(tmp_path, {"a.json": valid_strategy(analyzers=analyzers)})
    problem = only(problems_of(path))
    assert (problem.file, problem.field) == (str(tmp_path / "strategies" / "a.json"), "analyzers[1]")
    assert "analyzer 'ema_cross'" in problem.reason
    assert phrase in problem.reason


def test_analyzer_param_reason_has_no_pydantic_prefix(tmp_path: Path) -> None:
    analyzers = [{"type": "rsi"}, {"type": "ema_cross", "params": {"fast": 9, "slow": 3}}]
    path = write_setup(tmp_path, {"a.json": valid_strategy(analyzers=analyzers)})
    problem = only(problems_of(path))
    assert problem.field == "analyzers[1]"
    assert "Value error" not in problem.reason


def test_unknown_filter_type_and_bad_filter_params(tmp_path: Path) -> None:
    filters = [{"type": "mtf_trend", "params": {"timeframe": "9m"}}, {"type": "max_volume"}, {"type": "min_volume"}]
    path = write_setup(tmp_path, {"a.json": valid_strategy(filters=filters)})
    problems = {p.field: p for p in problems_of(path)}
    assert set(problems) == {"filters[0]", "filters[1]", "filters[2]"}
    assert {p.file for p in problems.values()} == {str(tmp_path / "strategies" / "a.json")}
    assert "unknown timeframe '9m'" in problems["filters[0]"].reason
    assert "unknown filter type 'max_volume'" in problems["filters[1]"].reason
    assert "params.min_volume: Field required" in problems["filters[2]"].reason


def test_unknown_timeframe(tmp_path: Path) -> None:
    path = write_setup(tmp_path, {"a.json": valid_strategy(timeframe="7m")})
    problem = only(problems_of(path))
    assert (problem.file, problem.field) == (str(tmp_path / "strategies" / "a.json"), "timeframe")
    assert "unknown timeframe '7m'" in problem.reason
    assert "15m" in problem.reason  # the known timeframes are listed


def test_unknown_candle_source_timeframe_in_config_json(tmp_path: Path) -> None:
    path = write_setup(tmp_path, {}, {"replay": {"candles": {"BTC/USD": {"path": "x.csv", "timeframe": "1w"}}}})
    problem = only(problems_of(path))
    assert (problem.file, problem.field) == (str(path), "replay.candles.BTC/USD.timeframe")
    assert "unknown timeframe '1w'" in problem.reason


@pytest.mark.parametrize(
    ("ladder", "phrase"),
    [
        ([{"pct": 2, "close_pct": 50}, {"pct": 1, "close_pct": 50}], "strictly ascending pct"),
        ([{"pct": 1, "close_pct": 30}, {"pct": 1, "close_pct": 30}], "strictly ascending pct"),
        ([{"pct": 1, "close_pct": 60}, {"pct": 2, "close_pct": 50}], "add up to more than 100"),
    ],
)
def test_bad_take_profit_ladder(tmp_path: Path, ladder: list[dict[str, float]], phrase: str) -> None:
    path = write_setup(tmp_path, {"a.json": valid_strategy(exits={"take_profit": ladder})})
    problem = only(problems_of(path))
    assert (problem.file, problem.field) == (str(tmp_path / "strategies" / "a.json"), "exits.take_profit")
    assert phrase in problem.reason


def test_take_profit_ladder_of_exactly_100_percent_is_valid(tmp_path: Path) -> None:
    ladder = [{"pct": 1, "close_pct": 33.3}, {"pct": 2, "close_pct": 33.3}, {"pct": 3, "close_pct": 33.4}]
    path = write_setup(tmp_path, {"a.json": valid_strategy(exits={"take_profit": ladder})})
    assert len(load_config(path).strategies[0].exits.take_profit) == 3


def test_bad_take_profit_step_names_the_step(tmp_path: Path) -> None:
    path = write_setup(tmp_path, {"a.json": valid_strategy(exits={"take_profit": [{"pct": 1, "close_pct": 150}]})})
    problem = only(problems_of(path))
    assert problem.field == "exits.take_profit[0].close_pct"
    assert "less than or equal to 100" in problem.reason


def test_bad_strategy_id(tmp_path: Path) -> None:
    path = write_setup(tmp_path, {"a.json": valid_strategy(id="no spaces!")})
    problem = only(problems_of(path))
    assert (problem.file, problem.field) == (str(tmp_path / "strategies" / "a.json"), "id")
    assert "id must be 1-64 characters" in problem.reason


def test_duplicate_strategy_ids_across_two_files(tmp_path: Path) -> None:
    path = write_setup(tmp_path, {"a.json": valid_strategy(id="same"), "b.json": valid_strategy(id="same")})
    problem = only(problems_of(path))
    assert (problem.file, problem.field) == (str(tmp_path / "strategies" / "b.json"), "id")
    assert "duplicate strategy id 'same'" in problem.reason
    assert str(tmp_path / "strategies" / "a.json") in problem.reason


def test_problems_in_several_files_are_all_reported_at_once(tmp_path: Path) -> None:
    strategies: dict[str, Any] = {
        "a.json": valid_strategy(id="a"),
        "b.json": valid_strategy(id="b", quantity=0),
        "c.json": valid_strategy(id="c", timeframe="2m", analyzers=[{"type": "rsi"}, {"type": "nope"}]),
        "d.json": "not json",
        "e.json": valid_strategy(id="a"),
    }
    refs = [{"file": f"strategies/{name}"} for name in strategies] + [{"file": "strategies/f.json"}]
    path = write_setup(tmp_path, strategies, refs=refs)
    got = [(Path(p.file).name, p.field) for p in problems_of(path)]
    assert got == [
        ("b.json", "quantity"),
        ("c.json", "timeframe"),
        ("c.json", "analyzers[1]"),
        ("d.json", ""),
        ("e.json", "id"),
        ("f.json", ""),
    ]


def test_invalid_sole_analyzer_is_reported_once(tmp_path: Path) -> None:
    path = write_setup(tmp_path, {"a.json": valid_strategy(analyzers=[{"type": "nope"}])})
    assert [p.field for p in problems_of(path)] == ["analyzers[0]"]


def test_empty_analyzer_list(tmp_path: Path) -> None:
    path = write_setup(tmp_path, {"a.json": valid_strategy(analyzers=[])})
    problem = only(problems_of(path))
    assert (problem.file, problem.field) == (str(tmp_path / "strategies" / "a.json"), "analyzers")
    assert "at least one analyzer" in problem.reason


def test_config_error_message_lists_every_problem(tmp_path: Path) -> None:
    path = write_setup(tmp_path, {"a.json": valid_strategy(id="a", quantity=0), "b.json": valid_strategy(id="b", timeframe="2m")})
    with pytest.raises(ConfigError) as info:
        load_config(path)
    lines = str(info.value).splitlines()
    assert lines == [str(p) for p in info.value.problems]
    assert lines[0].startswith(f"{tmp_path / 'strategies' / 'a.json'}: quantity: ")
    assert lines[1].startswith(f"{tmp_path / 'strategies' / 'b.json'}: timeframe: ")


def test_problem_without_field_names_the_whole_file(tmp_path: Path) -> None:
    problem = ConfigProblem("config.json", "", "file not found")
    assert str(problem) == "config.json: <file>: file not found"
    assert repr(problem) == "ConfigProblem('config.json', '', 'file not found')"


def test_mode_live_needs_live_candles_and_the_names_of_the_key_variables(tmp_path: Path) -> None:
    path = write_setup(tmp_path, {}, {"mode": "live", "exchange": {"id": "binance"}})
    problems = problems_of(path)
    assert {(p.file, p.field) for p in problems} == {
        (str(path), "feed.source"), (str(path), "exchange.api_key_env"), (str(path), "exchange.secret_env")
    }
    assert any("never decided on recorded candles" in p.reason for p in problems)


def test_mode_live_without_an_exchange_section_names_it(tmp_path: Path) -> None:
    path = write_setup(tmp_path, {}, {"mode": "live", "feed": {"source": "ccxt"}})
    assert ("exchange", True) in {(p.field, "required" in p.reason) for p in problems_of(path)}
