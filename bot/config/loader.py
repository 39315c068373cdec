"""Read config.json and strategy files, merge and validate them, and report every problem with file and field.

The checks that need strategy code (its Params, analyzer and filter params, the streams it reads)
are the strategy layer's (bot.strategy.config_load): it calls these functions in its order.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from bot.config.currency import RISK_LIMITS, collision_problems, mixed_currency_problem, risk_problems
from bot.config.defaults import MAX_CONFIG_BYTES
from bot.config.models import BotConfig, ParamsChecks, StrategyConfig
from bot.errors import ConfigError, ConfigProblem
from bot.ohlcv import timeframe_ms

# The strategy modules of a config live here, beside config.json (plus its strategy_paths).
STRATEGY_FOLDER = "strategies"
# A (symbol, timeframe) candle stream.
Stream = tuple[str, str]


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


def loc_str(loc: tuple[int | str, ...]) -> str:
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


def validation_errors(exc: ValidationError) -> list[tuple[tuple[int | str, ...], str]]:
    """(location, reason) of each error, without follow-on errors.

    When an item of a list fails, pydantic also reports the list as too short (it counts only
    the items that validated); that second error only repeats the first, so it is dropped.
    """
    errors = [(tuple(err["loc"]), err["msg"].removeprefix("Value error, ")) for err in exc.errors()]
    failing_items = {loc[:-1] for loc, _ in errors if loc and isinstance(loc[-1], int)} | {
        loc[:i] for loc, _ in errors for i in range(1, len(loc)) if isinstance(loc[i], int)
    }
    return [(loc, msg) for loc, msg in errors if not ("after validation" in msg and loc in failing_items)]


def validation_problems(exc: ValidationError, label: str) -> list[ConfigProblem]:
    return [ConfigProblem(label, loc_str(loc), reason) for loc, reason in validation_errors(exc)]


def strategy_file_problems(
    exc: ValidationError, file_label: str, file_data: dict[str, Any], config_label: str, defaults: dict[str, Any]
) -> list[ConfigProblem]:
    # A bad value is reported in the file that supplied it: the strategy file if it sets the
    # field, otherwise config.json's strategy_defaults; a missing field belongs to the strategy file.
    problems = []
    for loc, reason in validation_errors(exc):
        from_defaults = _has_path(defaults, loc) if _has_path(defaults, loc) or _has_path(file_data, loc) else _has_path(defaults, loc[:1])
        if from_defaults and not _has_path(file_data, loc):
            problems.append(ConfigProblem(config_label, "strategy_defaults." + loc_str(loc), reason))
        else:
            problems.append(ConfigProblem(file_label, loc_str(loc), reason))
    return problems


def read_object(path: Path, label: str) -> dict[str, Any]:
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


# What a strategy file names of its strategy: module, class and params, for the strategy layer to check.
StrategyNames = tuple[Any, Any, Any]


def validated_strategy(
    path: Path, bot: BotConfig, config_label: str, enabled: bool, context: ParamsChecks | None
) -> tuple[StrategyConfig | None, StrategyNames, list[ConfigProblem]]:
    """Read one strategy file, merge it over config.json's strategy_defaults and validate it (its
    analyzers' and filters' params by `context`).

    Returns the config (None when it has problems), the module, class and params it names and
    its problems. ConfigError when there is nothing more to check: the file cannot be read, or
    the fields naming the strategy failed.
    """
    file_label = str(path)
    file_data = read_object(path, file_label)
    merged = deep_merge(bot.strategy_defaults, file_data)
    if not enabled:
        merged["enabled"] = False
    try:
        spec = StrategyConfig.model_validate(merged, context=context)
    except ValidationError as exc:
        problems = strategy_file_problems(exc, file_label, file_data, config_label, bot.strategy_defaults)
        # The params are still checked when the fields naming the strategy are sound, so one
        # run reports a bad timeframe and a bad params.fast together.
        roots = {p.field.removeprefix("strategy_defaults.").split(".")[0].split("[")[0] for p in problems}
        if roots & {"module", "class", "class_name", "params"}:
            raise ConfigError(problems) from None
        return None, (merged.get("module"), merged.get("class", merged.get("class_name")), merged.get("params", {})), problems
    return spec, (spec.module, spec.class_name, spec.params), []


def base_config(config_path: Path, label: str) -> tuple[BotConfig, set[str], list[ConfigProblem]]:
    """config.json validated: the config, the top-level fields that failed (left at their
    defaults, so the rest can still be checked) and the problems; ConfigError when nothing usable is left."""
    data = read_object(config_path, label)
    try:
        return BotConfig.model_validate(data), set(), []
    except ValidationError as exc:
        problems = validation_problems(exc, label)
        # The rest is still checked with the failing fields at their defaults, so one run
        # reports every problem; the result is never used to run anything.
        fallback = _without_failing_fields(data, exc)
        if fallback is None:
            raise ConfigError(problems) from None
        bot, failed = fallback
        return bot, failed, problems


def strategy_path_problems(config_path: Path, bot: BotConfig, label: str) -> list[ConfigProblem]:
    """Each of strategy_paths that is not a folder."""
    return [
        ConfigProblem(label, f"strategy_paths[{index}]", f"{config_path.parent / extra} is not a folder")
        for index, extra in enumerate(bot.strategy_paths)
        if not (config_path.parent / extra).is_dir()
    ]


def strategies_checkable(failed: set[str], path_problems: list[ConfigProblem]) -> bool:
    """Whether config.json's part of the strategy files is sound enough to check them.

    Strategy files checked without their defaults or their modules' folders would fail for
    the wrong reasons.
    """
    return not path_problems and not failed & _STRATEGY_FIELDS


def collect_strategies(
    config_path: Path, bot: BotConfig, label: str, load: Callable[[Path, bool], StrategyConfig]
) -> tuple[list[StrategyConfig], dict[str, Path], list[ConfigProblem]]:
    """Every strategy file config.json lists, loaded by `load(path, enabled)`: the strategies, the
    file of each id, and the problems (each reported once, a duplicate id refused)."""
    problems: list[ConfigProblem] = []
    strategies: list[StrategyConfig] = []
    files: dict[str, Path] = {}
    seen: dict[str, str] = {}
    for index, ref in enumerate(bot.strategies):
        strategy_path = config_path.parent / ref.file
        try:
            strategy = load(strategy_path, ref.enabled)
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
    return strategies, files, problems


def across_strategies_problems(
    bot: BotConfig, label: str, failed: set[str], strategies: list[StrategyConfig], files: dict[str, Path], extra_streams: dict[Path, list[Stream]]
) -> list[ConfigProblem]:
    """The problems of the strategies together with config.json: the live feed and live trading,
    risk limits per currency, colliding symbols. `extra_streams`: what each strategy file's
    strategy reads besides its trading stream."""
    problems: list[ConfigProblem] = []
    if not failed & {"mode", "feed", "exchange"}:
        problems += live_feed_problems(bot, label, [(s, str(files[s.id]), extra_streams[files[s.id]]) for s in strategies if s.enabled])
        problems += live_trading_problems(bot, label)
    if "risk" not in failed:
        # Every listed strategy, enabled or not: a disabled one can be activated at runtime.
        limits = {name: getattr(bot.risk, name) for name in RISK_LIMITS}
        problems += risk_problems(limits, label, [(s.id, s.symbol, str(files[s.id])) for s in strategies])
    problems += collision_problems([(s.id, s.symbol, str(files[s.id])) for s in strategies])
    return problems


# config.json's fields that hold or shape the strategy files.
_STRATEGY_FIELDS = frozenset({"strategies", "strategy_defaults", "strategy_paths"})


def _without_failing_fields(data: dict[str, Any], exc: ValidationError) -> tuple[BotConfig, set[str]] | None:
    """config.json with every top-level field that failed left at its default, and those fields;
    None when the whole file failed or it still does not validate."""
    locations = [loc for loc, _ in validation_errors(exc)]
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


def live_feed_problems(bot: BotConfig, label: str, strategies: list[tuple[StrategyConfig, str, list[Stream]]]) -> list[ConfigProblem]:
    """With `feed.source` ccxt: the exchange section and its symbols are there, and every strategy
    (file label and the streams it reads besides its trading stream given) trades and reads only
    streamed symbols at timeframes built from the streamed one."""
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
    for spec, file_label, extra in strategies:
        if spec.symbol not in streamed:
            problems.append(ConfigProblem(file_label, "symbol", f"{spec.symbol!r} is not streamed: add it to exchange.feed.symbols in {label}"))
            continue
        needed = [("timeframe", spec.timeframe)] + [
            (f"filters[{i}].params.timeframe", str(f.params["timeframe"])) for i, f in enumerate(spec.filters) if "timeframe" in f.params
        ]
        for symbol, timeframe in extra:
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


def mixed_currency_problems(spec: StrategyConfig, file_label: str, extra_streams: list[Stream]) -> list[ConfigProblem]:
    """Every symbol a strategy reads (its trading symbol and `extra_streams`) must share its symbol's
    quote currency: its balance, PnL and exposure are counted in that one currency, never added across currencies."""
    problems = []
    for symbol in dict.fromkeys(symbol for symbol, _ in extra_streams):
        reason = mixed_currency_problem(spec.symbol, symbol)
        if reason is not None:
            problems.append(ConfigProblem(file_label, loc_str(("params", *_where(spec.params, symbol))), reason))
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
