"""Loading valid configurations: the repo's config, merge order, enabling, frozen and strict models."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from bot.config.loader import deep_merge
from bot.config.models import (
    AnalyzerConfig,
    BotConfig,
    ExitConfig,
    FeesConfig,
    ReplayConfig,
    StrategyConfig,
    StrategyRiskConfig,
)
from bot.strategy.config_load import load_config
from tests.config.builders import valid_strategy, write_setup
from tests.support import REPO


def test_repo_config_loads_every_listed_strategy() -> None:
    raw = json.loads((REPO / "config.json").read_text())
    loaded = load_config(REPO / "config.json")
    assert loaded.path == REPO / "config.json"
    assert loaded.base_dir == REPO
    assert len(loaded.strategies) == len(raw["strategies"])
    ids = [s.id for s in loaded.strategies]
    assert len(set(ids)) == len(ids)
    for ref, spec in zip(raw["strategies"], loaded.strategies):
        assert loaded.strategy_files[spec.id] == (REPO / ref["file"]).resolve()
        assert json.loads(loaded.strategy_files[spec.id].read_text())["id"] == spec.id
    assert loaded.enabled_strategies()


def test_field_set_nowhere_gets_the_model_default(tmp_path: Path) -> None:
    spec = load_config(write_setup(tmp_path, {"a.json": valid_strategy()})).strategies[0]
    assert spec.enabled is True
    assert spec.description == ""
    assert spec.starting_balance == 10_000.0
    assert spec.entry_threshold == 1.0
    assert spec.exit_threshold == 1.0
    assert spec.filters == ()
    assert spec.exits == ExitConfig()
    assert spec.fees == FeesConfig()
    assert spec.fill.model == "next_open"
    assert spec.risk == StrategyRiskConfig()
    assert spec.analyzers[0].weight == 1.0


def test_merge_order_defaults_then_config_then_strategy_file(tmp_path: Path) -> None:
    defaults: dict[str, Any] = {
        "starting_balance": 5_000,
        "entry_threshold": 0.5,
        "timeframe": "5m",
        "risk": {"max_open_positions": 3, "max_daily_loss": 100},
        "fees": {"maker_bps": 1, "taker_bps": 4},
    }
    strategy = valid_strategy(starting_balance=2_000, risk={"max_daily_loss": 50}, fees={"taker_bps": 7})
    del strategy["timeframe"]
    spec = load_config(write_setup(tmp_path, {"a.json": strategy}, {"strategy_defaults": defaults})).strategies[0]
    # Set in both: the strategy file wins.
    assert spec.starting_balance == 2_000
    # Set only in config.json's strategy_defaults.
    assert spec.entry_threshold == 0.5
    assert spec.timeframe == "5m"
    # Nested dicts merge key by key.
    assert spec.risk.max_open_positions == 3
    assert spec.risk.max_daily_loss == 50
    assert spec.fees == FeesConfig(maker_bps=1, taker_bps=7)
    # Set nowhere: the model default.
    assert spec.risk.max_position_size is None
    assert spec.exit_threshold == 1.0
    assert spec.fill.slippage_bps == 0.0


def test_lists_are_replaced_not_merged(tmp_path: Path) -> None:
    defaults = {"analyzers": [{"type": "rsi"}, {"type": "bollinger"}]}
    path = write_setup(tmp_path, {"a.json": valid_strategy()}, {"strategy_defaults": defaults})
    spec = load_config(path).strategies[0]
    assert [a.type for a in spec.analyzers] == ["ema_cross"]


def test_deep_merge_merges_nested_dicts_without_mutating_inputs() -> None:
    base = {"a": 1, "n": {"x": 1, "y": 2}, "l": [1, 2]}
    override = {"n": {"y": 3, "z": 4}, "l": [9], "b": 2}
    assert deep_merge(base, override) == {"a": 1, "n": {"x": 1, "y": 3, "z": 4}, "l": [9], "b": 2}
    assert base == {"a": 1, "n": {"x": 1, "y": 2}, "l": [1, 2]}
    assert override == {"n": {"y": 3, "z": 4}, "l": [9], "b": 2}


def test_dict_replaces_a_scalar_and_a_scalar_replaces_a_dict() -> None:
    assert deep_merge({"a": 1, "b": {"x": 1}}, {"a": {"x": 2}, "b": None}) == {"a": {"x": 2}, "b": None}


def test_disabled_in_config_list_disables_the_strategy(tmp_path: Path) -> None:
    path = write_setup(
        tmp_path,
        {"a.json": valid_strategy(id="a"), "b.json": valid_strategy(id="b")},
        refs=[{"file": "strategies/a.json", "enabled": False}, {"file": "strategies/b.json"}],
    )
    loaded = load_config(path)
    assert [s.id for s in loaded.strategies] == ["a", "b"]
    assert loaded.strategies[0].enabled is False
    assert [s.id for s in loaded.enabled_strategies()] == ["b"]


def test_disabled_in_strategy_file_stays_disabled_when_listed_enabled(tmp_path: Path) -> None:
    path = write_setup(tmp_path, {"a.json": valid_strategy(enabled=False)}, refs=[{"file": "strategies/a.json", "enabled": True}])
    assert load_config(path).enabled_strategies() == ()


def test_strategy_files_are_resolved_relative_to_config_json(tmp_path: Path) -> None:
    path = write_setup(tmp_path / "nested", {"a.json": valid_strategy(id="a")})
    loaded = load_config(path)
    assert loaded.strategy_files == {"a": (tmp_path / "nested" / "strategies" / "a.json").resolve()}


def test_loaded_models_are_frozen(tmp_path: Path) -> None:
    loaded = load_config(write_setup(tmp_path, {"a.json": valid_strategy()}))
    spec = loaded.strategies[0]
    with pytest.raises(ValidationError, match="frozen"):
        spec.quantity = 1.0
    with pytest.raises(ValidationError, match="frozen"):
        spec.risk.max_open_positions = 5
    with pytest.raises(ValidationError, match="frozen"):
        spec.analyzers[0].weight = 2.0
    with pytest.raises(ValidationError, match="frozen"):
        loaded.bot.replay.history_size = 5
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.bot = BotConfig()  # type: ignore[misc]


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (BotConfig, {"modes": "replay"}),
        (ReplayConfig, {"history": 10}),
        (StrategyConfig, valid_strategy(qty=1)),
        (StrategyConfig, valid_strategy(exits={"stop_loss": 1.0})),
        (AnalyzerConfig, {"type": "rsi", "wieght": 1.0}),
        (FeesConfig, {"maker": 1}),
    ],
)
def test_models_reject_unknown_fields(model: type[Any], data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        model.model_validate(data)


def test_bot_config_defaults() -> None:
    bot = BotConfig()
    assert bot.mode == "replay"
    assert bot.replay.history_size == 1_000
    assert bot.replay.log_candles is True
    assert bot.replay.candles == {}
    assert bot.strategies == ()
    assert bot.risk.max_daily_loss is None
