"""StrategyManager: strategy lifecycle and routing of candles to orchestrators by subscription."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, Protocol, assert_never

from bot.config.currency import mixed_currency_problem
from bot.config.models import RUNTIME_FIELDS, StrategyConfig
from bot.errors import StrategyError, StrategyStateError, UnknownStrategyError
from bot.events import StrategyFault, StrategyStateChanged
from bot.ohlcv import Candle
from bot.services import BotServices
from bot.strategy.booking_faults import BookingFaults
from bot.strategy.delivery import Delivery, DirectDelivery, HandlerErrorHook, TurnNotJournalled
from bot.strategy.factory import BookSeam, OrchestratorFactory
from bot.strategy.guard import Stage, attempt, deliver_stream, described
from bot.strategy.lifecycle import StrategyState
from bot.strategy.orchestrator import REBUILT_FIELDS, StrategyBuild, TradingOrchestrator

Policy = Literal["manage", "close", "freeze"]
POLICIES: tuple[Policy, ...] = ("manage", "close", "freeze")
_Key = tuple[str, str]
_Handler = Callable[[str, str, Candle, int], None]
_Route = tuple[TradingOrchestrator, _Handler]
# The journalled states a strategy is put back into as they are; "active" is restored by activating it.
_RESTORABLE: dict[str, StrategyState] = {"dormant": "dormant", "failed": "failed"}
_Routes = dict[_Key, tuple[_Route, ...]]


class StreamRouter(BookSeam, Protocol):
    """What hands a stream's candle to its routes instead of `deliver_stream` (the cluster's lockstep router runs the strategies elsewhere), with the books it needs."""

    def deliver(
        self,
        active: _Routes,
        protect: _Routes,
        key: _Key,
        on_trade_error: Callable[[TradingOrchestrator, Exception], None],
        on_protect_error: Callable[[TradingOrchestrator, Exception], None],
        protected: Callable[[tuple[_Route, ...]], None],
        symbol: str,
        timeframe: str,
        candle: Candle,
        ts: int,
    ) -> None:
        """What `deliver_stream` does, bound per stream by the manager."""
        ...

    def history(self, routes: tuple[_Route, ...], symbol: str, timeframe: str, candle: Candle, ts: int) -> None:
        """A candle that is history to the strategies trading on its stream, after their orchestrators took it (on_history)."""
        ...


class SettlingAccounts(Protocol):
    """The execution gateway's part in a strategy's lifecycle where orders outlive the strategy's code (live trading)."""

    def in_flight(self, strategy_id: str) -> list[str]: ...

    def close_account(self, strategy_id: str) -> list[str]: ...

    def adopt_restored(self, strategy_id: str) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class ColdStream:
    """A stream whose indicators a strategy has not warmed yet: the candles of it the hub holds, and those indicators."""

    symbol: str
    timeframe: str
    history: int
    indicators: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """Plain data for a reply."""
        return {"symbol": self.symbol, "timeframe": self.timeframe, "history": self.history, "indicators": list(self.indicators)}


def describe_cold(streams: list[ColdStream]) -> str:
    """`4 candles of BTC/USD 4h history for ema(period=50,source=close)`, one per stream, for a message."""
    return "; ".join(
        f"{s.history:,} candle{'' if s.history == 1 else 's'} of {s.symbol} {s.timeframe} history for {', '.join(s.indicators)}" for s in streams
    )


@dataclass(eq=False, slots=True)
class _Settling:
    """An unloaded strategy with orders still in flight: their outcomes are booked into its book, and journalled."""

    orchestrator: TradingOrchestrator
    close_positions: bool
    # Positions the unload already dealt with; one opened later by an entry in flight is new.
    seen: set[str] = field(default_factory=set)


class StrategyManager:
    """Loads, activates, deactivates, switches and unloads strategies, and routes candles to them.

    Lifecycle: loaded (dormant) -> active -> dormant -> unloaded, plus failed; every change goes
    through the orchestrator's `lifecycle` (bot.strategy.lifecycle.TRANSITIONS). Routing is a
    dict lookup by (symbol, timeframe). A strategy whose code raises is marked failed, keeps
    its positions protected by their stops, and never stops the others.

    With `accounts` (live trading), an unloaded strategy whose orders are still in flight is
    settling: their fills and refusals still go to its book and the journal, a `load` of its id
    is refused until `settle` finds them all done and closes its account on the gateway.
    """

    def __init__(
        self,
        services: BotServices,
        factory: OrchestratorFactory,
        delivery: Delivery | None = None,
        accounts: SettlingAccounts | None = None,
        delivery_for: Callable[[HandlerErrorHook], Delivery] | None = None,
        booking_faults: BookingFaults | None = None,
        router: StreamRouter | None = None,
    ) -> None:
        self._services = services
        # None: deliver_stream, the in-process path.
        self._router = router
        self._factory = factory
        # `delivery_for` builds a queued delivery around this manager's guarded seam, so it has it from the start.
        self.delivery: Delivery = delivery_for(self.on_handler_error) if delivery_for is not None else delivery or DirectDelivery()
        self._accounts = accounts
        if booking_faults is not None:  # live: the gateway, built before this manager, reports through it
            booking_faults.handled_by(self.on_booking_error)
        self._settling: dict[str, _Settling] = {}
        # Routes hold the orchestrator with the bound method for that stream, so delivery is a
        # dict lookup and a call.
        self._active: dict[_Key, tuple[_Route, ...]] = {}
        # Orchestrators not trading but whose positions are still managed: deactivated with
        # policy manage or close, and failed ones (their trading stream only).
        self._protect: dict[_Key, tuple[_Route, ...]] = {}
        # Per stream, the callable the hub delivers its candles to (kept to unsubscribe it).
        self._hub_routes: dict[_Key, Callable[[str, str, Candle, int], None]] = {}
        # Per paused strategy: the open time of the last candle of each stream it consumed, so
        # reactivation feeds its indicators only what they have not seen.
        self._paused_at: dict[str, dict[_Key, int]] = {}

    # -- queries --------------------------------------------------------------------------------
    def get(self, strategy_id: str) -> TradingOrchestrator:
        """A loaded strategy's orchestrator; UnknownStrategyError otherwise."""
        orchestrator = self._factory.get(strategy_id)
        if orchestrator is None:
            raise UnknownStrategyError(f"strategy {strategy_id!r} is not loaded")
        return orchestrator

    def ids(self) -> list[str]:
        """Loaded strategy ids, in load order."""
        return self._factory.ids()

    def states(self) -> dict[str, StrategyState]:
        """Each loaded strategy's state."""
        return {sid: self.get(sid).state for sid in self._factory.ids()}

    # -- lifecycle ------------------------------------------------------------------------------
    def load(self, spec: StrategyConfig, announce: bool = True) -> TradingOrchestrator:
        """Build a strategy's orchestrator, dormant; refuse an id that is already loaded.

        Recovery loads with `announce=False`: the journalled state must not be overwritten by a
        transient "dormant" before `restore_state` puts the strategy back.
        """
        if spec.id in self._factory:
            raise StrategyStateError(f"strategy {spec.id!r} is already loaded")
        waiting = self._in_flight(spec.id)
        if waiting:
            # Its journalled book is not final until they have an outcome, and that outcome goes
            # to the unloaded strategy's book: a second one would never hear of it.
            raise StrategyStateError(
                f"strategy {spec.id!r} was unloaded with orders in flight ({', '.join(waiting)}): "
                "load it again once the exchange has settled them"
            )
        hub = self._services.hub
        if spec.symbol not in hub.symbols():
            raise StrategyStateError(f"strategy {spec.id!r} trades {spec.symbol!r}, which has no candle feed")
        try:
            orchestrator = self._factory.get_or_create(spec)
        except BaseException:  # cleanup on any exit: the account was opened before the strategy's own code refused to build
            self._release_account(spec.id)
            raise
        try:
            for symbol, timeframe in orchestrator.subscriptions():
                hub.check(symbol, timeframe)
        except (KeyError, ValueError) as exc:
            orchestrator.lifecycle.to("unloaded")
            self._factory.evict(spec.id)
            self._release_account(spec.id)
            raise StrategyStateError(f"strategy {spec.id!r}: {exc}") from None
        # Only once none is refused: a stream derived for a refused load would be aggregated on every candle for nothing.
        for symbol, timeframe in orchestrator.subscriptions():
            hub.require(symbol, timeframe)
        orchestrator.lifecycle.to("dormant")
        if announce:
            self._announce(orchestrator, "loaded")
        return orchestrator

    def activate(self, strategy_id: str) -> None:
        """Warm the strategy's indicators from history, then route candles to it."""
        orchestrator = self.get(strategy_id)
        if orchestrator.state == "active":
            raise StrategyStateError(f"strategy {strategy_id!r} is already active")
        self._warm(orchestrator)
        self._route_active(orchestrator)

    def _warm(self, orchestrator: TradingOrchestrator) -> None:
        hub = self._services.hub
        history = {(symbol, tf): hub.history(symbol, tf) for symbol, tf in orchestrator.subscriptions()}
        error = attempt(orchestrator.warm_up, history, self._paused_at.pop(orchestrator.strategy_id, None))
        if error is not None:
            self._fault(orchestrator, "warm_up", error)
            raise StrategyError(orchestrator.strategy_id, error) from error

    def _route_active(self, orchestrator: TradingOrchestrator) -> None:
        orchestrator.lifecycle.require("active")  # refused before its routes change
        self._remove(self._protect, orchestrator)
        # Candles queued under its dormant role: positions see them now, warm-up already fed the
        # indicators from history, and they must not merge with candles of its new role.
        self._protect_dropped(orchestrator, self.delivery.reset(orchestrator))
        self._add_active(orchestrator)
        orchestrator.lifecycle.to("active")
        orchestrator.policy = None
        orchestrator.last_error = None
        self._announce(orchestrator, "activated")

    def deactivate(self, strategy_id: str, policy: Policy = "manage") -> None:
        """Stop new entries; `manage` keeps enforcing exits, `close` closes positions, `freeze` leaves them."""
        if policy not in POLICIES:
            raise ValueError(f"unknown position policy {policy!r} (use one of {', '.join(POLICIES)})")
        orchestrator = self.get(strategy_id)
        if orchestrator.state not in ("active", "failed"):
            raise StrategyStateError(f"strategy {strategy_id!r} is {orchestrator.state}, not active")
        orchestrator.lifecycle.require("dormant")
        was_active = orchestrator.state == "active"
        self._remove(self._active, orchestrator)
        self._remove(self._protect, orchestrator)
        dropped = self.delivery.reset(orchestrator)
        if was_active:
            # Everything in the hub's history was delivered to it, except what was still queued.
            hub = self._services.hub
            paused = {
                (symbol, tf): candles[-1].ts for symbol, tf in orchestrator.subscriptions() if (candles := hub.history(symbol, tf, limit=1))
            }
            for symbol, tf, candle, _ in dropped:
                paused[(symbol, tf)] = min(paused.get((symbol, tf), candle.ts), candle.ts - 1)
            self._paused_at[strategy_id] = paused
        orchestrator.lifecycle.to("dormant")
        # No new entries once it stops trading: an entry decided on the last candle must not
        # fill afterwards, not even on candles that were still queued. Pending closes stay
        # (except under freeze, which leaves everything).
        orchestrator.positions.cancel_pending(entries_only=policy != "freeze")
        if policy != "freeze":
            # The candles still queued are caught up before the policy is set: under close, the
            # protecting route would close at the first of them, at a price from before the command.
            self._protect_dropped(orchestrator, dropped)
        orchestrator.policy = policy
        if policy != "freeze":
            if policy == "close":
                orchestrator.close_all("deactivate")
            self._add_protect(orchestrator)
        self._announce(orchestrator, "deactivated")

    def switch(self, from_id: str, to_id: str, policy: Policy = "manage") -> None:
        """Deactivate one strategy and activate another as one step: later candles reach only the second."""
        source = self.get(from_id)
        target = self.get(to_id)
        if source.state != "active":
            raise StrategyStateError(f"strategy {from_id!r} is {source.state}, not active")
        if target.state == "active":
            raise StrategyStateError(f"strategy {to_id!r} is already active")
        if policy not in POLICIES:
            raise ValueError(f"unknown position policy {policy!r}")
        # Warm the target first: if its code raises, nothing has changed for the source.
        self._warm(target)
        self.deactivate(from_id, policy)
        self._route_active(target)

    def reconfigure(self, strategy_id: str, spec: StrategyConfig) -> list[str]:
        """Give a loaded strategy a new config (`set`); return the top-level fields changed.

        Runtime fields (quantity, exits, fees, ...) apply in place. New params (or analyzers,
        filters) rebuild the strategy object inside the same orchestrator, with indicators of
        its own: built, checked against the feeds and, while it is active, warmed from the hub's
        history as `activate` warms it, all before anything changes, so a refusal leaves the
        running one as it was. Its positions, orders, portfolio, actions and counters stay;
        candles still queued for it reach its positions only (as on any change of its routing),
        and the next candle reaches the new object. A dormant or failed one is warmed when
        activated. ValueError for fields that cannot change in place, StrategyError when the
        strategy's code raises, StrategyStateError when a stream it would read has no feed or
        it would stop reading a symbol it holds positions or orders on.
        """
        orchestrator = self.get(strategy_id)
        changed = orchestrator.changes(spec, RUNTIME_FIELDS | REBUILT_FIELDS)
        if not REBUILT_FIELDS.intersection(changed):
            return orchestrator.reconfigure(spec)
        build = self._factory.prepare(spec)
        self._check_streams(orchestrator, build)
        active = orchestrator.state == "active"
        hub = self._services.hub
        if active:
            # A stream it did not read yet is derived from the base history for the warm-up
            # only: the hub aggregates it on every candle once nothing can refuse.
            error = attempt(build.warm_up, {key: hub.preview(*key) for key in build.streams})
            if error is not None:  # the new object's code: refused, the running one untouched
                raise StrategyError(strategy_id, error) from error
        # Nothing refuses from here on. Candles queued for it are in the history the new object
        # was warmed from: its positions see them, its new indicators must not see them twice.
        for symbol, timeframe in build.streams:
            hub.require(symbol, timeframe)
        self._protect_dropped(orchestrator, self.delivery.reset(orchestrator))
        orchestrator.install(build)
        # Its indicators are new: an activation warms them from the whole history, not from the pause.
        self._paused_at.pop(strategy_id, None)
        if active:
            self._reroute(self._active, orchestrator, orchestrator.subscriptions(), lambda key: self.delivery.wrap(orchestrator, orchestrator.handler_for(*key)))
        elif any(o is orchestrator for routed in self._protect.values() for o, _ in routed):
            protect = self.delivery.wrap(orchestrator, orchestrator.protect)
            self._reroute(self._protect, orchestrator, orchestrator.trading_streams(), lambda _: protect)
        orchestrator.log.info(
            "%s changed: strategy rebuilt, reading %s", ", ".join(changed), ", ".join(f"{symbol} {tf}" for symbol, tf in build.streams)
        )
        if active and not orchestrator.is_warm():
            # It trades on cold indicators until enough candles close: as good as a strategy loaded with no history.
            orchestrator.log.warning("not warm after the change: %s", describe_cold(self.cold(strategy_id)))
        return changed

    def cold(self, strategy_id: str) -> list[ColdStream]:
        """The streams whose indicators a strategy has not warmed yet, with the candles of history the hub holds for each."""
        orchestrator = self.get(strategy_id)
        hub = self._services.hub
        return [
            ColdStream(symbol, timeframe, len(hub.history(symbol, timeframe)), keys)
            for (symbol, timeframe), keys in orchestrator.cold_streams()
        ]

    def _check_streams(self, orchestrator: TradingOrchestrator, build: StrategyBuild) -> None:
        """A rebuilt strategy's streams: each has a feed, shares its quote currency, and it still reads every symbol it holds something on."""
        sid = orchestrator.strategy_id
        hub = self._services.hub
        for symbol, timeframe in build.streams:
            if symbol not in hub.symbols():
                raise StrategyStateError(f"strategy {sid!r} would read {symbol!r}, which has no candle feed")
            mixed = mixed_currency_problem(build.spec.symbol, symbol)
            if mixed is not None:
                raise ValueError(mixed)
            try:
                hub.check(symbol, timeframe)  # derived only once nothing refuses: see reconfigure
            except ValueError as exc:
                raise StrategyStateError(f"strategy {sid!r}: {exc}") from None
        positions = orchestrator.positions
        held = {p.symbol for p in positions.positions.values()} | {o.symbol for o in positions.pending_orders()}
        dropped = sorted(held - {symbol for symbol, _ in build.trading_streams()})
        if dropped:
            raise StrategyStateError(
                f"strategy {sid!r} holds positions or orders on {', '.join(dropped)}, which it would no longer read: close them first"
            )

    def restore_state(self, strategy_id: str, state: str, policy: str | None, last_error: str | None) -> None:
        """Put a loaded strategy back into a journalled state (crash recovery) before candles flow."""
        orchestrator = self.get(strategy_id)
        if state == "active":
            self.activate(strategy_id)
            return
        restored = _RESTORABLE.get(state)
        if restored is None:
            raise StrategyStateError(f"cannot restore strategy {strategy_id!r} to state {state!r}")
        orchestrator.lifecycle.to(restored)
        orchestrator.policy = policy
        orchestrator.last_error = last_error
        # Dormant under manage/close and failed strategies keep their positions protected.
        if state == "failed" or policy in ("manage", "close"):
            self._add_protect(orchestrator)
        if state == "failed":
            # A failed strategy takes no entry: one the journal still has pending (its cancel went with
            # a turn that could not be journalled) is cancelled now, not filled by its protecting route.
            orchestrator.positions.cancel_pending(entries_only=True)
        self._announce(orchestrator, "restored")

    def discard(self, strategy_id: str) -> None:
        """Forget a strategy that could not be restored, publishing nothing and touching no order.

        Its journalled book stays as it was, for a later start that can restore it: its account
        leaves the gateway too, so start-up reconciliation does not book its orders.
        """
        orchestrator = self.get(strategy_id)
        self._remove(self._active, orchestrator)
        self._remove(self._protect, orchestrator)
        self.delivery.detach(orchestrator)
        self._paused_at.pop(strategy_id, None)
        orchestrator.lifecycle.to("unloaded")
        self._factory.evict(strategy_id)
        self._detach(orchestrator, close_positions=False)

    def unload(self, strategy_id: str, close_positions: bool = False) -> dict[str, Any]:
        """Run the cleanup sequence and evict the strategy; return its final state snapshot.

        Stop routing, carry out queued actions, optionally close positions at the last
        price, take the snapshot, clear indicator state, evict from the cache.
        """
        orchestrator = self.get(strategy_id)
        orchestrator.lifecycle.require("unloaded")
        self._remove(self._active, orchestrator)
        self._remove(self._protect, orchestrator)
        if orchestrator.state != "dormant" or orchestrator.policy != "freeze":
            self._protect_dropped(orchestrator, self.delivery.reset(orchestrator))
        self.delivery.detach(orchestrator)
        orchestrator.actions.drain()
        orchestrator.positions.cancel_pending()
        if close_positions:
            orchestrator.positions.close_all_now("unload")
        orchestrator.lifecycle.to("unloaded")
        snapshot = orchestrator.snapshot()
        orchestrator.clear()
        self._paused_at.pop(strategy_id, None)
        self._announce(orchestrator, "unloaded")
        self._factory.evict(strategy_id)
        self._detach(orchestrator, close_positions)
        return snapshot

    # -- orders that outlive their strategy (live) ------------------------------------------------
    def settling(self) -> dict[str, list[str]]:
        """Unloaded strategies whose orders are still in flight, with those orders' client ids."""
        if self._accounts is None:
            return {}
        return {sid: self._accounts.in_flight(sid) for sid in self._settling}

    def settle(self) -> list[str]:
        """Close the accounts of unloaded strategies whose orders have all had their outcome; return their ids (call it periodically).

        After an unload that closed positions, a position opened since by an entry that was in
        flight is closed at market too: such an unload leaves nothing open.
        """
        settled: list[str] = []
        for sid in list(self._settling):
            entry = self._settling[sid]
            error = attempt(self._settle, sid, entry, settled)
            if error is not None:  # its bookkeeping's problem: reported, the others settle on
                self._fault(entry.orchestrator, "settle", error)
        return settled

    def adopt_restored(self, strategy_id: str) -> list[str]:
        """Have the gateway look up the pending orders a strategy loaded while trading took back from the journal; return their ids."""
        return [] if self._accounts is None else self._accounts.adopt_restored(strategy_id)

    def _settle(self, strategy_id: str, entry: _Settling, settled: list[str]) -> None:
        assert self._accounts is not None
        if entry.close_positions:
            positions = entry.orchestrator.positions
            for position in list(positions.positions.values()):
                if position.id in entry.seen:
                    continue
                entry.seen.add(position.id)  # one close each: a refused close is not sent again and again
                quantity = position.open_quantity
                if quantity > 0:
                    price = positions.last_price(position.symbol) or position.entry_price
                    positions.submit_close(position, quantity, "unload", self._services.clock.now_ms(), price)
        if self._accounts.close_account(strategy_id):
            return
        del self._settling[strategy_id]
        entry.orchestrator.lifecycle.to("unloaded")
        entry.orchestrator.log.info("the orders in flight after its unload have settled: its exchange account is closed")
        settled.append(strategy_id)

    def _in_flight(self, strategy_id: str) -> list[str]:
        if self._accounts is None:
            return []
        if strategy_id in self._settling:
            self.settle()  # done since the last periodic settle?
        return self._accounts.in_flight(strategy_id)

    def _detach(self, orchestrator: TradingOrchestrator, close_positions: bool) -> None:
        """Close an evicted strategy's account on the gateway, or keep it settling while orders of it are in flight."""
        if self._accounts is None:
            return
        sid = orchestrator.strategy_id
        waiting = self._accounts.close_account(sid)
        if waiting:
            orchestrator.lifecycle.to("settling")
            self._settling[sid] = _Settling(orchestrator, close_positions, set(orchestrator.positions.positions))
            orchestrator.log.warning(
                "unloaded with %d order(s) in flight (%s): their outcomes are still booked and journalled", len(waiting), ", ".join(waiting)
            )

    def _release_account(self, strategy_id: str) -> None:
        if self._accounts is not None:
            self._accounts.close_account(strategy_id)

    # -- routing --------------------------------------------------------------------------------
    def on_candle(self, symbol: str, timeframe: str, candle: Candle, ts: int) -> None:
        """Deliver one closed candle to every orchestrator subscribed to its stream (as the hub does, through the guard)."""
        key = (symbol, timeframe)
        deliver_stream(self._active, self._protect, key, self._trade_failed, self._protect_failed, self._protected, symbol, timeframe, candle, ts)

    def _protected(self, routes: tuple[_Route, ...]) -> None:
        for orchestrator, _ in routes:
            # Nothing left to protect (a failed one was removed already: removing is idempotent).
            if orchestrator.state == "dormant" and not orchestrator.positions.positions and not orchestrator.positions.pending_orders():
                self._remove(self._protect, orchestrator)

    def on_history(self, symbol: str, timeframe: str, candle: Candle, ts: int) -> None:
        """A candle that is history when it closes (a replay's higher-timeframe candle that opened before --from): the
        strategies trading on its stream warm up on it, nothing trades on it.

        Called directly, not through `delivery`: only a replay's preload makes such candles, and replay delivers directly.
        """
        routes = self._active.get((symbol, timeframe), ())
        for orchestrator, _ in routes:
            error = attempt(orchestrator.on_history, symbol, timeframe, candle, ts)
            if error is not None:
                self._fault(orchestrator, "trade", error)
        if self._router is not None:
            self._router.history(routes, symbol, timeframe, candle, ts)

    def release_symbol(self, symbol: str) -> None:
        """Stop listening to a symbol's candles; StrategyStateError while a loaded or settling strategy uses it."""
        users = [
            sid
            for sid, orchestrator in [*((sid, self.get(sid)) for sid in self.ids()), *((sid, s.orchestrator) for sid, s in self._settling.items())]
            if any(key[0] == symbol for key in orchestrator.subscriptions())
        ]
        if users:
            raise StrategyStateError(f"{symbol} is used by {', '.join(users)}: unload them first")
        for key in [k for k in self._hub_routes if k[0] == symbol]:
            self._services.hub.unsubscribe(key[0], key[1], self._hub_routes.pop(key))

    def _ensure_hub_route(self, key: _Key) -> None:
        if key not in self._hub_routes:
            # The hub calls the guard's delivery straight, with this stream's key and the
            # manager's tables bound: no frame of the manager's own per candle.
            deliver = deliver_stream if self._router is None else self._router.deliver
            route = partial(deliver, self._active, self._protect, key, self._trade_failed, self._protect_failed, self._protected)
            self._services.hub.subscribe(key[0], key[1], route, self.on_history)
            self._hub_routes[key] = route

    def _reroute(self, table: dict[_Key, tuple[_Route, ...]], orchestrator: TradingOrchestrator, keys: list[_Key], handler: Callable[[_Key], _Handler]) -> None:
        """Route `orchestrator` on exactly `keys`: a stream it keeps keeps its route, and its place among the
        other strategies' (a route calls the orchestrator, whatever strategy object it holds); new ones come last."""
        wanted = set(keys)
        for key in [k for k, routed in table.items() if k not in wanted and any(o is orchestrator for o, _ in routed)]:
            remaining = tuple(route for route in table[key] if route[0] is not orchestrator)
            if remaining:
                table[key] = remaining
            else:
                del table[key]
        for key in keys:
            routed = table.get(key, ())
            if not any(o is orchestrator for o, _ in routed):
                self._ensure_hub_route(key)
                table[key] = routed + ((orchestrator, handler(key)),)

    def _add_active(self, orchestrator: TradingOrchestrator) -> None:
        for key in orchestrator.subscriptions():
            self._ensure_hub_route(key)
            handler = self.delivery.wrap(orchestrator, orchestrator.handler_for(*key))
            self._active[key] = self._active.get(key, ()) + ((orchestrator, handler),)

    def _add_protect(self, orchestrator: TradingOrchestrator) -> None:
        handler = self.delivery.wrap(orchestrator, orchestrator.protect)
        for key in orchestrator.trading_streams():
            self._ensure_hub_route(key)
            self._protect[key] = self._protect.get(key, ()) + ((orchestrator, handler),)

    @staticmethod
    def _remove(table: dict[_Key, tuple[_Route, ...]], orchestrator: TradingOrchestrator) -> None:
        for key, routed in list(table.items()):
            if any(o is orchestrator for o, _ in routed):
                remaining = tuple(route for route in routed if route[0] is not orchestrator)
                if remaining:
                    table[key] = remaining
                else:
                    del table[key]

    def on_handler_error(self, orchestrator: TradingOrchestrator, handler: object, exc: Exception) -> None:
        """A queued candle's handler raised (the delivery caught it through the guard): a failing protect stops protection, anything else fails the strategy.

        A turn that could not be journalled is handled alike whatever it was for: its state may have
        changed while the commit was pending, and what it holds in memory is ahead of the journal.
        """
        if isinstance(exc, TurnNotJournalled):
            self._not_journalled(orchestrator, exc)
            return
        # A protecting turn whose failure comes back once it was activated (the commit was pending): its routes are active ones now.
        protecting = handler == orchestrator.protect and orchestrator.state != "active"
        self._fault(orchestrator, "protect" if protecting else "trade", exc)

    def on_booking_error(self, strategy_id: str, exc: BaseException) -> None:
        """Booking an exchange's fill or refusal failed in a strategy's code: an active strategy is marked failed."""
        orchestrator = self._factory.get(strategy_id)
        if orchestrator is None and strategy_id in self._settling:
            orchestrator = self._settling[strategy_id].orchestrator  # unloaded: reported, nothing to fail
        if orchestrator is None or not isinstance(exc, Exception):
            return
        self._fault(orchestrator, "booking", exc)

    def _protect_dropped(self, orchestrator: TradingOrchestrator, dropped: list[tuple[str, str, Candle, int]]) -> None:
        """Show candles that were queued when its role changed to its positions (stops, take-profits)."""
        for symbol, timeframe, candle, ts in dropped:
            error = attempt(orchestrator.catch_up, symbol, timeframe, candle, ts)
            if error is not None:
                self._fault(orchestrator, "catch_up", error)
                return

    # -- faults: what its code raised, handled by what it was called for ----------------------------
    def _trade_failed(self, orchestrator: TradingOrchestrator, exc: Exception) -> None:
        self._fault(orchestrator, "trade", exc)

    def _protect_failed(self, orchestrator: TradingOrchestrator, exc: Exception) -> None:
        self._fault(orchestrator, "protect", exc)

    def _fault(self, orchestrator: TradingOrchestrator, stage: Stage, exc: Exception) -> None:
        """The one response to a strategy's failure (bot.strategy.guard): it fails, or loses what failed, alone."""
        match stage:
            case "trade":
                if isinstance(exc, TurnNotJournalled):
                    self._not_journalled(orchestrator, exc)
                elif orchestrator.state == "active":
                    self._fail(orchestrator, exc)
                else:  # its committed turn's send or subscriber failed after it stopped trading
                    self._report_error(orchestrator, exc, "after its turn")
            case "warm_up":
                orchestrator.lifecycle.to("failed")
                orchestrator.last_error = described(exc)[0]
                self._report_error(orchestrator, exc, "warm-up failed; strategy not activated")
                self._remove(self._protect, orchestrator)
                self._add_protect(orchestrator)  # its positions stay protected by their stops
                self._announce(orchestrator, "failed")
            case "protect":
                self._remove(self._protect, orchestrator)
                self.delivery.reset(orchestrator)
                self._report_error(orchestrator, exc, "while protecting positions; no longer routed")
            case "catch_up":
                self._report_error(orchestrator, exc, "while protecting positions")
            case "booking":
                if orchestrator.state == "active":
                    self._fail(orchestrator, exc)
                else:
                    self._report_error(orchestrator, exc, "while booking an exchange fill")
            case "settle":
                self._report_error(orchestrator, exc, "while settling its orders after its unload")
            case _:
                assert_never(stage)

    def _not_journalled(self, orchestrator: TradingOrchestrator, exc: TurnNotJournalled) -> None:
        """A turn of it (deciding or protecting) could not be journalled; its state may have changed while the commit was pending.

        What it holds in memory is ahead of the journal whatever it is now: it fails, never silently.
        """
        if orchestrator.state == "active":
            self._fail(orchestrator, exc)
        elif orchestrator.state == "failed":
            # Failed in that turn: the failure it announced, and the cancel of its resting entries,
            # went with the turn. Both again, now that no turn is open.
            orchestrator.positions.cancel_pending(entries_only=True)
            self._report_error(orchestrator, exc, "its turn could not be journalled")
            self._announce(orchestrator, "failed")
        elif orchestrator.state == "dormant":
            # Deactivated meanwhile: failed instead, its positions protected by the failed role's routes.
            self._remove(self._protect, orchestrator)
            orchestrator.policy = None
            self._fail(orchestrator, exc)
        else:  # unloaded (or settling) meanwhile: nothing left to fail
            self._report_error(orchestrator, exc, "its turn could not be journalled")

    def _fail(self, orchestrator: TradingOrchestrator, exc: Exception) -> None:
        orchestrator.lifecycle.require("failed")
        self._remove(self._active, orchestrator)
        dropped = self.delivery.reset(orchestrator)
        orchestrator.actions.clear()
        orchestrator.positions.cancel_pending(entries_only=True)
        orchestrator.lifecycle.to("failed")
        orchestrator.last_error = described(exc)[0]
        # Protected before anything is published: a publish that raises (the journal) must not leave them unprotected.
        self._add_protect(orchestrator)
        try:
            self._report_error(orchestrator, exc, "strategy marked failed; its positions stay protected")
        finally:
            # Taken out of its inbox above: its positions see them even if the report could not be journalled.
            self._protect_dropped(orchestrator, dropped)
        self._announce(orchestrator, "failed")

    def _report_error(self, orchestrator: TradingOrchestrator, exc: Exception, note: str) -> None:
        orchestrator.metrics.errors += 1
        error, where = described(exc)
        orchestrator.log.error("%s: %s", note, error)
        self._services.bus.publish(StrategyFault, None, orchestrator.strategy_id, error, where, note)

    def _announce(self, orchestrator: TradingOrchestrator, change: str) -> None:
        self._services.bus.publish(
            StrategyStateChanged, None, orchestrator.strategy_id, orchestrator.state, change, orchestrator.policy, orchestrator.last_error
        )
