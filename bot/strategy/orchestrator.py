"""TradingOrchestrator: one strategy's isolated pipeline from candle to actions to positions."""
from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Mapping, Sequence
from time import perf_counter_ns
from typing import Any

from bot.bus import StrategyPublisher
from bot.config.models import RUNTIME_FIELDS, StrategyConfig
from bot.errors import ActionError
from bot.event_codec import encode_record
from bot.events import ActionFailed
from bot.indicators.registry import IndicatorRegistry
from bot.log import StrategyLogger
from bot.metrics import StrategyMetrics
from bot.ohlcv import Candle, timeframe_ms
from bot.strategy.base import PositionView, Strategy, StrategyContext, Stream
from bot.strategy.lifecycle import Lifecycle, StrategyState
from bot.trading.account import OpenAccount
from bot.trading.actions import (
    Action,
    ActionQueue,
    ActivateTrailingStop,
    ClosePair,
    ClosePercent,
    OpenPair,
    OpenPosition,
    UpdateStopLoss,
)
from bot.trading.exit_rules import break_even_stop, trailing_start
from bot.trading.portfolio import Portfolio
from bot.trading.positions import Position, PositionManager
from bot.trading.risk import RiskView

# Builds the strategy object `context.spec` names, for that context.
StrategyBuilder = Callable[[StrategyContext], Strategy[Any]]
# Fields whose new value needs a new strategy object: they decide which indicators it asks for
# and which streams it reads (a module's params, the declarative strategy's analyzers and filters).
REBUILT_FIELDS: frozenset[str] = frozenset({"params", "analyzers", "filters"})


class TradingOrchestrator:
    """Owns one strategy's indicators, strategy object, action queue, positions and portfolio.

    Per candle of a trading stream (a subscribed symbol at the trading timeframe): fill
    pending orders at the open, enforce stops/take-profits/trailing intrabar, mark to the
    close, update that stream's indicators, then (when trading) let the strategy decide and
    carry out its actions. Candles of other timeframes update their indicators and reach the
    strategy too (multi-timeframe conditions), but never touch positions. Nothing here is
    shared with another orchestrator.
    """

    def __init__(
        self,
        spec: StrategyConfig,
        publish: StrategyPublisher,
        logger: StrategyLogger,
        open_account: OpenAccount,
        risk: RiskView,
        metrics: StrategyMetrics,
        build_strategy: StrategyBuilder,
    ) -> None:
        self.strategy_id = spec.id
        self.spec = spec
        # Its manager moves it on from loading once it is built and accepted.
        self.lifecycle = Lifecycle(spec.id)
        self.policy: str | None = None
        # Positions a close was sent for under policy close (or close_all): never sent again for, so a refused one does not repeat.
        self._closed_for_policy: set[str] = set()
        self.last_error: str | None = None
        self._publish = publish
        self.log = logger
        self.metrics = metrics
        self.symbol = spec.symbol
        self.timeframe = spec.timeframe
        self._risk = risk
        self.portfolio = Portfolio(spec.starting_balance)
        self.positions = PositionManager(spec.id, spec.exits, open_account, self.portfolio, risk, publish)
        self.actions = ActionQueue(
            {
                "open_position": self._handle_open,
                "close_percent": self._handle_close_percent,
                "update_stop_loss": self._handle_update_stop,
                "activate_trailing_stop": self._handle_activate_trailing,
                "open_pair": self._handle_open_pair,
                "close_pair": self._handle_close_pair,
            },
            self._on_action_failed,
        )
        self._queued = self.actions.queued
        self._now = 0
        self._on_bar = self.positions.on_bar
        self._build_strategy = build_strategy
        self._install(self.prepare(spec))

    @property
    def publisher(self) -> StrategyPublisher:
        """Publishes events tagged with its strategy id (its book's and its strategy's)."""
        return self._publish

    @property
    def state(self) -> StrategyState:
        """Its lifecycle state (changed only through `lifecycle`)."""
        return self.lifecycle.state

    def _clock(self) -> int:
        return self._now

    @property
    def now(self) -> int:
        """The close time (ms) of the last candle it handled; 0 before the first."""
        return self._now

    # -- the strategy object ---------------------------------------------------------------------
    def prepare(self, spec: StrategyConfig) -> StrategyBuild:
        """Build a strategy object for `spec` with indicator registries of its own, leaving the running one untouched.

        ValueError for streams that cannot be its (its first subscription must be its trading
        stream); whatever the strategy's own code raises propagates.
        """
        if spec.id != self.strategy_id:
            raise ValueError(f"config is for {spec.id!r}, not {self.strategy_id!r}")
        return build_mind(spec, self.actions.put, self.actions.refuse, self._publish, self.positions, self._clock, self._build_strategy)

    def install(self, build: StrategyBuild) -> list[str]:
        """Put a prepared build in place of the running strategy object, its config's runtime fields too; return the fields changed.

        Positions, orders, the portfolio, the action queue and the counters stay; so does the
        state and the routing, which is its manager's to redo (the streams may have changed).
        """
        changed = self.changes(build.spec, RUNTIME_FIELDS | REBUILT_FIELDS)
        self._install(build)
        self._apply_runtime(build.spec)
        return changed

    def _install(self, build: StrategyBuild) -> None:
        self._build = build
        self.context = build.context
        self.strategy: Strategy[Any] = build.strategy
        self.indicators = build.indicators
        self._streams = build.streams
        self._trading = build.trading
        self._updates = build.updates
        self._trading_updates = build.trading_updates

    # -- routing --------------------------------------------------------------------------------
    def subscriptions(self) -> list[Stream]:
        """The (symbol, timeframe) streams this strategy consumes, trading stream first."""
        return list(self._streams)

    def trading_streams(self) -> list[Stream]:
        """The streams whose candles fill orders and enforce exits: its symbols at the trading timeframe."""
        return [s for s in self._streams if s in self._trading]

    def on_candle(self, symbol: str, timeframe: str, candle: Candle, ts: int) -> None:
        """Process one closed candle of a trading stream while active (the replay hot path)."""
        started = perf_counter_ns()
        self._now = ts
        # The same list after the strategy's call: its actions are only queued until the drain below.
        held = self._on_bar(symbol, candle, ts)
        self._trading_updates[symbol](candle)
        self.strategy.on_candle(symbol, timeframe, candle)
        if held:
            for position in held:
                if (position.trailing_activation_price is not None or position.break_even) and position.closable:
                    self._manage_exits(position, candle)
        if self._queued:
            self.actions.drain()
        elapsed = perf_counter_ns() - started
        metrics = self.metrics
        metrics.candles += 1
        metrics.busy_ns += elapsed
        metrics.samples.append(elapsed)
        metrics.histogram[elapsed.bit_length()] += 1
        if elapsed > metrics.max_ns:
            metrics.max_ns = elapsed

    # -- the same turn in three parts, for a mind that runs elsewhere (bot.cluster) --------------
    # on_candle stays one method (the replay's hot path: no call per part); these are its
    # statements in the same order, and a test holds that bar + decide + settle == on_candle.
    def bar(self, symbol: str, candle: Candle, ts: int) -> list[Position] | None:
        """The book's part before the decision: fills at the open, stops, take-profits, trailing, the mark; the symbol's open positions after them."""
        self._now = ts
        return self._on_bar(symbol, candle, ts)

    def decide(self, symbol: str, timeframe: str, candle: Candle) -> None:
        """The mind's part of a trading stream's candle: its indicators, then the strategy (which queues actions)."""
        self._trading_updates[symbol](candle)
        self.strategy.on_candle(symbol, timeframe, candle)

    def settle(self, held: list[Position] | None, candle: Candle, busy_ns: int = 0, ts: int | None = None) -> None:
        """The book's part after the decision: exit management of `held` (bar's answer), the queued actions carried out, the candle counted.

        `busy_ns`: the time the turn's other parts took, counted with this one's. `ts`: the candle's
        close, when something else may have moved the clock since its `bar` (a restart in between).
        """
        started = perf_counter_ns()
        if ts is not None:
            self._now = ts
        if held:
            for position in held:
                if (position.trailing_activation_price is not None or position.break_even) and position.closable:
                    self._manage_exits(position, candle)
        if self._queued:
            self.actions.drain()
        elapsed = perf_counter_ns() - started + busy_ns
        metrics = self.metrics
        metrics.candles += 1
        metrics.busy_ns += elapsed
        metrics.samples.append(elapsed)
        metrics.histogram[elapsed.bit_length()] += 1
        if elapsed > metrics.max_ns:
            metrics.max_ns = elapsed

    def decide_other(self, symbol: str, timeframe: str, candle: Candle, ts: int) -> bool:
        """The mind's part of another timeframe's candle (on_other_candle without the drain); False for a stream it does not watch."""
        self._now = ts
        update = self._updates.get((symbol, timeframe))
        if update is None:
            return False
        update(candle)
        self.strategy.on_candle(symbol, timeframe, candle)
        return True

    def settle_other(self, ts: int) -> None:
        """The book's part after another timeframe's candle: the queued actions carried out, on that candle's clock."""
        self._now = ts
        if self._queued:
            self.actions.drain()

    def on_other_candle(self, symbol: str, timeframe: str, candle: Candle, ts: int) -> None:
        """A candle of another timeframe it watches: indicators and the strategy see it; positions do not."""
        self._now = ts
        update = self._updates.get((symbol, timeframe))
        if update is None:
            return
        update(candle)
        self.strategy.on_candle(symbol, timeframe, candle)
        if self._queued:
            self.actions.drain()

    def on_history(self, symbol: str, timeframe: str, candle: Candle, ts: int) -> None:
        """A candle that closed after its warm-up but is history (a higher-timeframe candle that opened before a replay's
        --from): its indicators and the strategy's state take it, as in warm-up; nothing is decided or traded."""
        update = self._updates.get((symbol, timeframe))
        if update is None:
            return
        self._now = ts
        update(candle)
        self.strategy.on_history(symbol, timeframe, candle)

    def handler_for(self, symbol: str, timeframe: str) -> Callable[[str, str, Candle, int], None]:
        """The method that processes candles of one subscribed stream while active."""
        return self.on_candle if (symbol, timeframe) in self._trading else self.on_other_candle

    def protect(self, symbol: str, timeframe: str, candle: Candle, ts: int) -> None:
        """A candle of a trading stream while not trading: fills, stops, take-profits, trailing, break-even; no entries."""
        self._now = ts
        positions = self.positions
        positions.on_bar(symbol, candle, ts)
        held = positions.by_symbol.get(symbol)
        if held:
            for position in tuple(held):
                if position.trailing_activation_price is not None or position.break_even:
                    self._manage_exits(position, candle)
            if self.policy == "close":
                # Deactivated to close: a position opened since (an entry in flight then, filled later) is closed too.
                for position in tuple(held):
                    if position.closable and position.id not in self._closed_for_policy:
                        self._closed_for_policy.add(position.id)
                        self.actions.put(ClosePercent(position.id, 100.0, "deactivate"))
        if self._queued:
            self.actions.drain()

    def catch_up(self, symbol: str, timeframe: str, candle: Candle, ts: int) -> None:
        """A candle skipped by coalescing: its positions still see it (indicators and decisions do not)."""
        if (symbol, timeframe) in self._trading:
            self.protect(symbol, timeframe, candle, ts)

    def warm_up(self, history: Mapping[Stream, Sequence[Candle]], resume_after: Mapping[Stream, int] | None = None) -> int:
        """Feed recorded history to the indicators and the strategy (no trading) so the next candle can be acted on.

        See StrategyBuild.warm_up.
        """
        return self._build.warm_up(history, resume_after)

    def _manage_exits(self, position: Position, candle: Candle) -> None:
        """Exit management that goes on whether or not the strategy trades: trailing activation, break-even.

        Uses the rules the position was opened with, not the strategy's current config.
        """
        start = trailing_start(position, candle)
        if start is not None:
            self.actions.put(ActivateTrailingStop(position.id, start.distance_pct, start.anchor))
        entry = break_even_stop(position)
        if entry is not None:
            self.actions.put(UpdateStopLoss(position.id, entry, "break_even"))

    # -- action handlers ------------------------------------------------------------------------
    def _handle_open(self, action: Action) -> None:
        assert isinstance(action, OpenPosition)
        if action.quantity <= 0:
            raise ActionError(f"open_position quantity must be positive, got {action.quantity}")
        if action.limit_price is not None and not action.limit_price > 0:
            raise ActionError(f"open_position limit price must be positive, got {action.limit_price}")
        price = self.positions.last_price(action.symbol)
        if price is None:
            raise ActionError(f"no price seen yet for {action.symbol}")
        self.positions.submit_open(action.symbol, action.side, action.quantity, action.reason, self._now, price, action.limit_price)

    def _handle_close_percent(self, action: Action) -> None:
        assert isinstance(action, ClosePercent)
        if not 0 < action.percent <= 100:
            raise ActionError(f"close_percent percent must be in (0, 100], got {action.percent}")
        position = self.positions.get(action.position_id)
        available = position.open_quantity
        if available <= 0:
            raise ActionError(f"position {position.id} is already being closed")
        if position.group is not None and action.percent != 100:
            raise ActionError(f"position {position.id} is a leg of pair {position.group}: pairs close whole, together")
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

    def _handle_open_pair(self, action: Action) -> None:
        assert isinstance(action, OpenPair)
        legs = []
        for leg in (action.long, action.short):
            if leg.quantity <= 0:
                raise ActionError(f"open_pair {leg.side} leg quantity must be positive, got {leg.quantity}")
            if leg.limit_price is not None:
                raise ActionError("open_pair legs are market orders: a limit leg could leave the pair half open")
            price = self.positions.last_price(leg.symbol)
            if price is None:
                raise ActionError(f"no price seen yet for {leg.symbol}")
            legs.append((leg.symbol, leg.side, leg.quantity, price))
        if action.long.symbol == action.short.symbol:
            raise ActionError(f"open_pair legs must be on two symbols, both are {action.long.symbol}")
        self.positions.submit_pair(tuple(legs), action.long.reason, self._now)

    def _handle_close_pair(self, action: Action) -> None:
        assert isinstance(action, ClosePair)
        if not self.positions.group_legs(action.group):
            raise ActionError(f"no open pair {action.group!r}")
        if not self.positions.close_group(action.group, action.reason, self._now):
            raise ActionError(f"pair {action.group!r} is already being closed")

    def _on_action_failed(self, action: Action, error: ActionError) -> None:
        self._publish(ActionFailed, self._now, action.kind, str(error))

    def changes(self, spec: StrategyConfig, allowed: frozenset[str] = RUNTIME_FIELDS) -> list[str]:
        """The top-level fields `spec` changes; ValueError naming those not in `allowed`."""
        if spec.id != self.strategy_id:
            raise ValueError(f"config is for {spec.id!r}, not {self.strategy_id!r}")
        old, new = self.spec.model_dump(), spec.model_dump()
        changed = sorted(k for k in new if new[k] != old[k])
        frozen = [k for k in changed if k not in allowed]
        if frozen:
            raise ValueError(f"cannot change {', '.join(frozen)} of a loaded strategy in place")
        return changed

    def reconfigure(self, spec: StrategyConfig) -> list[str]:
        """Apply a new config that differs only in runtime-changeable fields; return the fields changed.

        Raises ValueError naming the fields that would need a rebuild.
        """
        changed = self.changes(spec)
        self._apply_runtime(spec)
        self.context.spec = spec
        self.context.quantity = spec.quantity
        self.strategy.reconfigured()
        return changed

    def _apply_runtime(self, spec: StrategyConfig) -> None:
        self.spec = spec
        self.positions.configure(spec.exits)
        self.positions.account.configure(spec.fees, spec.fill)
        self._risk.limits = spec.risk

    # -- lifecycle helpers ----------------------------------------------------------------------
    def close_all(self, reason: str) -> int:
        """Queue and send market closes for every open position; return how many."""
        count = 0
        for position in list(self.positions.positions.values()):
            if position.closable:
                self._closed_for_policy.add(position.id)
                self.actions.put(ClosePercent(position.id, 100.0, reason))
                count += 1
        self.actions.drain()
        return count

    def is_warm(self) -> bool:
        """True when every indicator of every timeframe it watches has warmed up."""
        return all(registry.ready() for registry in self.indicators.values())

    def cold_streams(self) -> list[tuple[Stream, tuple[str, ...]]]:
        """The streams with an indicator not warmed up yet, each with the indicators it has."""
        return [(stream, tuple(registry.keys())) for stream, registry in self.indicators.items() if not registry.ready()]

    def snapshot(self) -> dict[str, Any]:
        """The strategy's state as plain data (status, journal, unload)."""
        return {
            "strategy_id": self.strategy_id,
            "state": self.state,
            "policy": self.policy,
            "last_error": self.last_error,
            "portfolio": encode_record(self.portfolio.record()),
            "positions": [encode_record(p.record()) for p in self.positions.positions.values()],
            "pending_orders": [o.client_id for o in self.positions.pending_orders()],
            "closed_trades": self.positions.closed_trades,
            "strategy": self.strategy.snapshot(),
        }

    def clear(self) -> None:
        """Drop indicator state and queued actions (the last step before eviction)."""
        self.actions.clear()
        for registry in self.indicators.values():
            registry.clear()


def build_mind(
    spec: StrategyConfig,
    put: Callable[[Action], None],
    refuse: Callable[[Action, ActionError], None],
    publish: StrategyPublisher,
    positions: PositionView,
    clock: Callable[[], int],
    build_strategy: StrategyBuilder,
) -> StrategyBuild:
    """A strategy object for `spec` with indicator registries of its own, its actions going to `put` (an orchestrator's, or a worker's mind's),
    those it cannot queue to `refuse`.

    ValueError for streams that cannot be its (its first subscription must be its trading
    stream); whatever the strategy's own code raises propagates.
    """
    registries = _Registries(spec.id)
    registries(spec.symbol, spec.timeframe)
    context = StrategyContext(spec, registries, put, refuse, publish, positions, clock)
    strategy = build_strategy(context)
    streams: list[Stream] = list(dict.fromkeys((s[0], s[1]) for s in strategy.subscriptions()))
    if not streams or streams[0] != (spec.symbol, spec.timeframe):
        raise ValueError(
            f"strategy {spec.id!r}: its first subscription must be its trading stream {spec.symbol} {spec.timeframe}, got {streams[:1]}"
        )
    for symbol, timeframe in streams:
        timeframe_ms(timeframe)
        registries(symbol, timeframe)
    registries.building = False
    indicators = registries.by_stream
    every = tuple(streams) + tuple(k for k in indicators if k not in streams)
    return StrategyBuild(spec, context, strategy, indicators, every, frozenset(s for s in every if s[1] == spec.timeframe))


class _Registries:
    """The indicator registries of one build: created on request while its strategy is built; afterwards a request for a
    stream it did not subscribe to is its bug (that registry would never be updated)."""

    __slots__ = ("by_stream", "building", "_strategy_id")

    def __init__(self, strategy_id: str) -> None:
        self.by_stream: dict[Stream, IndicatorRegistry] = {}
        self.building = True
        self._strategy_id = strategy_id

    def __call__(self, symbol: str, timeframe: str) -> IndicatorRegistry:
        key = (symbol, timeframe)
        registry = self.by_stream.get(key)
        if registry is None:
            if not self.building:
                raise ValueError(f"strategy {self._strategy_id!r} does not subscribe to {symbol} {timeframe}: list it in subscriptions()")
            registry = self.by_stream[key] = IndicatorRegistry()
        return registry


class StrategyBuild:
    """A strategy object with its context, its indicator registries and the streams they cover, built for one orchestrator."""

    __slots__ = ("spec", "context", "strategy", "indicators", "streams", "trading", "updates", "trading_updates")

    def __init__(
        self,
        spec: StrategyConfig,
        context: StrategyContext,
        strategy: Strategy[Any],
        indicators: dict[Stream, IndicatorRegistry],
        streams: tuple[Stream, ...],
        trading: frozenset[Stream],
    ) -> None:
        self.spec = spec
        self.context = context
        self.strategy = strategy
        self.indicators = indicators
        self.streams = streams
        self.trading = trading
        self.updates = {key: registry.update for key, registry in indicators.items()}
        # By symbol alone: a trading stream's timeframe is the strategy's, and the replay's hot
        # path is spared a tuple key per candle.
        self.trading_updates = {symbol: update for (symbol, timeframe), update in self.updates.items() if (symbol, timeframe) in trading}

    def trading_streams(self) -> list[Stream]:
        """The streams whose candles would fill its orders and enforce its exits."""
        return [s for s in self.streams if s in self.trading]

    def warm_up(self, history: Mapping[Stream, Sequence[Candle]], resume_after: Mapping[Stream, int] | None = None) -> int:
        """Feed recorded history to the indicators and the strategy (no trading) so the next candle can be acted on.

        `resume_after` gives, per stream, the open time of the last candle consumed before a
        pause: only newer candles are fed, so the state continues exactly. Without it, or when
        some stream's history no longer reaches back that far (the pause outlasted it),
        everything restarts from the whole history. Streams are fed interleaved in close-time
        order, as they arrived live.
        """
        streams = [(key, candles) for key, candles in history.items() if key in self.indicators and candles]
        resume = resume_after is not None and all(
            key in resume_after and candles[0].ts <= resume_after[key] for key, candles in streams
        )
        if not resume:
            for registry in self.indicators.values():
                registry.reset()
            self.strategy.reset()
        on_history = self.strategy.on_history
        updates = self.updates
        count = 0
        for key, candle in _merged(streams, resume_after if resume else None):
            updates[key](candle)
            on_history(key[0], key[1], candle)
            count += 1
        return count


def _merged(streams: list[tuple[Stream, Sequence[Candle]]], after: Mapping[Stream, int] | None) -> Iterator[tuple[Stream, Candle]]:
    """Candles of several streams in close-time order; at a shared close the longer timeframe comes first, as the hub delivers them."""

    def keyed(index: int, key: Stream, candles: Sequence[Candle]) -> Iterator[tuple[int, int, int, int, Stream, Candle]]:
        length = timeframe_ms(key[1])
        last = None if after is None else after.get(key)
        for n, candle in enumerate(candles):
            if last is None or candle.ts > last:
                yield candle.ts + length, -length, index, n, key, candle

    if len(streams) == 1:
        key, candles = streams[0]
        last = None if after is None else after.get(key)
        for candle in candles:
            if last is None or candle.ts > last:
                yield key, candle
        return
    for item in heapq.merge(*(keyed(i, key, candles) for i, (key, candles) in enumerate(streams))):
        yield item[4], item[5]
