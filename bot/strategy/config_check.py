"""The checks of a strategy config that need its code: the module's Params, analyzer and filter params, and the streams it reads."""
from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from bot.bus import EventBus, StrategyPublisher
from bot.clock import ReplayClock
from bot.config.loader import Stream, loc_str, validation_errors
from bot.config.models import GlobalRiskConfig, ParamsChecks, StrategyConfig
from bot.errors import ConfigProblem
from bot.indicators.registry import IndicatorRegistry
from bot.strategy.analyzer_params import validate_analyzer_params, validate_filter_params
from bot.strategy.base import StrategyContext
from bot.strategy.catalog import CatalogLookupError, StrategyCatalog
from bot.strategy.guard import attempt
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


def extra_streams(spec: StrategyConfig, catalog: StrategyCatalog, file_label: str) -> tuple[list[Stream], ConfigProblem | None]:
    """The (symbol, timeframe) streams a strategy reads besides its trading stream, found by building
    it as an orchestrator would, on a context of its own that nothing else sees.

    `spec` must name a strategy of the catalog with valid params (strategy_params_problems).
    When the strategy's own code raises while it is built: no streams, and the problem naming
    `file_label` — not a ConfigError: one broken strategy must not keep the others from starting
    (it fails alone when it is loaded); `bot validate` reports it.
    """
    asked: dict[Stream, IndicatorRegistry] = {}

    def registry_for(symbol: str, timeframe: str) -> IndicatorRegistry:
        return asked.setdefault((symbol, timeframe), IndicatorRegistry())

    def nothing(*_: Any) -> None:
        return None

    # A bus of its own: what the strategy announces while being built reaches no one.
    bus = EventBus(ReplayClock())
    risk = RiskManager(GlobalRiskConfig()).bind(spec.id, spec.risk, spec.symbol, bus)
    publish = StrategyPublisher(bus, spec.id)
    positions = PositionManager(
        spec.id, spec.exits, lambda _sink: PaperAccount(spec.id, spec.fees, spec.fill), Portfolio(spec.starting_balance), risk, publish
    )
    context = StrategyContext(spec, registry_for, nothing, nothing, publish, positions, lambda: 0)
    streams: list[Stream] = []

    def build_and_ask() -> None:
        strategy = catalog.build(spec.module, spec.class_name, spec.params, context)
        streams.extend((str(s[0]), str(s[1])) for s in strategy.subscriptions())

    # The strategy's own code, through the one seam: it fails the same way, alone, when loaded.
    error = attempt(build_and_ask)
    if error is not None:
        return [], ConfigProblem(file_label, "", f"the strategy raised while being built: {type(error).__name__}: {error}")
    return [s for s in dict.fromkeys([*streams, *asked]) if s != (spec.symbol, spec.timeframe)], None
