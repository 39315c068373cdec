"""TradingOrchestrator: one strategy's isolated pipeline from candle to actions to positions."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from time import perf_counter_ns
from typing import Any, Literal

from bot.bus import StrategyPublisher
from bot.candles.model import Candle
from bot.config.models import RUNTIME_FIELDS, StrategyConfig
from bot.errors import ActionError
from bot.indicators.registry import IndicatorRegistry
from bot.log import StrategyLogger
from bot.metrics import StrategyMetrics
from bot.strategy.analyzers import AnalyzerRegistry
from bot.strategy.filters import EntryFilter, build_filters
from bot.trading.actions import (
    Action,
    ActionQueue,
    ActivateTrailingStop,
    ClosePercent,
    OpenPosition,
    UpdateStopLoss,
)
from bot.trading.paper import PaperAccount
from bot.trading.portfolio import Portfolio
from bot.trading.positions import Position, PositionManager
from bot.trading.risk import StrategyRisk

StrategyState = Literal["dormant", "active", "failed", "unloaded"]


class TradingOrchestrator:
    """Owns one strategy's indicators, analyzers, filters, action queue, positions and portfolio.

    Per candle of its trading (symbol, timeframe): fill pending orders at the open, enforce
    stops/take-profits/trailing intrabar, mark to the close, update indicators, then (when
    trading) decide and carry out actions. Candles of other timeframes only feed their
    indicators (multi-timeframe filters). Nothing here is shared with another orchestrator.
    """

    def __init__(
        self,
        spec: StrategyConfig,
        publish: StrategyPublisher,
        logger: StrategyLogger,
        account: PaperAccount,
        risk: StrategyRisk,
        metrics: StrategyMetrics,
    ) -> None:
        self.strategy_id = spec.id
        self.spec = spec
        self.state: StrategyState = "dormant"
        self.policy: str | None = None
        self.last_error: str | None = None
        self._publish = publish
        self.log = logger
        self.metrics = metrics
        self.symbol = spec.symbol
        self.timeframe = spec.timeframe
        self.indicators: dict[str, IndicatorRegistry] = {spec.timeframe: IndicatorRegistry()}
        main = self.indicators[spec.timeframe]
        self.analyzers = AnalyzerRegistry(spec.analyzers, main)
        self.filters: tuple[EntryFilter, ...] = build_filters(spec.filters, self._registry_for)
        self._filters_by_tf: dict[str, tuple[EntryFilter, ...]] = {
            tf: tuple(f for f in self.filters if (f.timeframe or spec.timeframe) == tf) for tf in self.indicators
        }
        self._account = account
        self._risk = risk
        self.portfolio = Portfolio(spec.starting_balance)
        self.positions = PositionManager(spec.id, spec.exits, account, self.portfolio, risk, publish)
        self.actions = ActionQueue(
            {
                "open_position": self._handle_open,
                "close_percent": self._handle_close_percent,
                "update_stop_loss": self._handle_update_stop,
                "activate_trailing_stop": self._handle_activate_trailing,
            },
            self._on_action_failed,
        )
        self._queued = self.actions.queued
        self._now = 0
        self._on_bar = self.positions.on_bar
        self._held = self.positions.by_symbol
        self._update_main = main.update
        self._entry_threshold = spec.entry_threshold
        self._exit_threshold = spec.exit_threshold

    def _registry_for(self, timeframe: str) -> IndicatorRegistry:
        registry = self.indicators.get(timeframe)
        if registry is None:
            registry = self.indicators[timeframe] = IndicatorRegistry()
        return registry

    # -- routing --------------------------------------------------------------------------------
    def subscriptions(self) -> list[tuple[str, str]]:
        """The (symbol, timeframe) streams this strategy consumes, trading timeframe first."""
        return [(self.symbol, tf) for tf in self.indicators]

    def on_candle(self, symbol: str, timeframe: str, candle: Candle, ts: int) -> None:
        """Process one closed candle of the trading stream while active (the replay hot path)."""
        started = perf_counter_ns()
        self._now = ts
        self._on_bar(symbol, candle, ts)
        self._update_main(candle)
        self._decide(symbol, candle)
        if self._queued:
            self.actions.drain()
        elapsed = perf_counter_ns() - started
        metrics = self.metrics
        metrics.candles += 1
        metrics.busy_ns += elapsed
        metrics.samples.append(elapsed)
        if elapsed > metrics.max_ns:
            metrics.max_ns = elapsed

    def on_other_candle(self, symbol: str, timeframe: str, candle: Candle, ts: int) -> None:
        """A candle of another timeframe this strategy watches (multi-timeframe filters)."""
        self._observe_other(timeframe, candle)

    def handler_for(self, symbol: str, timeframe: str) -> Callable[[str, str, Candle, int], None]:
        """The method that processes candles of one subscribed stream while active."""
        return self.on_candle if (symbol, timeframe) == (self.symbol, self.timeframe) else self.on_other_candle

    def protect(self, symbol: str, timeframe: str, candle: Candle, ts: int) -> None:
        """A candle of the trading stream while not trading: fills, stops, take-profits, trailing, break-even; no entries."""
        self._now = ts
        positions = self.positions
        positions.on_bar(symbol, candle, ts)
        position = positions.position_on(symbol)
        if position is not None and (position.trailing_activation_price is not None or position.break_even):
            self._manage_exits(position, candle)
            if self._queued:
                self.actions.drain()

    def catch_up(self, symbol: str, timeframe: str, candle: Candle, ts: int) -> None:
        """A candle skipped by coalescing: its positions still see it (indicators and decisions do not)."""
        if (symbol, timeframe) == (self.symbol, self.timeframe):
            self.protect(symbol, timeframe, candle, ts)

    def _observe_other(self, timeframe: str, candle: Candle) -> None:
        registry = self.indicators.get(timeframe)
        if registry is None:
            return
        registry.update(candle)
        for entry_filter in self._filters_by_tf.get(timeframe, ()):
            entry_filter.observe(candle)

    def warm_up(self, history: Mapping[str, Sequence[Candle]], resume_after: Mapping[str, int] | None = None) -> int:
        """Feed recorded history to the indicators (no trading) so the next candle can be acted on.

        `resume_after` gives, per timeframe, the open time of the last candle the indicators
        consumed before a pause: only newer candles are fed, so their state continues exactly.
        Without it, or when the history no longer reaches back to that candle (the pause
        outlasted it), the indicators restart from the whole history.
        """
        count = 0
        for timeframe, candles in history.items():
            registry = self.indicators.get(timeframe)
            if registry is None or not candles:
                continue
            filters = self._filters_by_tf.get(timeframe, ())
            last = None if resume_after is None else resume_after.get(timeframe)
            if last is not None and candles[0].ts <= last:
                feed: Iterable[Candle] = (c for c in candles if c.ts > last)
            else:
                registry.reset()
                for entry_filter in filters:
                    entry_filter.reset()
                feed = candles
            for candle in feed:
                registry.update(candle)
                for entry_filter in filters:
                    entry_filter.observe(candle)
                count += 1
        return count

    # -- decisions ------------------------------------------------------------------------------
    def _decide(self, symbol: str, candle: Candle) -> None:
        score = self.analyzers.score(candle)
        held = self._held.get(symbol)
        if not held:
            if score < self._entry_threshold:
                return
            positions = self.positions
            if positions.is_flat(symbol):
                for entry_filter in self.filters:
                    if not entry_filter.allows("long", candle):
                        return
                self._signal("entry", score, symbol, candle)
                self.actions.put(OpenPosition(symbol, "long", self.spec.quantity))
            return
        position = held[0]
        exit_threshold = self._exit_threshold
        if exit_threshold is not None and score <= -exit_threshold and position.pending_close < position.quantity:
            self._signal("exit", score, symbol, candle)
            self.actions.put(ClosePercent(position.id, 100.0))
            return
        if position.trailing_activation_price is not None or position.break_even:
            self._manage_exits(position, candle)

    def _manage_exits(self, position: Position, candle: Candle) -> None:
        """Exit management that goes on whether or not the strategy trades: trailing activation, break-even.

        Uses the rules the position was opened with, not the strategy's current config.
        """
        activation = position.trailing_activation_price
        if activation is not None and not position.trailing_active:
            if candle.close >= activation if position.direction > 0 else candle.close <= activation:
                self.actions.put(ActivateTrailingStop(position.id, position.trailing_distance_pct, candle.close))  # type: ignore[arg-type]
        if position.break_even and position.take_profits and position.take_profits[0].done:
            entry = position.entry_price
            stop = position.stop_loss
            if stop is None or (stop < entry if position.direction > 0 else stop > entry):
                self.actions.put(UpdateStopLoss(position.id, entry, "break_even"))

    def _signal(self, decision: str, score: float, symbol: str, candle: Candle) -> None:
        self._publish(
            "signal",
            {"decision": decision, "score": score, "symbol": symbol, "close": candle.close, "analyzers": self.analyzers.breakdown(candle)},
            self._now,
        )

    # -- action handlers ------------------------------------------------------------------------
    def _handle_open(self, action: Action) -> None:
        assert isinstance(action, OpenPosition)
        if action.quantity <= 0:
            raise ActionError(f"open_position quantity must be positive, got {action.quantity}")
        price = self.positions.last_price(action.symbol)
        if price is None:
            raise ActionError(f"no price seen yet for {action.symbol}")
        self.positions.submit_open(action.symbol, action.side, action.quantity, action.reason, self._now, price)

    def _handle_close_percent(self, action: Action) -> None:
        assert isinstance(action, ClosePercent)
        if not 0 < action.percent <= 100:
            raise ActionError(f"close_percent percent must be in (0, 100], got {action.percent}")
        position = self.positions.get(action.position_id)
        available = position.quantity - position.pending_close
        if available <= 0:
            raise ActionError(f"position {position.id} is already being closed")
        # A percent of what is not already being closed, so two 50% closes queued together
        # close 75%, the same as one after the other.
        quantity = available if action.percent == 100 else available * action.percent / 100.0
        price = self.positions.last_price(position.symbol) or position.entry_price
        self.positions.submit_close(position, quantity, action.reason, self._now, price)

    def _handle_update_stop(self, action: Action) -> None:
        assert isinstance(action, UpdateStopLoss)
        self.positions.update_stop(action.position_id, action.price, action.reason, self._now)

    def _handle_activate_trailing(self, action: Action) -> None:
        assert isinstance(action, ActivateTrailingStop)
        self.positions.activate_trailing(action.position_id, action.distance_pct, action.anchor_price, self._now)

    def _on_action_failed(self, action: Action, error: ActionError) -> None:
        self._publish("action_failed", {"kind": action.kind, "error": str(error)}, self._now)

    def reconfigure(self, spec: StrategyConfig) -> list[str]:
        """Apply a new config that differs only in runtime-changeable fields; return the fields changed.

        Raises ValueError naming the fields that would need a rebuild.
        """
        if spec.id != self.strategy_id:
            raise ValueError(f"config is for {spec.id!r}, not {self.strategy_id!r}")
        old, new = self.spec.model_dump(), spec.model_dump()
        changed = sorted(k for k in new if new[k] != old[k])
        frozen = [k for k in changed if k not in RUNTIME_FIELDS]
        if frozen:
            raise ValueError(f"cannot change {', '.join(frozen)} of a loaded strategy in place")
        self.spec = spec
        self._entry_threshold = spec.entry_threshold
        self._exit_threshold = spec.exit_threshold
        self.positions.configure(spec.exits)
        self._account.configure(spec.fees, spec.fill)
        self._risk.limits = spec.risk
        return changed

    # -- lifecycle helpers ----------------------------------------------------------------------
    def close_all(self, reason: str) -> int:
        """Queue and send market closes for every open position; return how many."""
        count = 0
        for position in list(self.positions.positions.values()):
            if position.quantity - position.pending_close > 0:
                self.actions.put(ClosePercent(position.id, 100.0, reason))
                count += 1
        self.actions.drain()
        return count

    def is_warm(self) -> bool:
        """True when every indicator of every timeframe it watches has warmed up."""
        return all(registry.ready() for registry in self.indicators.values())

    def snapshot(self) -> dict[str, Any]:
        """The strategy's state as plain data (status, journal, unload)."""
        return {
            "strategy_id": self.strategy_id,
            "state": self.state,
            "policy": self.policy,
            "last_error": self.last_error,
            "portfolio": self.portfolio.snapshot(),
            "positions": [p.state() for p in self.positions.positions.values()],
            "pending_orders": [o.client_id for o in self.positions.pending_orders()],
            "closed_trades": self.positions.closed_trades,
        }

    def clear(self) -> None:
        """Drop indicator state and queued actions (the last step before eviction)."""
        self.actions.clear()
        for registry in self.indicators.values():
            registry.clear()
