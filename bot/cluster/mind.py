"""A strategy's mind on a worker: its indicators and strategy object, deciding on the hub's turns from a mirror of its book."""
from __future__ import annotations

import dataclasses
import os
import traceback
from collections.abc import Callable, Mapping
from time import perf_counter_ns
from typing import Any

import msgspec

from bot.bus import EventBus, StrategyPublisher
from bot.clock import ReplayClock
from bot.cluster.messages import Decision, Failure, MirrorPosition, PositionStateMsg, TurnKind, View, action_msg
from bot.config.models import StrategyConfig
from bot.errors import ActionError
from bot.event_codec import encode_message
from bot.events import ActionFailed, Event
from bot.ohlcv import Candle
from bot.strategy.base import Strategy, StrategyContext, Stream
from bot.strategy.orchestrator import StrategyBuild, build_mind
from bot.trading.actions import Action
from bot.trading.position import Position, TakeProfitLevel
from bot.trading.positions import PositionManager


class MirrorPositions:
    """A read-only copy of one strategy's positions as the hub's book last sent them (a PositionView)."""

    __slots__ = ("positions", "_by_symbol", "_pending_entries", "_marks")

    def __init__(self) -> None:
        self.positions: dict[str, Position] = {}
        self._by_symbol: dict[str, list[Position]] = {}
        self._pending_entries: frozenset[str] = frozenset()
        self._marks: dict[str, float] = {}

    def load(self, view: View) -> None:
        """Take the hub's view in place of the last one (the same object: a context binds its methods once).

        A position it already holds is updated in place, as the book updates its own: a strategy that kept
        the object sees it move and close, as in process.
        """
        held = self.positions
        current: dict[str, Position] = {}
        self._by_symbol.clear()
        for mirror in view.positions:
            position = held.get(mirror.state.position_id)
            if position is None:
                position = mirrored(mirror)
            else:
                _update(position, mirrored(mirror))
            current[position.id] = position
            self._by_symbol.setdefault(position.symbol, []).append(position)
        for mirror in view.closed:
            gone = held.get(mirror.state.position_id)
            if gone is not None:
                _update(gone, mirrored(mirror))
        held.clear()
        held.update(current)
        self._pending_entries = frozenset(view.pending_entries)
        self._marks = dict(view.marks)

    def position_on(self, symbol: str) -> Position | None:
        """The oldest open position on a symbol, if any."""
        held = self._by_symbol.get(symbol)
        return held[0] if held else None

    def is_flat(self, symbol: str) -> bool:
        """True when the symbol has no open position and no pending entry."""
        return not self._by_symbol.get(symbol) and symbol not in self._pending_entries

    def last_price(self, symbol: str) -> float | None:
        """The latest close (or fill price) the hub saw for a symbol."""
        return self._marks.get(symbol)


_FIELDS = tuple(f.name for f in dataclasses.fields(Position))


def _update(position: Position, state: Position) -> None:
    """Every field of `position` set to `state`'s; its take-profit rungs updated in place (a strategy may keep one, as the book does)."""
    rungs = position.take_profits
    for name in _FIELDS:
        setattr(position, name, getattr(state, name))
    if len(rungs) == len(state.take_profits):
        for rung, new in zip(rungs, state.take_profits, strict=True):
            rung.price, rung.quantity, rung.done = new.price, new.quantity, new.done
        position.take_profits = rungs


def mirror_of(position: Position) -> MirrorPosition:
    """A position of the hub's book as it travels to the mind."""
    return MirrorPosition(
        state=PositionStateMsg(*msgspec.structs.astuple(position.record())), pending_close=position.pending_close, trail_anchor=position.trail_anchor,
        closed_quantity=position.closed_quantity, exit_value=position.exit_value, exit_reason=position.exit_reason, exit_ts=position.exit_ts,
    )


def view_of(positions: PositionManager, symbols: list[str], closed: list[Position] | None = None) -> View:
    """What a strategy's context reads of its book, as it travels to its mind (`closed`: gone from the book since the last view)."""
    pending = sorted({order.symbol for order in positions.pending_orders() if order.intent == "open"})
    marks = {symbol: price for symbol in symbols if (price := positions.last_price(symbol)) is not None}
    return View(
        positions=[mirror_of(p) for p in positions.positions.values()], closed=[mirror_of(p) for p in closed or ()],
        pending_entries=pending, marks=marks,
    )


class ViewTaker:
    """One strategy's views on the hub: each names the positions closed since the one before, which its mind may still hold."""

    __slots__ = ("_sent",)

    def __init__(self) -> None:
        self._sent: dict[str, Position] = {}

    def take(self, positions: PositionManager, symbols: list[str]) -> View:
        """The view now; the book's own Position objects are kept until they are reported closed."""
        current = positions.positions
        closed = [p for pid, p in self._sent.items() if pid not in current]
        self._sent = dict(current)
        return view_of(positions, symbols, closed)


def mirrored(mirror: MirrorPosition) -> Position:
    """The Position a mirror record stands for, every field set (the binding stop recomputed, as a restore does)."""
    state = mirror.state
    position = Position(
        state.position_id, state.symbol, state.side, 1 if state.side == "long" else -1, state.initial_quantity, state.quantity,
        state.entry_price, state.entry_ts, state.stop_loss, [TakeProfitLevel(price, qty, done) for price, qty, done in state.take_profit],
        state.trailing_distance_pct, state.trailing_activation_price, state.trailing_active, mirror.trail_anchor, state.trailing_stop,
        ladder_closes_all=state.ladder_closes_all, break_even=state.break_even, realised=state.realised, fees=state.fees,
        exit_value=mirror.exit_value, closed_quantity=mirror.closed_quantity, pending_close=mirror.pending_close, status=state.status,
        exit_reason=mirror.exit_reason, exit_ts=mirror.exit_ts, group=state.group,
    )
    position.refresh_stop()
    return position


def describe(exc: BaseException) -> Failure:
    """An exception as the hub reports a strategy's failure: type name, message, the file:line it was raised at (file name only)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else ""
    return Failure(type_name=type(exc).__name__, message=str(exc), where=where)


class Mind:
    """One strategy's indicators and strategy object, deciding from candles and its book's view; it owns nothing of the book."""

    def __init__(self, spec: StrategyConfig, build_strategy: Callable[[StrategyContext], Strategy[Any]]) -> None:
        self.strategy_id = spec.id
        self.positions = MirrorPositions()
        self._actions: list[Action] = []
        self._events: list[msgspec.Raw] = []
        self._now = 0
        # A bus of its own: its signals are built and tagged as in process, then travel as wire messages (the hub sequences them).
        bus = EventBus(ReplayClock())
        bus.subscribe(self._collect)
        self._publish = StrategyPublisher(bus, spec.id)
        self._build: StrategyBuild = build_mind(spec, self._actions.append, self._refuse, self._publish, self.positions, self._clock, build_strategy)

    def _clock(self) -> int:
        return self._now

    def _refuse(self, action: Action, error: ActionError) -> None:
        # Announced in its place among its events; the hub counts it as its book's failed action.
        self._publish(ActionFailed, self._now, action.kind, str(error))

    def _collect(self, event: Event) -> None:
        self._events.append(msgspec.Raw(encode_message(event)))

    def subscriptions(self) -> list[Stream]:
        """The streams it reads (its trading stream first)."""
        return list(self._build.streams)

    def warm_up(self, history: Mapping[Stream, list[Candle]]) -> None:
        """Feed the hub's history to the indicators and the strategy, as its orchestrator's warm-up does."""
        try:
            self._build.warm_up(history)
        finally:
            self._forget()

    def _forget(self) -> None:
        # What the strategy announces or asks for on history is the hub's copy's to publish and queue (it runs
        # the same code on the same candles): sent again in the next decision, it would be there twice.
        self._actions.clear()
        self._events.clear()

    def decide(self, k: int, symbol: str, timeframe: str, candle: Candle, ts: int, kind: TurnKind, view: View | None) -> Decision | None:
        """Its part of turn `k`: its actions and events, or its failure; None for a history candle (nothing is decided)."""
        started = perf_counter_ns()
        self._now = ts
        build = self._build
        update = build.updates.get((symbol, timeframe))
        if kind == "history":
            try:
                if update is not None:
                    update(candle)
                    build.strategy.on_history(symbol, timeframe, candle)
            except Exception:  # noqa: BLE001, S110  the hub's copy ran the same code on this candle and reports its failure
                pass
            finally:
                self._forget()
            return None
        if view is not None:
            self.positions.load(view)
        failure = None
        try:
            if update is not None:
                update(candle)
                build.strategy.on_candle(symbol, timeframe, candle)
        except Exception as exc:  # noqa: BLE001  the seam: what a strategy raises is its failure, reported to the hub
            failure = describe(exc)
        actions = [action_msg(a) for a in self._actions] if failure is None else []
        events = list(self._events)
        self._actions.clear()
        self._events.clear()
        return Decision(k=k, sid=self.strategy_id, actions=actions, events=events, failure=failure, busy_ns=perf_counter_ns() - started)
