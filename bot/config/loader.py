"""Load config.json and its strategy files, merge them, and report every problem with file and field."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import orjson
from pydantic import ValidationError

from bot.candles.model import timeframe_ms
from bot.config.currency import RISK_LIMITS, collision_problems, mixed_currency_problem, risk_problems
from bot.config.models import BotConfig, StrategyConfig
from bot.errors import ConfigError, ConfigProblem

if TYPE_CHECKING:
    from bot.strategy.catalog import StrategyCatalog

# The strategy modules of a config live here, beside config.json (plus its strategy_paths).
STRATEGY_FOLDER = "strategies"


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """The validated base config, every strategy's merged config, and where each came from."""

    path: Path
    bot: BotConfig
    strategies: tuple[StrategyConfig, ...]
    strategy_files: dict[str, Path]
    catalog: StrategyCatalog

    @property
    def base_dir(self) -> Path:
        """The folder relative paths in config.json are resolved against."""
        return self.path.parent

    def enabled_strategies(self) -> tuple[StrategyConfig, ...]:
        """The strategies to run: enabled both in config.json's list and in their own file."""
        return tuple(s for s in self.strategies if s.enabled)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merge `override` into a copy of `base`; nested dicts merge, everything else is replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# A configuration file is small; anything bigger is the wrong file (and a FIFO or a device
# would block or never end), so only regular files up to this size are read.
MAX_CONFIG_BYTES = 1_048_576


def _read_json(path: Path, label: str) -> tuple[Any, list[ConfigProblem]]:
    try:
        if path.exists() and not path.is_file():
            return None, [ConfigProblem(label, "", "not a regular file")]
        if path.exists() and path.stat().st_size > MAX_CONFIG_BYTES:
            return None, [ConfigProblem(label, "", f"larger than {MAX_CONFIG_BYTES} bytes: not a configuration file")]
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, [ConfigProblem(label, "", "file not found")]
    except OSError as exc:
        return None, [ConfigProblem(label, "", f"cannot read file: {exc.strerror or exc}")]
    except ValueError as exc:  # a path with a NUL byte, from a control message
        return None, [ConfigProblem(label, "", f"not a usable file name: {exc}")]
    try:
        return orjson.loads(raw), []
    except orjson.JSONDecodeError as exc:
        return None, [ConfigProblem(label, "", f"not valid JSON: {exc}")]


def _loc_str(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _has_path(data: Any, loc: tuple[int | str, ...]) -> bool:
    node = data
    for part in loc:
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                return False
        elif not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _errors(exc: ValidationError) -> list[tuple[tuple[int | str, ...], str]]:
    """(location, reason) of each error, without follow-on errors.

    When an item of a list fails, pydantic also reports the list as too short (it counts only
    the items that validated); that second error only repeats the first, so it is dropped.
    """
    errors = [(tuple(err["loc"]), err["msg"].removeprefix("Value error, ")) for err in exc.errors()]
    failing_items = {loc[:-1] for loc, _ in errors if loc and isinstance(loc[-1], int)} | {
        loc[:i] for loc, _ in errors for i in range(1, len(loc)) if isinstance(loc[i], int)
    }
    return [(loc, msg) for loc, msg in errors if not ("after validation" in msg and loc in failing_items)]


def _problems(exc: ValidationError, label: str) -> list[ConfigProblem]:
    return [ConfigProblem(label, _loc_str(loc), reason) for loc, reason in _errors(exc)]


def strategy_params_problems(module: str | None, class_name: str | None, params: Any, catalog: StrategyCatalog, label: str) -> list[ConfigProblem]:
    """Whether the catalog has the strategy a spec names, and its params fit that strategy's Params; the problems, labelled `label`."""
    from bot.strategy.catalog import CatalogLookupError  # here: strategies import config models

    try:
        entry = catalog.resolve(module, class_name)
    except CatalogLookupError as exc:
        return [ConfigProblem(label, exc.field, exc.reason)]
    try:
        entry.validate_params(params)
    except ValidationError as exc:
        # The strategy's name, unless the line already leads with it (`set` labels its lines with the strategy id).
        named = "" if label == entry.name else f" (strategy {entry.name!r})"
        return [ConfigProblem(label, _loc_str(("params", *loc)), f"{reason}{named}") for loc, reason in _errors(exc)]
    return []


def changed_strategy(spec: StrategyConfig, changes: dict[str, Any], catalog: StrategyCatalog, label: str) -> StrategyConfig:
    """`spec` with `changes` merged in, validated as a strategy file is (its module's params included).

    The changes are merged over the fields `spec` was given, not over a dump of every field: a
    full dump also holds the defaults of the declarative strategy's own fields
    (entry_threshold, exit_threshold, filters), which a strategy module's spec must not name.
    ConfigError lists every problem as `label: field.path: reason`.
    """
    merged = deep_merge(spec.model_dump(mode="json", exclude_unset=True), changes)
    try:
        changed = StrategyConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_problems(exc, label)) from None
    problems = strategy_params_problems(changed.module, changed.class_name, changed.params, catalog, label)
    if problems:
        raise ConfigError(problems)
    return changed


def _strategy_problems(
    exc: ValidationError, file_label: str, file_data: dict[str, Any], config_label: str, defaults: dict[str, Any]
) -> list[ConfigProblem]:
    # A bad value is reported in the file that supplied it: the strategy file if it sets the
    # field, otherwise config.json's strategy_defaults; a missing field belongs to the strategy file.
    problems = []
    for loc, reason in _errors(exc):
        from_defaults = _has_path(defaults, loc) if _has_path(defaults, loc) or _has_path(file_data, loc) else _has_path(defaults, loc[:1])
        if from_defaults and not _has_path(file_data, loc):
            problems.append(ConfigProblem(config_label, "strategy_defaults." + _loc_str(loc), reason))
        else:
            problems.append(ConfigProblem(file_label, _loc_str(loc), reason))
    return problems


def _read_object(path: Path, label: str) -> dict[str, Any]:
    """A JSON file whose top level is an object; ConfigError naming the file otherwise."""
    data, problems = _read_json(path, label)
    if problems:
        raise ConfigError(problems)
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(label, "", "the top level must be a JSON object")])
    return data


def strategy_folders(config_path: Path, bot: BotConfig) -> list[Path]:
    """Where strategy modules are discovered: strategies/ beside config.json, then each of strategy_paths."""
    base = config_path.parent
    folders = [base / STRATEGY_FOLDER] if (base / STRATEGY_FOLDER).is_dir() else []
    return folders + [base / extra for extra in bot.strategy_paths]


def load_strategy(
    path: Path, bot: BotConfig, config_label: str, enabled: bool = True, catalog: StrategyCatalog | None = None
) -> StrategyConfig:
    """Read one strategy file, merge it over config.json's strategy_defaults and check its params
    against its strategy's schema; ConfigError lists every problem with file and field."""
    file_label = str(path)
    file_data = _read_object(path, file_label)
    merged = deep_merge(bot.strategy_defaults, file_data)
    if not enabled:
        merged["enabled"] = False
    problems: list[ConfigProblem] = []
    spec: StrategyConfig | None = None
    try:
        spec = StrategyConfig.model_validate(merged)
        module, class_name, params = spec.module, spec.class_name, spec.params
    except ValidationError as exc:
        problems = _strategy_problems(exc, file_label, file_data, config_label, bot.strategy_defaults)
        # The params are still checked when the fields naming the strategy are sound, so one
        # run reports a bad timeframe and a bad params.fast together.
        roots = {p.field.removeprefix("strategy_defaults.").split(".")[0].split("[")[0] for p in problems}
        if roots & {"module", "class", "class_name", "params"}:
            raise ConfigError(problems) from None
        module, class_name, params = merged.get("module"), merged.get("class", merged.get("class_name")), merged.get("params", {})
    # Imported here: strategies import config models, so the catalog cannot be imported at load time.
    from bot.strategy.catalog import StrategyCatalog

    catalog = catalog if catalog is not None else StrategyCatalog()
    problems += strategy_params_problems(module, class_name, params, catalog, file_label)
    if problems or spec is None:
        raise ConfigError(problems)
    mixed = _mixed_currency_problems(spec, file_label, catalog)
    if mixed:
        raise ConfigError(mixed)
    return spec


def load_config(path: str | Path, catalog: StrategyCatalog | None = None) -> LoadedConfig:
    """Read, merge and validate config.json and its strategy files; raise ConfigError listing every problem.

    Strategy modules are discovered (imported) from the config's folders, unless `catalog` is
    given: the daemon checks a file a control client names against the modules it found at
    start, and never imports code because of a client (`strategy_paths` are then not consulted).
    """
    config_path = Path(path)
    label = str(path)
    data = _read_object(config_path, label)
    problems: list[ConfigProblem] = []
    failed: set[str] = set()
    try:
        bot = BotConfig.model_validate(data)
    except ValidationError as exc:
        problems = _problems(exc, label)
        # The rest is still checked with the failing fields at their defaults, so one run
        # reports every problem; the result is never used to run anything.
        fallback = _without_failing_fields(data, exc)
        if fallback is None:
            raise ConfigError(problems) from None
        bot, failed = fallback

    bad_paths = [
        ConfigProblem(label, f"strategy_paths[{index}]", f"{config_path.parent / extra} is not a folder")
        for index, extra in enumerate(bot.strategy_paths if catalog is None else ())
        if not (config_path.parent / extra).is_dir()
    ]
    problems += bad_paths
    # Strategy files checked without their defaults or their modules' folders would fail for
    # the wrong reasons: they are checked once config.json's part of them is sound.
    check_strategies = not bad_paths and not failed & _STRATEGY_FIELDS
    from bot.strategy.catalog import StrategyCatalog

    if catalog is None:
        catalog = StrategyCatalog.discover(strategy_folders(config_path, bot)) if check_strategies else StrategyCatalog()
    strategies: list[StrategyConfig] = []
    files: dict[str, Path] = {}
    seen: dict[str, str] = {}
    for index, ref in enumerate(bot.strategies if check_strategies else ()):
        strategy_path = config_path.parent / ref.file
        try:
            strategy = load_strategy(strategy_path, bot, label, enabled=ref.enabled, catalog=catalog)
        except ConfigError as exc:
            for problem in exc.problems:
                if problem.reason in ("file not found",) or problem.reason.startswith(("cannot read file", "not valid JSON")):
                    problem = ConfigProblem(problem.file, problem.field, problem.reason + f" (named by {label} strategies[{index}].file)")
                # A bad default fails every strategy that inherits it: report it once.
                if not any((p.file, p.field, p.reason) == (problem.file, problem.field, problem.reason) for p in problems):
                    problems.append(problem)
            continue
        file_label = str(strategy_path)
        if strategy.id in seen:
            problems.append(
                ConfigProblem(file_label, "id", f"duplicate strategy id {strategy.id!r} (also in {seen[strategy.id]})")
            )
            continue
        seen[strategy.id] = file_label
        strategies.append(strategy)
        files[strategy.id] = strategy_path
    if not failed & {"mode", "feed", "exchange"}:
        problems += live_feed_problems(bot, label, [(s, str(files[s.id])) for s in strategies if s.enabled], catalog)
        problems += live_trading_problems(bot, label)
    if "risk" not in failed:
        # Every listed strategy, enabled or not: a disabled one can be activated at runtime.
        limits = {name: getattr(bot.risk, name) for name in RISK_LIMITS}
        problems += risk_problems(limits, label, [(s.id, s.symbol, str(files[s.id])) for s in strategies])
    problems += collision_problems([(s.id, s.symbol, str(files[s.id])) for s in strategies])
    loaded = LoadedConfig(config_path, bot, tuple(strategies), files, catalog)
    if problems:
        raise IncompleteConfigError(problems, None if "replay" in failed else loaded)
    return loaded


class IncompleteConfigError(ConfigError):
    """A ConfigError carrying what did load (`partial`: the strategies that loaded, config.json's
    failing fields at their defaults), so the candle files can still be checked in the same run;
    None when replay.candles itself failed."""

    def __init__(self, problems: list[ConfigProblem], partial: LoadedConfig | None) -> None:
        super().__init__(problems)
        self.partial = partial


# config.json's fields that hold or shape the strategy files.
_STRATEGY_FIELDS = frozenset({"strategies", "strategy_defaults", "strategy_paths"})


def _without_failing_fields(data: dict[str, Any], exc: ValidationError) -> tuple[BotConfig, set[str]] | None:
    """config.json with every top-level field that failed left at its default, and those fields;
    None when the whole file failed or it still does not validate."""
    locations = [loc for loc, _ in _errors(exc)]
    if not all(locations):
        return None
    failed = {str(loc[0]) for loc in locations}
    try:
        return BotConfig.model_validate({key: value for key, value in data.items() if key not in failed}), failed
    except ValidationError:
        return None


def exchange_problems(bot: BotConfig, label: str) -> list[ConfigProblem]:
    """An exchange section names an exchange ccxt has, and one that serves candles (fetchOHLCV),
    which the live feed and `bot record` need.

    Not part of `load_config`: it imports ccxt, which the daemon must never do because a control
    client sent a config to validate; the command line calls it (`bot validate`, `replay`, `run`).
    """
    if bot.exchange is None:
        return []
    # Imported only here: ccxt takes ~0.4 s to import, which a replay of recorded files must not pay.
    import ccxt

    exchange_id = bot.exchange.id
    if exchange_id not in ccxt.exchanges:
        return [ConfigProblem(label, "exchange.id", f"ccxt has no exchange {exchange_id!r}")]
    if not getattr(ccxt, exchange_id)().has.get("fetchOHLCV"):
        return [ConfigProblem(label, "exchange.id", f"{exchange_id} serves no candles in ccxt (no fetchOHLCV): the live feed and bot record need them")]
    return []


def live_trading_problems(bot: BotConfig, label: str) -> list[ConfigProblem]:
    """Mode live sends real orders: it needs live candles and the names of the variables holding the keys."""
    if bot.mode != "live":
        return []
    problems = []
    if bot.feed.source != "ccxt":
        problems.append(ConfigProblem(label, "feed.source", "must be 'ccxt' in mode live: real orders are never decided on recorded candles"))
    if bot.exchange is None:
        return problems + [ConfigProblem(label, "exchange", "required in mode live: the exchange account to trade (id, api_key_env, secret_env)")]
    for field in ("api_key_env", "secret_env"):
        if getattr(bot.exchange, field) is None:
            problems.append(ConfigProblem(label, f"exchange.{field}", "required in mode live: the name of the environment variable holding it"))
    return problems


def live_feed_problems(
    bot: BotConfig, label: str, strategies: list[tuple[StrategyConfig, str]], catalog: StrategyCatalog
) -> list[ConfigProblem]:
    """With `feed.source` ccxt: the exchange section and its symbols are there, and every strategy
    (file label given) trades and reads only streamed symbols at timeframes built from the streamed one."""
    if bot.feed.source != "ccxt":
        return []
    if bot.exchange is None:
        return [ConfigProblem(label, "exchange", "required when feed.source is 'ccxt': the exchange to stream candles from (id, feed.symbols)")]
    feed = bot.exchange.feed
    if not feed.symbols:
        return [ConfigProblem(label, "exchange.feed.symbols", "required when feed.source is 'ccxt': the symbols to stream, such as [\"ETH/BTC\"]")]
    streamed = set(feed.symbols)
    base_ms = timeframe_ms(feed.timeframe)
    problems: list[ConfigProblem] = []
    for spec, file_label in strategies:
        if spec.symbol not in streamed:
            problems.append(ConfigProblem(file_label, "symbol", f"{spec.symbol!r} is not streamed: add it to exchange.feed.symbols in {label}"))
            continue
        needed = [("timeframe", spec.timeframe)] + [
            (f"filters[{i}].params.timeframe", str(f.params["timeframe"])) for i, f in enumerate(spec.filters) if "timeframe" in f.params
        ]
        for symbol, timeframe in _extra_streams(spec, catalog):
            if symbol not in streamed:
                problems.append(ConfigProblem(file_label, "params", f"the strategy also reads {symbol!r}, which is not streamed: add it to exchange.feed.symbols in {label}"))
            else:
                needed.append(("params", timeframe))
        fields: dict[str, str] = {}
        for field, timeframe in needed:
            fields.setdefault(timeframe, field)
        for timeframe, field in fields.items():
            target = timeframe_ms(timeframe)
            if target < base_ms or target % base_ms:
                problems.append(
                    ConfigProblem(file_label, field, f"{timeframe} cannot be built from the streamed {feed.timeframe} candles (exchange.feed.timeframe in {label})")
                )
    return problems


def _extra_streams(spec: StrategyConfig, catalog: StrategyCatalog) -> list[tuple[str, str]]:
    """The (symbol, timeframe) streams a strategy reads besides its trading stream, by building it on a
    throwaway context; none when it cannot be built here (loading it reports why)."""
    from bot.indicators.registry import IndicatorRegistry
    from bot.strategy.base import StrategyContext

    asked: dict[tuple[str, str], IndicatorRegistry] = {}

    def registry_for(symbol: str, timeframe: str) -> IndicatorRegistry:
        return asked.setdefault((symbol, timeframe), IndicatorRegistry())

    def nothing(*_: Any) -> None:
        return None

    context = StrategyContext(spec, registry_for, nothing, cast(Any, nothing), cast(Any, None), lambda: 0)
    try:
        strategy = catalog.build(spec.module, spec.class_name, spec.params, context)
        streams = [(str(s[0]), str(s[1])) for s in strategy.subscriptions()]
    except Exception:  # the strategy's own code: its errors are reported when it is loaded
        return []
    return [s for s in dict.fromkeys([*streams, *asked]) if s != (spec.symbol, spec.timeframe)]


def _mixed_currency_problems(spec: StrategyConfig, file_label: str, catalog: StrategyCatalog) -> list[ConfigProblem]:
    """Every symbol a strategy reads must share its symbol's quote currency: its balance, PnL and
    exposure are counted in that one currency, never added across currencies."""
    problems = []
    for symbol in dict.fromkeys(symbol for symbol, _ in _extra_streams(spec, catalog)):
        reason = mixed_currency_problem(spec.symbol, symbol)
        if reason is not None:
            problems.append(ConfigProblem(file_label, _loc_str(("params", *_where(spec.params, symbol))), reason))
    return problems


def _where(params: Any, value: str) -> tuple[int | str, ...]:
    """Where `value` is written inside a strategy's params (empty when it is not)."""
    items = params.items() if isinstance(params, dict) else enumerate(params) if isinstance(params, list | tuple) else ()
    for key, item in items:
        if item == value:
            return (key,)
        inner = _where(item, value)
        if inner:
            return (key, *inner)
    return ()
