"""The control commands: each validates its args with its own model and acts on the running daemon."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.config.currency import quote_currency
from bot.config.loader import MAX_CONFIG_BYTES, LoadedConfig, changed_strategy, deep_merge, load_config, load_strategy
from bot.config.models import RUNTIME_FIELDS, BotConfig, StrategyConfig
from bot.control.files import MAX_FILE_ARG, FileAccess
from bot.control.redact import Redactor, schema_words
from bot.control.protocol import ControlError, validate_args
from bot.daemon import heap
from bot.daemon.live_feed import DaemonFeed, FeedCannotAddSymbol
from bot.daemon.recovery import ADDED_SYMBOL, KILL_SWITCH, OVERRIDES, STRATEGY_FILE, restore_orchestrator
from bot.journal import Journal
from bot.candles.model import timeframe_ms
from bot.candles.reader import infer_timeframe
from bot.errors import BotError, CandleFileError, ConfigError, StrategyError, StrategyStateError, UnknownStrategyError
from bot.replay.sources import CandleSource
from bot.events import EVENT_TYPES
from bot.services import BotServices
from bot.symbols import MAX_SYMBOL_LENGTH, shown, symbol_problem
from bot.strategy.manager import StrategyManager
from bot.strategy.orchestrator import REBUILT_FIELDS, TradingOrchestrator


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class NoArgs(_Args):
    """Commands without arguments."""


# Bounds on what a client may send, checked before anything else looks at it.
_ID = 128
_FILE = MAX_FILE_ARG
_PATH = 256


class StrategyArg(_Args):
    """One strategy id."""

    id: str = Field(min_length=1, max_length=_ID)


class OptionalStrategyArg(_Args):
    """An optional strategy id (all strategies when omitted)."""

    id: str | None = Field(default=None, min_length=1, max_length=_ID)


class LoadArgs(_Args):
    """load: a strategy file (relative to config.json's folder), optionally activated at once."""

    file: str = Field(min_length=1, max_length=_FILE)
    activate: bool = False


class UnloadArgs(_Args):
    """unload: a strategy id, and whether to close its positions at the last price first."""

    id: str = Field(min_length=1, max_length=_ID)
    close_positions: bool = False


class DeactivateArgs(_Args):
    """deactivate: a strategy id and what happens to its positions."""

    id: str = Field(min_length=1, max_length=_ID)
    policy: Literal["manage", "close", "freeze"] = "manage"


class SwitchArgs(_Args):
    """switch: from one strategy to another in one step."""

    source: str = Field(alias="from", min_length=1, max_length=_ID)
    target: str = Field(alias="to", min_length=1, max_length=_ID)
    policy: Literal["manage", "close", "freeze"] = "manage"


class SetArgs(_Args):
    """set: one runtime-changeable parameter, by dotted path (e.g. exits.stop_loss_pct)."""

    id: str = Field(min_length=1, max_length=_ID)
    path: str = Field(min_length=1, max_length=_PATH, pattern=r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")
    value: Any


class ValidateArgs(_Args):
    """validate: a config.json-like file or a strategy file, checked without applying."""

    file: str = Field(min_length=1, max_length=_FILE)


class AddSymbolArgs(_Args):
    """add-symbol: a symbol and its recorded candle file (relative to config.json's folder)."""

    symbol: str = Field(min_length=1, max_length=MAX_SYMBOL_LENGTH)
    file: str = Field(min_length=1, max_length=_FILE)
    timeframe: str | None = Field(default=None, min_length=1, max_length=8)

    @field_validator("timeframe")
    @classmethod
    def _known_timeframe(cls, value: str | None) -> str | None:
        if value is not None:
            timeframe_ms(value)  # ValueError names the timeframe and the ones known
        return value


class SymbolArg(_Args):
    """remove-symbol: a symbol added at runtime."""

    symbol: str = Field(min_length=1, max_length=MAX_SYMBOL_LENGTH)


class EventsArgs(_Args):
    """events: a live stream, filtered by strategy and/or event types."""

    strategy_id: str | None = Field(default=None, min_length=1, max_length=_ID)
    types: list[str] | None = Field(default=None, max_length=256)


@dataclass
class DaemonState:
    """What the control commands act on: the daemon's services, manager, feed and config."""

    loaded: LoadedConfig
    services: BotServices
    manager: StrategyManager
    feed: DaemonFeed
    request_stop: Callable[[], None]
    journal: Journal | None = None
    # What keeps the daemon from starting, in words (the exchange not answering): health degraded meanwhile.
    start_problems: Callable[[], list[str]] = field(default=lambda: [])
    started_monotonic: float = field(default_factory=time.monotonic)
    strategy_files: dict[str, Path] = field(default_factory=dict)
    # Symbols added at runtime: {"file", "timeframe"} each, as journalled.
    added_symbols: dict[str, dict[str, str]] = field(default_factory=dict)
    files: FileAccess = field(init=False)
    redact: Redactor = field(init=False)

    def __post_init__(self) -> None:
        self.strategy_files.update(self.loaded.strategy_files)
        self.files = FileAccess.of(self.loaded)
        params = [entry.cls.Params for entry in self.loaded.catalog.entries()]
        self.redact = Redactor(self.files, schema_words([BotConfig, StrategyConfig, *params]))


Handler = Callable[[DaemonState, Any], Any]


def _orchestrator(state: DaemonState, strategy_id: str) -> TradingOrchestrator:
    try:
        return state.manager.get(strategy_id)
    except UnknownStrategyError as exc:
        raise ControlError("unknown_strategy", str(exc)) from None


def _strategy_status(state: DaemonState, orchestrator: TradingOrchestrator) -> dict[str, Any]:
    return {
        "state": orchestrator.state,
        "policy": orchestrator.policy,
        "symbols": sorted({symbol for symbol, _ in orchestrator.subscriptions()}),
        "timeframe": orchestrator.timeframe,
        "positions": len(orchestrator.positions.positions),
        "warm": orchestrator.is_warm(),
        # Of today by the daemon's clock: a tally of an earlier day is no longer today's.
        "day_pnl": state.services.risk.day_pnl(orchestrator.strategy_id, state.services.clock.now_ms()),
        # Its money: equity and day_pnl are in this currency; the starting balance gives their scale.
        "currency": quote_currency(orchestrator.symbol),
        "starting_balance": orchestrator.portfolio.start,
        "equity": orchestrator.portfolio.equity,
        "last_error": orchestrator.last_error,
    }


def status(state: DaemonState, _: NoArgs) -> dict[str, Any]:
    """Per-strategy state and the daemon's health."""
    strategies = {sid: _strategy_status(state, state.manager.get(sid)) for sid in state.manager.ids()}
    failed = sorted(sid for sid, s in strategies.items() if s["state"] == "failed")
    kill_switch = state.services.risk.kill_switch
    problems = [f"strategy {sid} failed" for sid in failed]
    if kill_switch:
        problems.append("kill switch engaged")
    problems += state.start_problems()  # mode live: the exchange not answering while the start loads its markets
    problems += state.feed.problems()  # a live feed: the exchange not answering at start, symbols reconnecting, stale or failed
    problems += state.services.exchange.problems()  # live orders not confirmed yet
    return {
        "health": "degraded" if problems else "ok",
        "problems": problems,
        "uptime_s": round(time.monotonic() - state.started_monotonic, 3),
        "clock_ts": state.services.clock.now_ms(),
        "feed": state.feed.status(),
        "execution": state.services.exchange.status(),
        "kill_switch": kill_switch,
        # The global daily tallies the kill switch watches, per currency, beside their limits.
        "currencies": state.services.risk.currency_days(state.services.clock.now_ms()),
        "strategies": strategies,
        "added_symbols": dict(state.added_symbols),
        # Unloaded strategies whose orders are still in flight (live): outcomes still booked and journalled.
        "settling": state.manager.settling(),
    }


def strategies(state: DaemonState, _: NoArgs) -> dict[str, Any]:
    """Loaded strategies, and the strategy files available in the strategies folder with their config."""
    loaded = {
        sid: {
            "state": state.manager.get(sid).state,
            "file": str(state.strategy_files.get(sid, "")),
            "config": state.manager.get(sid).spec.model_dump(mode="json"),  # as running, with runtime changes
        }
        for sid in state.manager.ids()
    }
    available: dict[str, Any] = {}
    folder = state.loaded.base_dir / "strategies"
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            state.files.resolve(str(path))  # a link out of the allowed folders is not listed
        except ControlError:
            continue
        try:
            spec = load_strategy(path, state.loaded.bot, str(state.loaded.path), catalog=state.loaded.catalog)
        except ConfigError as exc:
            available[path.name] = {"valid": False, "problems": state.redact.lines(exc.problems)}
        else:
            available[path.name] = {"valid": True, "id": spec.id, "config": spec.model_dump(mode="json")}
    return {"loaded": loaded, "available": available}


def validate(state: DaemonState, args: ValidateArgs) -> dict[str, Any]:
    """Check a config or strategy file without applying it, against the strategy modules found at start (no code is imported)."""
    path = state.files.resolve(args.file)
    head = None
    try:
        if path.is_file() and path.stat().st_size <= MAX_CONFIG_BYTES:
            head = orjson.loads(path.read_bytes())
    except (OSError, ValueError):  # unreadable or not JSON: load_* below reports why
        head = None
    try:
        if isinstance(head, dict) and "analyzers" not in head and ("strategies" in head or "replay" in head):
            _check_strategy_files(state, path, head)
            loaded = load_config(path, catalog=state.loaded.catalog)
            return {"valid": True, "kind": "config", "strategies": [s.id for s in loaded.strategies]}
        spec = load_strategy(path, state.loaded.bot, str(state.loaded.path), catalog=state.loaded.catalog)
        return {"valid": True, "kind": "strategy", "id": spec.id}
    except ConfigError as exc:
        return {"valid": False, "problems": state.redact.problems(exc.problems)}


def _check_strategy_files(state: DaemonState, config: Path, data: dict[str, Any]) -> None:
    """The strategy files a config names must be readable to a client too."""
    refs = data.get("strategies")
    for index, ref in enumerate(refs if isinstance(refs, list) else ()):
        name = ref.get("file") if isinstance(ref, dict) else None
        if isinstance(name, str):
            state.files.resolve(str(config.parent / name), f"strategies[{index}].file")


def _read_spec(state: DaemonState, path: Path) -> StrategyConfig:
    try:
        return load_strategy(path, state.loaded.bot, str(state.loaded.path), catalog=state.loaded.catalog)
    except ConfigError as exc:
        raise ControlError("invalid_config", state.redact.joined(exc.problems)) from None


def load(state: DaemonState, args: LoadArgs) -> dict[str, Any]:
    """Load a strategy file (dormant), optionally activating it."""
    path = state.files.resolve(args.file)
    spec = _read_spec(state, path)
    try:
        orchestrator = state.manager.load(spec)
        state.strategy_files[spec.id] = path
        if state.journal is not None:
            # So a restart can load it again from the same file (without earlier `set`s).
            state.journal.set_meta(STRATEGY_FILE + spec.id, str(path))
            state.journal.set_meta(OVERRIDES + spec.id, "")
            # Loaded before (and unloaded without closing)? Take its book back: open positions,
            # and numbering that continues, so no order or position id is ever reused.
            restore_orchestrator(state.journal, orchestrator, state.services.hub)
            # Live: orders still pending when it was unloaded (or not restored at start) may have
            # filled or ended since; the gateway looks each up, as reconciliation does at start.
            state.manager.adopt_restored(spec.id)
            if orchestrator.positions.positions or orchestrator.positions.pending_orders():
                # A book came back: its stops are enforced from now on, as under `manage`.
                state.manager.restore_state(spec.id, "dormant", "manage", None)
        if args.activate:
            state.manager.activate(spec.id)
    except (StrategyStateError, StrategyError) as exc:
        # Its id and market are what the operator asked to trade (and a successful load answers
        # with): not hidden; the rest of the file's text is.
        raise ControlError("invalid_state", state.redact.about_file(str(exc), path, shown=(spec.id, spec.symbol))) from None
    heap.settle()
    return {"id": spec.id, "state": state.manager.get(spec.id).state}


def unload(state: DaemonState, args: UnloadArgs) -> dict[str, Any]:
    """Unload a strategy; return its final snapshot, and the orders still in flight (live: `settling`)."""
    currency = quote_currency(_orchestrator(state, args.id).symbol)
    snapshot = state.manager.unload(args.id, close_positions=args.close_positions)
    state.strategy_files.pop(args.id, None)
    heap.release()
    return {**snapshot, "currency": currency, "settling": state.manager.settling().get(args.id, [])}


def activate(state: DaemonState, args: StrategyArg) -> dict[str, Any]:
    """Warm up and start routing candles to a strategy (also brings a failed one back)."""
    _orchestrator(state, args.id)
    try:
        state.manager.activate(args.id)
    except (StrategyStateError, StrategyError) as exc:
        raise ControlError("invalid_state", str(exc)) from None
    return {"id": args.id, "state": "active"}


def deactivate(state: DaemonState, args: DeactivateArgs) -> dict[str, Any]:
    """Stop a strategy's new entries, with a position policy."""
    _orchestrator(state, args.id)
    try:
        state.manager.deactivate(args.id, args.policy)
    except StrategyStateError as exc:
        raise ControlError("invalid_state", str(exc)) from None
    return {"id": args.id, "state": "dormant", "policy": args.policy}


def switch(state: DaemonState, args: SwitchArgs) -> dict[str, Any]:
    """Deactivate one strategy and activate another as one step."""
    _orchestrator(state, args.source)
    _orchestrator(state, args.target)
    try:
        state.manager.switch(args.source, args.target, args.policy)
    except (StrategyStateError, StrategyError) as exc:
        raise ControlError("invalid_state", str(exc)) from None
    return {"from": args.source, "to": args.target, "policy": args.policy}


def _apply(state: DaemonState, orchestrator: TradingOrchestrator, spec: StrategyConfig, hint: str = "unload and load it again to change them") -> dict[str, Any]:
    try:
        changed = orchestrator.reconfigure(spec)
    except ValueError as exc:
        raise ControlError("invalid_config", f"{spec.id}: {exc}: {hint}") from None
    return {"id": spec.id, "changed": changed}


def reload(state: DaemonState, args: StrategyArg) -> dict[str, Any]:
    """Re-read and validate a strategy's file; apply it if valid and only runtime fields changed."""
    orchestrator = _orchestrator(state, args.id)
    path = state.strategy_files.get(args.id)
    if path is None:
        raise ControlError("invalid_state", f"strategy {args.id!r} has no file to reload from")
    applied = _apply(state, orchestrator, _read_spec(state, path))
    if state.journal is not None:
        state.journal.set_meta(OVERRIDES + args.id, "")  # the file is the whole truth again
    return applied


def set_param(state: DaemonState, args: SetArgs) -> dict[str, Any]:
    """Change one field, validated as its strategy file would be (a module's params by its Params); journalled so a restart keeps it.

    The reply says which top-level fields changed, and the value at the path before and after.
    """
    orchestrator = _orchestrator(state, args.id)
    update: Any = args.value
    for part in reversed(args.path.split(".")):
        update = {part: update}
    before = orchestrator.spec
    result = _set(state, orchestrator, update)
    if state.journal is not None:
        key = OVERRIDES + args.id
        previous = state.journal.get_meta(key)
        overrides = deep_merge(orjson.loads(previous) if previous else {}, update)
        state.journal.set_meta(key, orjson.dumps(overrides).decode())
    return {**result, "path": args.path, "old": _at(before, args.path), "new": _at(orchestrator.spec, args.path)}


# Why a field is refused in place, where there is more to say than "unload and load".
_FROZEN_WHY: dict[str, str] = dict.fromkeys(("symbol", "timeframe"), "its positions and orders are on its symbol and timeframe")


def _set(state: DaemonState, orchestrator: TradingOrchestrator, update: dict[str, Any]) -> dict[str, Any]:
    sid = orchestrator.strategy_id
    try:
        spec = changed_strategy(orchestrator.spec, update, state.loaded.catalog, sid)
    except ConfigError as exc:
        # One line per problem, as `bot validate` prints them; they name the client's own path and value.
        raise ControlError("bad_args", "\n".join(str(problem) for problem in exc.problems)) from None
    try:
        orchestrator.changes(spec, RUNTIME_FIELDS | REBUILT_FIELDS)
    except ValueError as exc:
        path = state.strategy_files.get(sid)
        where = "its strategy file" if path is None else _relative(path, state.loaded.base_dir)
        why = next((f" ({_FROZEN_WHY[field]})" for field in update if field in _FROZEN_WHY), "")
        raise ControlError("invalid_config", f"{sid}: {exc}{why}: change the field in {where}, then unload and load the strategy") from None
    try:
        # New params (or analyzers, filters) rebuild the strategy object in place: built and warmed before anything changes.
        changed = state.manager.reconfigure(sid, spec)
    except StrategyError as exc:
        cause = exc.cause
        raise ControlError("invalid_config", f"{sid}: not changed, the strategy refused it: {type(cause).__name__}: {cause}") from None
    except ValueError as exc:
        raise ControlError("invalid_config", f"{sid}: not changed: {exc}") from None
    except StrategyStateError as exc:
        raise ControlError("invalid_state", f"{sid}: not changed: {exc}") from None
    reply: dict[str, Any] = {"id": sid, "changed": changed}
    if REBUILT_FIELDS.intersection(changed):
        # New indicators are only as warm as the history lets them be: a new higher timeframe
        # may have too little of it, and the strategy then acts on cold indicators.
        reply["warm"] = orchestrator.is_warm()
        if not reply["warm"] and orchestrator.state == "active":
            reply["cold"] = [stream.as_dict() for stream in state.manager.cold(sid)]
    return reply


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


def positions(state: DaemonState, args: OptionalStrategyArg) -> dict[str, Any]:
    """Open positions and pending orders, of one strategy or all."""
    ids = [args.id] if args.id is not None else state.manager.ids()
    result = {}
    for sid in ids:
        orchestrator = _orchestrator(state, sid)
        result[sid] = {
            "positions": [p.state() for p in orchestrator.positions.positions.values()],
            "pending_orders": [o.client_id for o in orchestrator.positions.pending_orders()],
        }
    return result


def metrics(state: DaemonState, _: NoArgs) -> dict[str, Any]:
    """Per-strategy processing figures; the slowest strategy named."""
    per: dict[str, Any] = {}
    delivery_stats = getattr(state.manager.delivery, "stats", None)
    for sid in state.manager.ids():
        orchestrator = state.manager.get(sid)
        figures = orchestrator.metrics.as_dict()
        if delivery_stats is not None:
            figures.update(delivery_stats(orchestrator))
        figures["actions_done"] = orchestrator.actions.done
        figures["actions_failed"] = orchestrator.actions.failed
        per[sid] = figures
    slowest = max(per, key=lambda sid: per[sid]["p99_us"], default=None)
    return {"strategies": per, "slowest": slowest}


def add_symbol(state: DaemonState, args: AddSymbolArgs) -> dict[str, Any]:
    """Subscribe a new symbol mid-session: its past candles warm the history before anything is routed."""
    problem = symbol_problem(args.symbol)
    if problem is not None:
        raise ControlError("bad_args", f"symbol: {problem}")
    if args.symbol in state.services.hub.symbols():
        raise ControlError("invalid_state", f"{args.symbol} already has a candle feed")
    if state.feed.source != "recorded":
        raise ControlError("invalid_state", f"adding a symbol at runtime needs the recorded feed (feed.source is {state.feed.source}): add {args.symbol} to exchange.feed.symbols and restart")
    if state.feed.state != "playing":
        raise ControlError("invalid_state", f"the feed is {state.feed.state}, not playing")
    path = state.files.resolve(args.file)
    if not path.is_file():
        raise ControlError("bad_args", f"file: candle file not found: {args.file}")
    try:
        timeframe = args.timeframe or infer_timeframe(path)
        timeframe_ms(timeframe)
        warmed = state.feed.add_source(CandleSource(args.symbol, path, timeframe), state.services.clock.now_ms())
    except FeedCannotAddSymbol as exc:
        raise ControlError("invalid_state", str(exc)) from None
    except CandleFileError as exc:
        # The file's content stays in the file: its name, the line and why, not the values.
        raise ControlError("invalid_config", state.redact.candle_error(exc)) from None
    except (BotError, ValueError, OSError) as exc:
        raise ControlError("invalid_config", f"{args.file}: {state.redact.numbers_hidden(str(exc))}") from None
    added = {"file": str(path), "timeframe": timeframe}
    state.added_symbols[args.symbol] = added
    if state.journal is not None:
        # A restart adds it again (and strategies on it can be restored).
        state.journal.set_meta(ADDED_SYMBOL + args.symbol, orjson.dumps({"path": str(path), "timeframe": timeframe}).decode())
    return {"symbol": args.symbol, "timeframe": timeframe, "history": warmed}


def remove_symbol(state: DaemonState, args: SymbolArg) -> dict[str, Any]:
    """Stop the feed of a symbol added at runtime that no loaded strategy uses; journalled."""
    if args.symbol not in state.added_symbols:
        raise ControlError("invalid_state", f"{shown(args.symbol)} was not added at runtime (added: {', '.join(sorted(state.added_symbols)) or 'none'})")
    try:
        state.manager.release_symbol(args.symbol)
        state.feed.remove_source(args.symbol)
    except (StrategyStateError, FeedCannotAddSymbol) as exc:
        raise ControlError("invalid_state", str(exc)) from None
    del state.added_symbols[args.symbol]
    if state.journal is not None:
        state.journal.delete_meta(ADDED_SYMBOL + args.symbol)
    return {"symbol": args.symbol, "removed": True}


def risk_reset(state: DaemonState, _: NoArgs) -> dict[str, Any]:
    """Release the kill switch (an operator's decision): entries are allowed again."""
    was = state.services.risk.kill_switch
    state.services.risk.reset_kill_switch()
    if state.journal is not None:
        state.journal.set_meta(KILL_SWITCH, "")
    return {"kill_switch": False, "was": was}


def shutdown(state: DaemonState, _: NoArgs) -> dict[str, Any]:
    """Stop the daemon gracefully."""
    state.request_stop()
    return {"stopping": True}


def check_event_args(state: DaemonState, args: EventsArgs) -> EventsArgs:
    """Validate an events request's filters (the server streams it)."""
    if args.strategy_id is not None:
        _orchestrator(state, args.strategy_id)
    unknown = sorted(set(args.types or ()) - EVENT_TYPES)
    if unknown:
        raise ControlError("bad_args", f"unknown event types: {', '.join(unknown)}")
    return args


COMMANDS: dict[str, tuple[type[_Args], Handler]] = {
    "status": (NoArgs, status),
    "strategies": (NoArgs, strategies),
    "validate": (ValidateArgs, validate),
    "load": (LoadArgs, load),
    "unload": (UnloadArgs, unload),
    "activate": (StrategyArg, activate),
    "deactivate": (DeactivateArgs, deactivate),
    "switch": (SwitchArgs, switch),
    "reload": (StrategyArg, reload),
    "set": (SetArgs, set_param),
    "positions": (OptionalStrategyArg, positions),
    "metrics": (NoArgs, metrics),
    "add-symbol": (AddSymbolArgs, add_symbol),
    "remove-symbol": (SymbolArg, remove_symbol),
    "risk-reset": (NoArgs, risk_reset),
    "shutdown": (NoArgs, shutdown),
}
STREAM_COMMANDS = {"events": EventsArgs}


def run_command(state: DaemonState, cmd: str, raw_args: dict[str, Any]) -> Any:
    """Validate and run one command; ControlError for anything the caller got wrong."""
    entry = COMMANDS.get(cmd)
    if entry is None:
        known = ", ".join(sorted([*COMMANDS, *STREAM_COMMANDS]))
        raise ControlError("unknown_command", f"unknown command {cmd!r} (known: {known})")
    model, handler = entry
    return handler(state, validate_args(model, raw_args))
