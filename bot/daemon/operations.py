"""The daemon's operations on a running bot: each changes the strategies, the feed and the journal together, or refuses.

Refusals are the project's own errors (bot/errors.py), raised before anything changes unless
said otherwise: UnknownStrategyError for an id that is not loaded, StrategyStateError and
FeedStateError for what the current state does not allow, ConfigError for a file or value that
does not validate, ChangeRefused for a change a running strategy cannot take in place, and
StrategyError when a strategy's own code raises. Journal effects are meta keys (bot/daemon/recovery.py
names them) that let a restart put back what an operation changed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import orjson

from bot.candles.reader import infer_timeframe
from bot.candles.sources import CandleSource
from bot.config.currency import quote_currency
from bot.config.loader import deep_merge
from bot.config.models import RUNTIME_FIELDS, StrategyConfig
from bot.daemon import heap
from bot.daemon.recovery import (
    ADDED_SYMBOL,
    KILL_SWITCH,
    OVERRIDES,
    STRATEGY_FILE,
    restore_orchestrator,
)
from bot.daemon.state import DaemonState
from bot.errors import ChangeRefused, FeedStateError, MoveRefused, StrategyError, StrategyStateError
from bot.ohlcv import timeframe_ms
from bot.strategy.config_load import changed_strategy, load_strategy
from bot.strategy.manager import Policy
from bot.strategy.orchestrator import REBUILT_FIELDS, TradingOrchestrator
from bot.symbols import shown

# Why a field is refused in place, where there is more to say than "unload and load".
_FROZEN_WHY: dict[str, str] = dict.fromkeys(("symbol", "timeframe"), "its positions and orders are on its symbol and timeframe")


@dataclass(frozen=True, slots=True)
class Unloaded:
    """What `unload` leaves: the strategy's final snapshot, its money's currency, and its orders still in flight (live)."""

    snapshot: dict[str, Any]
    currency: str
    settling: list[str]


@dataclass(frozen=True, slots=True)
class ParamSet:
    """What `set_param` changed: the top-level fields, the value at the path before and after, and how warm a rebuilt strategy is."""

    strategy_id: str
    changed: list[str]
    old: Any
    new: Any
    # Only when its indicators were rebuilt: whether the history warmed them all.
    warm: bool | None = None
    # Only when active and not warm: the streams whose indicators are cold (ColdStream.as_dict each).
    cold: list[dict[str, Any]] | None = None


@dataclass(frozen=True, slots=True)
class AddedSymbol:
    """A symbol `add_symbol` gave a feed: its timeframe and the candles of history that warmed it."""

    symbol: str
    timeframe: str
    history: int


def read_strategy(state: DaemonState, path: Path) -> StrategyConfig:
    """A strategy file validated as this daemon validates its strategies; ConfigError with every problem."""
    return load_strategy(path, state.loaded.bot, str(state.loaded.path), catalog=state.loaded.catalog)


def load(state: DaemonState, spec: StrategyConfig, path: Path, *, activate: bool = False) -> str:
    """Load a strategy dormant (optionally activating it), taking back its journalled book; return its state.

    Journalled: its file (a restart loads it again from there) and no runtime changes. A strategy
    loaded before and unloaded without closing gets its open positions, pending orders and id
    numbering back (ids are never reused); live, the gateway looks up those orders. Refused:
    StrategyStateError (already loaded, orders of it still settling), StrategyError; an
    activation refused after the load leaves it loaded.
    """
    orchestrator = state.manager.load(spec)
    state.strategy_files[spec.id] = path
    if state.journal is not None:
        state.journal.set_meta(STRATEGY_FILE + spec.id, str(path))
        state.journal.set_meta(OVERRIDES + spec.id, "")
        restore_orchestrator(state.journal, orchestrator, state.services.hub)
        # Orders pending when it was unloaded (or not restored at start) may have filled or ended since.
        state.manager.adopt_restored(spec.id)
        if orchestrator.positions.positions or orchestrator.positions.pending_orders():
            # A book came back: its stops are enforced from now on, as under `manage`.
            state.manager.restore_state(spec.id, "dormant", "manage", None)
    if activate:
        state.manager.activate(spec.id)
    heap.settle()
    return state.manager.get(spec.id).state


def unload(state: DaemonState, strategy_id: str, *, close_positions: bool = False) -> Unloaded:
    """Unload a strategy (its book stays in the journal unless closed); UnknownStrategyError if not loaded."""
    currency = quote_currency(state.manager.get(strategy_id).symbol)
    snapshot = state.manager.unload(strategy_id, close_positions=close_positions)
    state.strategy_files.pop(strategy_id, None)
    heap.release()
    return Unloaded(snapshot, currency, state.manager.settling().get(strategy_id, []))


def activate(state: DaemonState, strategy_id: str) -> None:
    """Warm up a strategy and route candles to it (a failed one too); StrategyStateError, StrategyError."""
    state.manager.get(strategy_id)
    state.manager.activate(strategy_id)


def deactivate(state: DaemonState, strategy_id: str, policy: Policy) -> None:
    """Stop a strategy's new entries; its positions as `policy` says. StrategyStateError."""
    state.manager.get(strategy_id)
    state.manager.deactivate(strategy_id, policy)


def switch(state: DaemonState, source: str, target: str, policy: Policy) -> None:
    """Deactivate `source` and activate `target` as one step; StrategyStateError, StrategyError."""
    state.manager.get(source)
    state.manager.get(target)
    state.manager.switch(source, target, policy)


def reload(state: DaemonState, strategy_id: str) -> list[str]:
    """Apply a strategy's file again (runtime fields only); return the fields changed. Journalled: no runtime changes.

    StrategyStateError without a file, ConfigError for an invalid one, ChangeRefused when it
    changes a field that needs an unload and load.
    """
    orchestrator = state.manager.get(strategy_id)
    path = state.strategy_files.get(strategy_id)
    if path is None:
        raise StrategyStateError(f"strategy {strategy_id!r} has no file to reload from")
    spec = read_strategy(state, path)
    try:
        changed = orchestrator.reconfigure(spec)
    except ValueError as exc:
        raise ChangeRefused(f"{spec.id}: {exc}: unload and load it again to change them") from None
    if state.journal is not None:
        state.journal.set_meta(OVERRIDES + strategy_id, "")  # the file is the whole truth again
    return changed


def set_param(state: DaemonState, strategy_id: str, path: str, value: Any) -> ParamSet:
    """Change one field by dotted path, validated as its strategy file would be; journalled with earlier changes so a restart keeps them.

    ConfigError when the value does not validate (its problems name the client's own path and
    value), ChangeRefused for a field that cannot change in place or a strategy refusing the
    change, StrategyStateError when the change would leave a stream without feed or a held symbol unread.
    """
    orchestrator = state.manager.get(strategy_id)
    update: Any = value
    for part in reversed(path.split(".")):
        update = {part: update}
    before = orchestrator.spec
    changed, warm, cold = _reconfigure(state, orchestrator, update)
    if state.journal is not None:
        key = OVERRIDES + strategy_id
        previous = state.journal.get_meta(key)
        overrides = deep_merge(orjson.loads(previous) if previous else {}, update)
        state.journal.set_meta(key, orjson.dumps(overrides).decode())
    return ParamSet(strategy_id, changed, _at(before, path), _at(orchestrator.spec, path), warm, cold)


def _reconfigure(state: DaemonState, orchestrator: TradingOrchestrator, update: dict[str, Any]) -> tuple[list[str], bool | None, list[dict[str, Any]] | None]:
    """Apply `update` to a strategy's config; the fields changed, and (after a rebuild) whether it is warm and which streams are cold."""
    sid = orchestrator.strategy_id
    spec = changed_strategy(orchestrator.spec, update, state.loaded.catalog, sid)
    try:
        orchestrator.changes(spec, RUNTIME_FIELDS | REBUILT_FIELDS)
    except ValueError as exc:
        file = state.strategy_files.get(sid)
        where = "its strategy file" if file is None else _relative(file, state.loaded.base_dir)
        why = next((f" ({_FROZEN_WHY[field]})" for field in update if field in _FROZEN_WHY), "")
        raise ChangeRefused(f"{sid}: {exc}{why}: change the field in {where}, then unload and load the strategy") from None
    try:
        # New params (or analyzers, filters) rebuild the strategy object in place: built and warmed before anything changes.
        changed = state.manager.reconfigure(sid, spec)
    except StrategyError as exc:
        cause = exc.cause
        raise ChangeRefused(f"{sid}: not changed, the strategy refused it: {type(cause).__name__}: {cause}") from None
    except ValueError as exc:
        raise ChangeRefused(f"{sid}: not changed: {exc}") from None
    except StrategyStateError as exc:
        raise StrategyStateError(f"{sid}: not changed: {exc}") from None
    if not REBUILT_FIELDS.intersection(changed):
        return changed, None, None
    # New indicators are only as warm as the history lets them be: a new higher timeframe
    # may have too little of it, and the strategy then acts on cold indicators.
    warm = orchestrator.is_warm()
    cold = [stream.as_dict() for stream in state.manager.cold(sid)] if not warm and orchestrator.state == "active" else None
    return changed, warm, cold


def _relative(path: Path, base: Path) -> str:
    """A file as a client names it: relative to config.json's folder when inside it."""
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except (OSError, ValueError):
        return str(path)


def _at(spec: StrategyConfig, path: str) -> Any:
    """The value at a dotted path of a strategy's config (None where the path leads nowhere)."""
    node: Any = spec.model_dump(mode="json")
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def check_symbol_addable(state: DaemonState, symbol: str) -> None:
    """FeedStateError unless the feed can take `symbol` now: a recorded feed, playing, without it."""
    if symbol in state.services.hub.symbols():
        raise FeedStateError(f"{symbol} already has a candle feed")
    if state.feed.source != "recorded":
        raise FeedStateError(f"adding a symbol at runtime needs the recorded feed (feed.source is {state.feed.source}): add {symbol} to exchange.feed.symbols and restart")
    if state.feed.state != "playing":
        raise FeedStateError(f"the feed is {state.feed.state}, not playing")


def add_symbol(state: DaemonState, symbol: str, path: Path, timeframe: str | None = None) -> AddedSymbol:
    """Give `symbol` a feed from a recorded file mid-session, its past candles warming the history first; journalled so a restart adds it again.

    `timeframe` defaults to the file's own. FeedStateError (see `check_symbol_addable`), and for
    the file CandleFileError, ValueError or OSError; a refused file leaves nothing behind.
    """
    check_symbol_addable(state, symbol)
    timeframe = timeframe or infer_timeframe(path)
    timeframe_ms(timeframe)
    warmed = state.feed.add_source(CandleSource(symbol, path, timeframe), state.services.clock.now_ms())
    state.added_symbols[symbol] = {"file": str(path), "timeframe": timeframe}
    if state.journal is not None:
        state.journal.set_meta(ADDED_SYMBOL + symbol, orjson.dumps({"path": str(path), "timeframe": timeframe}).decode())
    return AddedSymbol(symbol, timeframe, warmed)


def remove_symbol(state: DaemonState, symbol: str) -> None:
    """Stop the feed of a symbol added at runtime that no loaded strategy uses; journalled. FeedStateError, StrategyStateError."""
    if symbol not in state.added_symbols:
        raise FeedStateError(f"{shown(symbol)} was not added at runtime (added: {', '.join(sorted(state.added_symbols)) or 'none'})")
    state.manager.release_symbol(symbol)
    state.feed.remove_source(symbol)
    del state.added_symbols[symbol]
    if state.journal is not None:
        state.journal.delete_meta(ADDED_SYMBOL + symbol)


@runtime_checkable
class MindMover(Protocol):
    """A delivery whose strategies decide on workers (bot.cluster.lanes.RemoteLanes): it moves a strategy's mind to another."""

    def move(self, owner: TradingOrchestrator, worker: str) -> str | None:
        """Move `owner`'s mind to `worker` at its next turn; the worker it decides on now (None: not placed yet). MoveRefused."""
        ...


def move(state: DaemonState, strategy_id: str, worker: str) -> str | None:
    """Move a strategy's mind to `worker` (its book stays on the hub); where it decided before. MoveRefused, StrategyStateError."""
    orchestrator = state.manager.get(strategy_id)
    delivery = state.manager.delivery
    if not isinstance(delivery, MindMover):
        raise MoveRefused(f"{strategy_id}: strategies decide in this process (the config's cluster.placement is not \"workers\"): nothing to move")
    return delivery.move(orchestrator, worker)


def risk_reset(state: DaemonState) -> bool:
    """Release the kill switch (an operator's decision), journalled; return whether it was engaged."""
    was = state.services.risk.kill_switch
    state.services.risk.reset_kill_switch()
    if state.journal is not None:
        state.journal.set_meta(KILL_SWITCH, "")
    return was


def shutdown(state: DaemonState) -> None:
    """Begin the daemon's graceful stop."""
    state.request_stop()
