"""The checks of a strategy config that need its code: the module's Params, analyzer and filter params, and the streams it reads."""
from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from bot.bus import EventBus, StrategyPublisher
from bot.clock import ReplayClock
from bot.config.loader import Stream, loc_str, validation_errors
from bot.config.models import GlobalRiskConfig, ParamsChecks, StrategyConfig
from bot.errors import ConfigError, ConfigProblem
from bot.indicators.registry import IndicatorRegistry
from bot.strategy.analyzer_params import validate_analyzer_params, validate_filter_params
from bot.strategy.base import StrategyContext
from bot.strategy.catalog import CatalogLookupError, StrategyCatalog
from bot.trading.paper import PaperAccount
from bot.trading.portfolio import Portfolio
from bot.trading.positions import PositionManager
from bot.trading.risk import RiskManager

# The validation context under which a strategy file's analyzers and filters are checked against their schemas.
PARAMS_CHECKS = ParamsChecks(validate_analyzer_params, validate_filter_params)


def strategy_params_problems(module: str | None, class_name: str | None, params: Any, catalog: StrategyCatalog, label: str) -> list[ConfigProblem]:
    """Whether the catalog has the strategy a spec names, and its params fit that strategy's Params; the problems, labelled `label`."""
    try:
        entry = catalog.resolve(module, class_name)
    except CatalogLookupError as exc:
        return [ConfigProblem(label, exc.field, exc.reason)]
    try:
        entry.validate_params(params)
    except ValidationError as exc:
        # The strategy's name, unless the line already leads with it (`set` labels its lines with the strategy id).
        named = "" if label == entry.name else f" (strategy {entry.name!r})"
        return [ConfigProblem(label, loc_str(("params", *loc)), f"{reason}{named}") for loc, reason in validation_errors(exc)]
    return []


def extra_streams(spec: StrategyConfig, catalog: StrategyCatalog, file_label: str) -> list[Stream]:
    """The (symbol, timeframe) streams a strategy reads besides its trading stream, found by building
    it as an orchestrator would, on a context of its own that nothing else sees.

    `spec` must name a strategy of the catalog with valid params (strategy_params_problems).
    ConfigError naming `file_label` when the strategy's own code raises while it is built.
    """
    asked: dict[Stream, IndicatorRegistry] = {}

    def registry_for(symbol: str, timeframe: str) -> IndicatorRegistry:
        return asked.setdefault((symbol, timeframe), IndicatorRegistry())

    def nothing(*_: Any) -> None:
        return None

    risk = RiskManager(GlobalRiskConfig(), nothing).bind(spec.id, spec.risk, spec.symbol)
    # A bus of its own: what the strategy announces while being built reaches no one.
    publish = StrategyPublisher(EventBus(ReplayClock()), spec.id)
    positions = PositionManager(
        spec.id, spec.exits, lambda _sink: PaperAccount(spec.id, spec.fees, spec.fill), Portfolio(spec.starting_balance), risk, publish
    )
    context = StrategyContext(spec, registry_for, nothing, publish, positions, lambda: 0)
    try:
        strategy = catalog.build(spec.module, spec.class_name, spec.params, context)
        streams = [(str(s[0]), str(s[1])) for s in strategy.subscriptions()]
    except Exception as exc:  # the strategy's own code: it would fail the same way when loaded
        raise ConfigError([ConfigProblem(file_label, "", f"the strategy raised while being built: {type(exc).__name__}: {exc}")]) from exc
    return [s for s in dict.fromkeys([*streams, *asked]) if s != (spec.symbol, spec.timeframe)]
