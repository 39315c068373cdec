"""The control commands: each validates its args with its own model, calls one daemon operation and turns its refusals into error replies."""
from __future__ import annotations

import dataclasses
import inspect
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import Field, field_validator

from bot.config.currency import quote_currency
from bot.config.defaults import MAX_CONFIG_BYTES
from bot.config.models import BotConfig, StrategyConfig
from bot.control.config_views import ConfigViews
from bot.control.files import MAX_FILE_ARG, FileAccess
from bot.control.history_commands import CandlesArgs, EquityArgs, TradesArgs, candles, equity, trades
from bot.control.protocol import CommandArgs, ControlError, validate_args
from bot.control.redact import Redactor, schema_words
from bot.daemon import operations
from bot.daemon.read_slices import ReadSlices, each_strategy
from bot.daemon.state import DaemonState
from bot.errors import (
    BotError,
    CandleFileError,
    ChangeRefused,
    ConfigError,
    FeedStateError,
    MoveRefused,
    StrategyError,
    StrategyStateError,
    UnknownStrategyError,
)
from bot.event_codec import encode_record
from bot.events import EVENT_TYPES
from bot.ohlcv import timeframe_ms
from bot.strategy.config_load import load_config
from bot.strategy.orchestrator import TradingOrchestrator
from bot.symbols import MAX_SYMBOL_LENGTH, symbol_problem


class NoArgs(CommandArgs):
    """Commands without arguments."""


# Bounds on what a client may send, checked before anything else looks at it.
_ID = 128
_FILE = MAX_FILE_ARG
_PATH = 256


class StrategyArg(CommandArgs):
    """One strategy id."""

    id: str = Field(min_length=1, max_length=_ID)


class OptionalStrategyArg(CommandArgs):
    """An optional strategy id (all strategies when omitted)."""

    id: str | None = Field(default=None, min_length=1, max_length=_ID)


class LoadArgs(CommandArgs):
    """load: a strategy file (relative to config.json's folder), optionally activated at once."""

    file: str = Field(min_length=1, max_length=_FILE)
    activate: bool = False


class UnloadArgs(CommandArgs):
    """unload: a strategy id, and whether to close its positions at the last price first."""

    id: str = Field(min_length=1, max_length=_ID)
    close_positions: bool = False


class DeactivateArgs(CommandArgs):
    """deactivate: a strategy id and what happens to its positions."""

    id: str = Field(min_length=1, max_length=_ID)
    policy: Literal["manage", "close", "freeze"] = "manage"


class MoveArgs(CommandArgs):
    """move: a strategy id and the worker its mind moves to."""

    id: str = Field(min_length=1, max_length=_ID)
    worker: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


class SwitchArgs(CommandArgs):
    """switch: from one strategy to another in one step."""

    source: str = Field(alias="from", min_length=1, max_length=_ID)
    target: str = Field(alias="to", min_length=1, max_length=_ID)
    policy: Literal["manage", "close", "freeze"] = "manage"


class SetArgs(CommandArgs):
    """set: one runtime-changeable parameter, by dotted path (e.g. exits.stop_loss_pct)."""

    id: str = Field(min_length=1, max_length=_ID)
    path: str = Field(min_length=1, max_length=_PATH, pattern=r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")
    value: Any


class ValidateArgs(CommandArgs):
    """validate: a config.json-like file or a strategy file, checked without applying."""

    file: str = Field(min_length=1, max_length=_FILE)


class AddSymbolArgs(CommandArgs):
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


class SymbolArg(CommandArgs):
    """remove-symbol: a symbol added at runtime."""

    symbol: str = Field(min_length=1, max_length=MAX_SYMBOL_LENGTH)


class EventsArgs(CommandArgs):
    """events: a live stream, filtered by strategy and/or event types."""

    strategy_id: str | None = Field(default=None, min_length=1, max_length=_ID)
    types: list[str] | None = Field(default=None, max_length=256)


@dataclass(frozen=True, slots=True)
class Control:
    """What the control commands act on: the daemon, which files its clients may name, and how replies about a file's content hide it."""

    daemon: DaemonState
    files: FileAccess
    redact: Redactor
    views: ConfigViews = field(default_factory=ConfigViews)
    # The slices of the request this control serves (for_request), shared by its command and its reply's encoding.
    read: ReadSlices | None = None

    def for_request(self, read: ReadSlices | None = None) -> Control:
        """This control for one client request: its long reads share one ReadSlices (`read`, or a new one), so one patience."""
        return dataclasses.replace(self, read=read if read is not None else ReadSlices(self.daemon.candle_work))

    def slices(self) -> ReadSlices:
        """A long read's slices: it gives the loop up between them, to the strategies' candles first (bot.daemon.read_slices)."""
        return self.read if self.read is not None else ReadSlices(self.daemon.candle_work)

    @classmethod
    def of(cls, daemon: DaemonState) -> Control:
        """The guards of `daemon`'s config: its allowed folders, and its schema's field names (a strategy module's Params too)."""
        files = FileAccess.of(daemon.loaded)
        params = [entry.cls.Params for entry in daemon.loaded.catalog.entries()]
        return cls(daemon, files, Redactor(files, schema_words([BotConfig, StrategyConfig, *params])))


Handler = Callable[[Control, Any], Any]
# Seconds a strategy may wait for a worker to take its mind before status calls it a problem (a failover takes about the lease TTL).
MIND_WAIT_PROBLEM_S = 15.0


def _orchestrator(daemon: DaemonState, strategy_id: str) -> TradingOrchestrator:
    try:
        return daemon.manager.get(strategy_id)
    except UnknownStrategyError as exc:
        raise ControlError("unknown_strategy", str(exc)) from None


def _strategy_status(daemon: DaemonState, orchestrator: TradingOrchestrator) -> dict[str, Any]:
    return {
        "state": orchestrator.state,
        "policy": orchestrator.policy,
        "symbols": sorted({symbol for symbol, _ in orchestrator.subscriptions()}),
        "timeframe": orchestrator.timeframe,
        "positions": len(orchestrator.positions.positions),
        "warm": orchestrator.is_warm(),
        # Of today by the daemon's clock: a tally of an earlier day is no longer today's.
        "day_pnl": daemon.services.risk.day_pnl(orchestrator.strategy_id, daemon.services.clock.now_ms()),
        # Its money: equity and day_pnl are in this currency; the starting balance gives their scale.
        "currency": quote_currency(orchestrator.symbol),
        "starting_balance": orchestrator.portfolio.start,
        "equity": orchestrator.portfolio.equity,
        "last_error": orchestrator.last_error,
    }


async def status(control: Control, _: NoArgs) -> dict[str, Any]:
    """Per-strategy state and the daemon's health."""
    daemon = control.daemon
    # Each row read at once; the rows in slices, between the strategies' candles (bot.daemon.read_slices).
    strategies = {sid: _strategy_status(daemon, orchestrator) async for sid, orchestrator in each_strategy(control.daemon.manager, control.slices())}
    failed = sorted(sid for sid, s in strategies.items() if s["state"] == "failed")
    kill_switch = daemon.services.risk.kill_switch
    problems = [f"strategy {sid} failed" for sid in failed]
    if kill_switch:
        problems.append("kill switch engaged")
    problems += daemon.start_problems()  # mode live: the exchange not answering while the start loads its markets
    problems += daemon.feed.problems()  # a live feed: the exchange not answering at start, symbols reconnecting, stale or failed
    problems += daemon.services.exchange.problems()  # live orders not confirmed yet
    reply = {
        "health": "degraded" if problems else "ok",
        "problems": problems,
        "uptime_s": round(time.monotonic() - daemon.started_monotonic, 3),
        "clock_ts": daemon.services.clock.now_ms(),
        "feed": daemon.feed.status(),
        "execution": daemon.services.exchange.status(),
        "kill_switch": kill_switch,
        # The global daily tallies the kill switch watches, per currency, beside their limits.
        "currencies": daemon.services.risk.currency_days(daemon.services.clock.now_ms()),
        "strategies": strategies,
        "added_symbols": dict(daemon.added_symbols),
        # Unloaded strategies whose orders are still in flight (live): outcomes still booked and journalled.
        "settling": daemon.manager.settling(),
    }
    if daemon.cluster_status is not None:
        # The cluster's outbox: its own health (the daemon trades on without the server), backlog and drops.
        cluster = daemon.cluster_status()
        reply["cluster"] = cluster
        if cluster["state"] != "connected":
            # Trading goes on, but what workers and watchers read does not: the operator is told.
            problems.append(f"cluster {cluster['state']}: {cluster['detail']}")
            reply["health"] = "degraded"
        minds = cluster.get("minds")
        if minds is not None:
            # Strategies deciding on workers: one that cannot reach a mind decides nothing (its positions are still protected).
            mind_problems = [f"cluster workers unreachable: {minds['problem'] or minds['connection']}"] if minds["problem"] or minds["connection"] != "connected" else []
            mind_problems += [f"strategy {sid} waits for a worker ({age:.0f} s)" for sid, age in minds["waiting"].items() if age >= MIND_WAIT_PROBLEM_S]
            mind_problems += [f"strategy {sid}: no mind decides (its positions only)" for sid in minds.get("protecting", ())]
            if mind_problems:
                problems.extend(mind_problems)
                reply["health"] = "degraded"
    return reply


async def strategies(control: Control, _: NoArgs) -> dict[str, Any]:
    """Loaded strategies, and the strategy files available in the strategies folder with their config."""
    daemon = control.daemon
    views = control.views
    slices = control.slices()
    loaded = {
        sid: {
            "state": orchestrator.state,
            "file": str(daemon.strategy_files.get(sid, "")),
            "config": views.running(sid, orchestrator.spec),  # as running, with runtime changes
        }
        async for sid, orchestrator in each_strategy(control.daemon.manager, slices)
    }
    available: dict[str, Any] = {}
    folder = daemon.loaded.base_dir / "strategies"
    listed: set[Path] = set()
    # A link out of the allowed folders is not listed.
    for path in control.files.listed(folder, "*.json") if folder.is_dir() else []:
        await slices.pause()
        listed.add(path)
        available[path.name] = views.file(path, partial(_strategy_file, control))
    # The loaded ones now: one loaded while the files were read keeps its cached views.
    views.forget_except(set(daemon.manager.ids()), listed)
    return {"loaded": loaded, "available": available}


def _strategy_file(control: Control, path: Path) -> dict[str, Any]:
    try:
        spec = operations.read_strategy(control.daemon, path)
    except ConfigError as exc:
        return {"valid": False, "problems": control.redact.lines(exc.problems)}
    return {"valid": True, "id": spec.id, "config": spec.model_dump(mode="json")}


def strategy(control: Control, args: StrategyArg) -> dict[str, Any]:
    """One loaded strategy: its status row, the file it was loaded from, its config as running."""
    daemon = control.daemon
    orchestrator = _orchestrator(daemon, args.id)
    return {
        "id": args.id,
        **_strategy_status(daemon, orchestrator),
        "file": str(daemon.strategy_files.get(args.id, "")),
        "config": control.views.running(args.id, orchestrator.spec),
    }


def validate(control: Control, args: ValidateArgs) -> dict[str, Any]:
    """Check a config or strategy file without applying it, against the strategy modules found at start (no code is imported)."""
    path = control.files.resolve(args.file)
    head = None
    try:
        if path.is_file() and path.stat().st_size <= MAX_CONFIG_BYTES:
            head = orjson.loads(path.read_bytes())
    except (OSError, ValueError):  # unreadable or not JSON: load_* below reports why
        head = None
    try:
        if isinstance(head, dict) and "analyzers" not in head and ("strategies" in head or "replay" in head):
            _check_strategy_files(control, path, head)
            loaded = load_config(path, catalog=control.daemon.loaded.catalog)
            return {"valid": True, "kind": "config", "strategies": [s.id for s in loaded.strategies]}
        spec = operations.read_strategy(control.daemon, path)
        return {"valid": True, "kind": "strategy", "id": spec.id}
    except ConfigError as exc:
        return {"valid": False, "problems": control.redact.problems(exc.problems)}


def _check_strategy_files(control: Control, config: Path, data: dict[str, Any]) -> None:
    """The strategy files a config names must be readable to a client too."""
    refs = data.get("strategies")
    for index, ref in enumerate(refs if isinstance(refs, list) else ()):
        name = ref.get("file") if isinstance(ref, dict) else None
        if isinstance(name, str):
            control.files.resolve(str(config.parent / name), f"strategies[{index}].file")


def _invalid_config(control: Control, exc: ConfigError) -> ControlError:
    return ControlError("invalid_config", control.redact.joined(exc.problems))


def load(control: Control, args: LoadArgs) -> dict[str, Any]:
    """Load a strategy file (dormant), optionally activating it."""
    path = control.files.resolve(args.file)
    try:
        spec = operations.read_strategy(control.daemon, path)
    except ConfigError as exc:
        raise _invalid_config(control, exc) from None
    try:
        state = operations.load(control.daemon, spec, path, activate=args.activate)
    except (StrategyStateError, StrategyError) as exc:
        # Its id and market are what the operator asked to trade (and a successful load answers
        # with): not hidden; the rest of the file's text is.
        raise ControlError("invalid_state", control.redact.about_file(str(exc), path, shown=(spec.id, spec.symbol))) from None
    return {"id": spec.id, "state": state}


def unload(control: Control, args: UnloadArgs) -> dict[str, Any]:
    """Unload a strategy; return its final snapshot, and the orders still in flight (live: `settling`)."""
    unloaded = operations.unload(control.daemon, args.id, close_positions=args.close_positions)
    return {**unloaded.snapshot, "currency": unloaded.currency, "settling": unloaded.settling}


def activate(control: Control, args: StrategyArg) -> dict[str, Any]:
    """Warm up and start routing candles to a strategy (also brings a failed one back)."""
    try:
        operations.activate(control.daemon, args.id)
    except (StrategyStateError, StrategyError) as exc:
        raise ControlError("invalid_state", str(exc)) from None
    return {"id": args.id, "state": "active"}


def deactivate(control: Control, args: DeactivateArgs) -> dict[str, Any]:
    """Stop a strategy's new entries, with a position policy."""
    try:
        operations.deactivate(control.daemon, args.id, args.policy)
    except StrategyStateError as exc:
        raise ControlError("invalid_state", str(exc)) from None
    return {"id": args.id, "state": "dormant", "policy": args.policy}


def move(control: Control, args: MoveArgs) -> dict[str, Any]:
    """Move a strategy's mind to another worker at its next candle (its book stays on the hub)."""
    try:
        source = operations.move(control.daemon, args.id, args.worker)
    except MoveRefused as exc:
        raise ControlError("invalid_state", str(exc)) from None
    return {"id": args.id, "from": source, "to": args.worker, "state": "moving"}


def switch(control: Control, args: SwitchArgs) -> dict[str, Any]:
    """Deactivate one strategy and activate another as one step."""
    try:
        operations.switch(control.daemon, args.source, args.target, args.policy)
    except (StrategyStateError, StrategyError) as exc:
        raise ControlError("invalid_state", str(exc)) from None
    return {"from": args.source, "to": args.target, "policy": args.policy}


def reload(control: Control, args: StrategyArg) -> dict[str, Any]:
    """Re-read and validate a strategy's file; apply it if valid and only runtime fields changed."""
    try:
        changed = operations.reload(control.daemon, args.id)
    except StrategyStateError as exc:
        raise ControlError("invalid_state", str(exc)) from None
    except ConfigError as exc:
        raise _invalid_config(control, exc) from None
    except ChangeRefused as exc:
        raise ControlError("invalid_config", str(exc)) from None
    return {"id": args.id, "changed": changed}


def set_param(control: Control, args: SetArgs) -> dict[str, Any]:
    """Change one field, validated as its strategy file would be (a module's params by its Params); journalled so a restart keeps it.

    The reply says which top-level fields changed, and the value at the path before and after.
    """
    try:
        done = operations.set_param(control.daemon, args.id, args.path, args.value)
    except ConfigError as exc:
        # One line per problem, as `bot validate` prints them; they name the client's own path and value.
        raise ControlError("bad_args", "\n".join(str(problem) for problem in exc.problems)) from None
    except ChangeRefused as exc:
        raise ControlError("invalid_config", str(exc)) from None
    except StrategyStateError as exc:
        raise ControlError("invalid_state", str(exc)) from None
    reply: dict[str, Any] = {"id": done.strategy_id, "changed": done.changed}
    if done.warm is not None:
        reply["warm"] = done.warm
    if done.cold is not None:
        reply["cold"] = done.cold
    return {**reply, "path": args.path, "old": done.old, "new": done.new}


def _positions_of(orchestrator: TradingOrchestrator) -> dict[str, Any]:
    return {
        "positions": [encode_record(p.record()) for p in orchestrator.positions.positions.values()],
        "pending_orders": [o.client_id for o in orchestrator.positions.pending_orders()],
    }


async def positions(control: Control, args: OptionalStrategyArg) -> dict[str, Any]:
    """Open positions and pending orders, of one strategy or all."""
    if args.id is not None:
        return {args.id: _positions_of(_orchestrator(control.daemon, args.id))}
    return {sid: _positions_of(orchestrator) async for sid, orchestrator in each_strategy(control.daemon.manager, control.slices())}


async def metrics(control: Control, _: NoArgs) -> dict[str, Any]:
    """Per-strategy processing figures; the slowest strategy named."""
    manager = control.daemon.manager
    per: dict[str, Any] = {}
    delivery_stats = getattr(manager.delivery, "stats", None)
    async for sid, orchestrator in each_strategy(control.daemon.manager, control.slices()):
        figures = orchestrator.metrics.as_dict()
        if delivery_stats is not None:
            figures.update(delivery_stats(orchestrator))
        figures["actions_done"] = orchestrator.actions.done
        figures["actions_failed"] = orchestrator.actions.failed
        per[sid] = figures
    slowest = max(per, key=lambda sid: per[sid]["p99_us"], default=None)
    return {"strategies": per, "slowest": slowest}


def add_symbol(control: Control, args: AddSymbolArgs) -> dict[str, Any]:
    """Subscribe a new symbol mid-session: its past candles warm the history before anything is routed."""
    problem = symbol_problem(args.symbol)
    if problem is not None:
        raise ControlError("bad_args", f"symbol: {problem}")
    try:
        # What the daemon refuses is said before the client's file is looked at.
        operations.check_symbol_addable(control.daemon, args.symbol)
    except FeedStateError as exc:
        raise ControlError("invalid_state", str(exc)) from None
    path = control.files.resolve(args.file)
    if not path.is_file():
        raise ControlError("bad_args", f"file: candle file not found: {args.file}")
    try:
        added = operations.add_symbol(control.daemon, args.symbol, path, args.timeframe)
    except FeedStateError as exc:
        raise ControlError("invalid_state", str(exc)) from None
    except CandleFileError as exc:
        # The file's content stays in the file: its name, the line and why, not the values.
        raise ControlError("invalid_config", control.redact.candle_error(exc)) from None
    except (BotError, ValueError, OSError) as exc:
        raise ControlError("invalid_config", f"{args.file}: {control.redact.numbers_hidden(str(exc))}") from None
    return {"symbol": added.symbol, "timeframe": added.timeframe, "history": added.history}


def remove_symbol(control: Control, args: SymbolArg) -> dict[str, Any]:
    """Stop the feed of a symbol added at runtime that no loaded strategy uses; journalled."""
    try:
        operations.remove_symbol(control.daemon, args.symbol)
    except (StrategyStateError, FeedStateError) as exc:
        raise ControlError("invalid_state", str(exc)) from None
    return {"symbol": args.symbol, "removed": True}


def risk_reset(control: Control, _: NoArgs) -> dict[str, Any]:
    """Release the kill switch (an operator's decision): entries are allowed again."""
    return {"kill_switch": False, "was": operations.risk_reset(control.daemon)}


def shutdown(control: Control, _: NoArgs) -> dict[str, Any]:
    """Stop the daemon gracefully."""
    operations.shutdown(control.daemon)
    return {"stopping": True}


def check_event_args(control: Control, args: EventsArgs) -> EventsArgs:
    """Validate an events request's filters (the server streams it)."""
    if args.strategy_id is not None:
        _orchestrator(control.daemon, args.strategy_id)
    unknown = sorted(set(args.types or ()) - EVENT_TYPES)
    if unknown:
        raise ControlError("bad_args", f"unknown event types: {', '.join(unknown)}")
    return args


COMMANDS: dict[str, tuple[type[CommandArgs], Handler]] = {
    "status": (NoArgs, status),
    "strategies": (NoArgs, strategies),
    "strategy": (StrategyArg, strategy),
    "validate": (ValidateArgs, validate),
    "load": (LoadArgs, load),
    "unload": (UnloadArgs, unload),
    "activate": (StrategyArg, activate),
    "deactivate": (DeactivateArgs, deactivate),
    "move": (MoveArgs, move),
    "switch": (SwitchArgs, switch),
    "reload": (StrategyArg, reload),
    "set": (SetArgs, set_param),
    "positions": (OptionalStrategyArg, positions),
    "metrics": (NoArgs, metrics),
    "trades": (TradesArgs, trades),
    "equity": (EquityArgs, equity),
    "candles": (CandlesArgs, candles),
    "add-symbol": (AddSymbolArgs, add_symbol),
    "remove-symbol": (SymbolArg, remove_symbol),
    "risk-reset": (NoArgs, risk_reset),
    "shutdown": (NoArgs, shutdown),
}
STREAM_COMMANDS = {"events": EventsArgs}


def _command(cmd: str, raw_args: dict[str, Any]) -> tuple[Handler, CommandArgs]:
    entry = COMMANDS.get(cmd)
    if entry is None:
        known = ", ".join(sorted([*COMMANDS, *STREAM_COMMANDS]))
        raise ControlError("unknown_command", f"unknown command {cmd!r} (known: {known})")
    model, handler = entry
    return handler, validate_args(model, raw_args)


@contextmanager
def _unknown_strategy() -> Iterator[None]:
    try:
        yield
    except UnknownStrategyError as exc:  # an operation names the strategy it did not find, before it changes anything
        raise ControlError("unknown_strategy", str(exc)) from None


async def call_command(control: Control, cmd: str, raw_args: dict[str, Any]) -> Any:
    """One client's command (the socket's, HTTP's), any of them: its result, awaited when it reads the journal in a worker thread."""
    handler, args = _command(cmd, raw_args)
    with _unknown_strategy():
        result = handler(control, args)
        return await result if inspect.iscoroutine(result) else result
