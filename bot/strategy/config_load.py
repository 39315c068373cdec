"""Load a config with its strategies: config.json and each strategy file, checked against the strategy code they name."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.config.loader import (
    Stream,
    across_strategies_problems,
    base_config,
    collect_strategies,
    deep_merge,
    mixed_currency_problems,
    strategies_checkable,
    strategy_folders,
    strategy_path_problems,
    validated_strategy,
    validation_problems,
)
from bot.config.models import BotConfig, StrategyConfig
from bot.errors import ConfigError, ConfigProblem
from bot.strategy.catalog import StrategyCatalog
from bot.strategy.config_check import PARAMS_CHECKS, extra_streams, strategy_params_problems


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """The validated base config, every strategy's merged config, and where each came from."""

    path: Path
    bot: BotConfig
    strategies: tuple[StrategyConfig, ...]
    strategy_files: dict[str, Path]
    catalog: StrategyCatalog
    # Strategies whose code raised while being built to check them: they fail alone when loaded
    # (the others run); `bot validate` reports them.
    unbuildable: tuple[ConfigProblem, ...] = ()

    @property
    def base_dir(self) -> Path:
        """The folder relative paths in config.json are resolved against."""
        return self.path.parent

    def enabled_strategies(self) -> tuple[StrategyConfig, ...]:
        """The strategies to run: enabled both in config.json's list and in their own file."""
        return tuple(s for s in self.strategies if s.enabled)


class IncompleteConfigError(ConfigError):
    """A ConfigError carrying what did load (`partial`: the strategies that loaded, config.json's
    failing fields at their defaults), so the candle files can still be checked in the same run;
    None when replay.candles itself failed."""

    def __init__(self, problems: list[ConfigProblem], partial: LoadedConfig | None) -> None:
        super().__init__(problems)
        self.partial = partial


def load_config(path: str | Path, catalog: StrategyCatalog | None = None) -> LoadedConfig:
    """Read, merge and validate config.json and its strategy files; raise ConfigError listing every problem.

    Strategy modules are discovered (imported) from the config's folders, unless `catalog` is
    given: the daemon checks a file a control client names against the modules it found at
    start, and never imports code because of a client (`strategy_paths` are then not consulted).
    """
    config_path = Path(path)
    label = str(path)
    bot, failed, problems = base_config(config_path, label)
    path_problems = strategy_path_problems(config_path, bot, label) if catalog is None else []
    problems += path_problems
    check_strategies = strategies_checkable(failed, path_problems)
    if catalog is None:
        catalog = StrategyCatalog.discover(strategy_folders(config_path, bot)) if check_strategies else StrategyCatalog()
    known = catalog
    streams: dict[Path, list[Stream]] = {}
    unbuildable: list[ConfigProblem] = []

    def load(strategy_path: Path, enabled: bool) -> StrategyConfig:
        spec, streams[strategy_path], unbuilt = _load_strategy(strategy_path, bot, label, enabled, known)
        if unbuilt is not None:
            unbuildable.append(unbuilt)
        return spec

    strategies, files, found = collect_strategies(config_path, bot, label, load) if check_strategies else ([], {}, [])
    problems += found
    problems += across_strategies_problems(bot, label, failed, strategies, files, streams)
    loaded = LoadedConfig(config_path, bot, tuple(strategies), files, catalog, tuple(unbuildable))
    if problems:
        raise IncompleteConfigError(problems, None if "replay" in failed else loaded)
    return loaded


def load_strategy(
    path: Path, bot: BotConfig, config_label: str, enabled: bool = True, catalog: StrategyCatalog | None = None
) -> StrategyConfig:
    """Read one strategy file, merge it over config.json's strategy_defaults and check its params
    against its strategy's schema; ConfigError lists every problem with file and field."""
    return _load_strategy(path, bot, config_label, enabled, catalog if catalog is not None else StrategyCatalog())[0]


def _load_strategy(
    path: Path, bot: BotConfig, config_label: str, enabled: bool, catalog: StrategyCatalog
) -> tuple[StrategyConfig, list[Stream], ConfigProblem | None]:
    """The strategy file's config, the streams its strategy reads besides its trading stream, and
    the problem of a strategy whose code raised while being built."""
    file_label = str(path)
    spec, (module, class_name, params), problems = validated_strategy(path, bot, config_label, enabled, PARAMS_CHECKS)
    problems += strategy_params_problems(module, class_name, params, catalog, file_label)
    if problems or spec is None:
        raise ConfigError(problems)
    streams, unbuilt = extra_streams(spec, catalog, file_label)
    mixed = mixed_currency_problems(spec, file_label, streams)
    if mixed:
        raise ConfigError(mixed)
    return spec, streams, unbuilt


def changed_strategy(spec: StrategyConfig, changes: dict[str, Any], catalog: StrategyCatalog, label: str) -> StrategyConfig:
    """`spec` with `changes` merged in, validated as a strategy file is (its module's params included).

    The changes are merged over the fields `spec` was given, not over a dump of every field: a
    full dump also holds the defaults of the declarative strategy's own fields
    (entry_threshold, exit_threshold, filters), which a strategy module's spec must not name.
    ConfigError lists every problem as `label: field.path: reason`.
    """
    merged = deep_merge(spec.model_dump(mode="json", exclude_unset=True), changes)
    try:
        changed = StrategyConfig.model_validate(merged, context=PARAMS_CHECKS)
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, label)) from None
    problems = strategy_params_problems(changed.module, changed.class_name, changed.params, catalog, label)
    if problems:
        raise ConfigError(problems)
    return changed
