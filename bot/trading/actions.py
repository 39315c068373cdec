"""Typed actions a strategy decides on, and the per-orchestrator queue whose handlers carry them out."""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from math import isfinite
from types import UnionType
from typing import Any, ClassVar, Literal, Union, get_args, get_origin

from msgspec import Struct, ValidationError, structs
from msgspec import convert as structs_convert
from msgspec import to_builtins as structs_to_builtins

from bot.errors import ActionError

Side = Literal["long", "short"]
ActionKind = Literal["open_position", "close_percent", "update_stop_loss", "activate_trailing_stop", "open_pair", "close_pair"]


class OpenPosition(Struct, frozen=True):
    """Open a position of `quantity` on `symbol` at market, or with a limit order at `limit_price`."""

    kind: ClassVar[ActionKind] = "open_position"
    symbol: str
    side: Side
    quantity: float
    reason: str = "signal"
    limit_price: float | None = None


class ClosePercent(Struct, frozen=True):
    """Close `percent` of a position's quantity not already being closed, at market."""

    kind: ClassVar[ActionKind] = "close_percent"
    position_id: str
    percent: float
    reason: str = "signal"


class UpdateStopLoss(Struct, frozen=True):
    """Move a position's stop-loss to `price`."""

    kind: ClassVar[ActionKind] = "update_stop_loss"
    position_id: str
    price: float
    reason: str = "manual"


class ActivateTrailingStop(Struct, frozen=True):
    """Start trailing a position's stop `distance_pct` behind the best price since `anchor_price`."""

    kind: ClassVar[ActionKind] = "activate_trailing_stop"
    position_id: str
    distance_pct: float
    anchor_price: float


class OpenPair(Struct, frozen=True):
    """Open two legs (one long, one short) as one action: both are sent, or neither."""

    kind: ClassVar[ActionKind] = "open_pair"
    long: OpenPosition
    short: OpenPosition


class ClosePair(Struct, frozen=True):
    """Close every leg of a pair together, at market."""

    kind: ClassVar[ActionKind] = "close_pair"
    group: str
    reason: str = "signal"


Action = OpenPosition | ClosePercent | UpdateStopLoss | ActivateTrailingStop | OpenPair | ClosePair
ActionHandler = Callable[[Action], None]
# Per action class, its generated quick test of every field (built once, below).
_FITS: dict[type, Callable[[Any], bool]] = {}
ACTION_KINDS: tuple[ActionKind, ...] = (
    "open_position", "close_percent", "update_stop_loss", "activate_trailing_stop", "open_pair", "close_pair"
)


def _test_of(annotation: Any, value: str, depth: int = 0) -> str:
    """A Python expression true when `value` fits a field's type (numbers finite; what msgspec takes: an int for a float, never a bool)."""
    if annotation is float:
        return f"((type({value}) is float or type({value}) is int) and isfinite({value}))"
    if annotation is str:
        return f"(type({value}) is str)"
    if get_origin(annotation) is Literal:
        allowed = " or ".join(f"{value} == {option!r}" for option in get_args(annotation))
        return f"(type({value}) is str and ({allowed}))"
    if get_origin(annotation) in (Union, UnionType) and type(None) in get_args(annotation):
        (inner,) = [a for a in get_args(annotation) if a is not type(None)]
        return f"({value} is None or {_test_of(inner, value, depth)})"
    if isinstance(annotation, type) and issubclass(annotation, Struct):
        parts = [f"(type({value}) is _{annotation.__name__})"]
        parts += [_test_of(field.type, f"{value}.{field.name}", depth + 1) for field in structs.fields(annotation)]
        return "(" + " and ".join(parts) + ")"
    raise TypeError(f"no quick test for a field of type {annotation!r}")


def _fits_function(cls: type[Struct]) -> Callable[[Any], bool]:
    """A function testing every field of a `cls` action at once, generated from its annotations (the hot path of every action)."""
    body = " and ".join(_test_of(field.type, f"action.{field.name}") for field in structs.fields(cls)) or "True"
    namespace: dict[str, Any] = {"isfinite": isfinite, **{f"_{c.__name__}": c for c in (OpenPosition,)}}
    exec(compile(f"def fits(action):\n    return {body}\n", f"<fits {cls.__name__}>", "exec"), namespace)  # noqa: S102  our own annotations, at import
    function: Callable[[Any], bool] = namespace["fits"]
    return function


def fits(action: Action) -> bool:
    """Whether every value of an action is of its field's type, every number finite: the common case, tested quickly.

    When not, `non_finite` and `unfit` say why, in the words the refusal uses.
    """
    test = _FITS.get(type(action))
    return test is not None and test(action)


def unfit(action: Action) -> str | None:
    """Why an action cannot be carried out when a value of it is not of its field's type (None: every value fits).

    In process a wrong type may go unnoticed or fail later; on the way to a book on another machine
    it would not decode: the same refusal wherever the strategy runs.
    """
    try:
        structs_convert(structs_to_builtins(action), type(action))
    except (ValidationError, TypeError) as exc:
        return f"{action.kind}: {exc}"
    return None


def non_finite(action: Action) -> str | None:
    """Why an action cannot be carried out when a number of it is NaN or infinite (None: every number is finite)."""
    for name, value in zip(action.__struct_fields__, structs.astuple(action), strict=True):
        if isinstance(value, float) and not isfinite(value):
            return f"{action.kind} {name} must be a finite number, got {value!r}"
        if isinstance(value, OpenPosition) and (leg := non_finite(value)) is not None:
            return f"{action.kind} {name}: {leg}"
    return None


class ActionQueue:
    """A FIFO of actions drained through a handler per kind; an unknown kind raises, never falls through."""

    __slots__ = ("queued", "_handlers", "done", "failed", "on_failure")

    def __init__(
        self,
        handlers: Mapping[str, ActionHandler],
        on_failure: Callable[[Action, ActionError], None],
    ) -> None:
        missing = set(ACTION_KINDS) - set(handlers)
        if missing:
            raise ValueError(f"action handlers missing for: {sorted(missing)}")
        # Public so the owner can test `if queue.queued:` on its hot path without a call.
        self.queued: deque[Action] = deque()
        self._handlers = dict(handlers)
        self.on_failure = on_failure
        self.done = 0
        self.failed = 0

    def put(self, action: Action) -> None:
        """Queue an action for the next drain."""
        self.queued.append(action)

    def refuse(self, action: Action, error: ActionError) -> None:
        """Fail an action that cannot be queued (refused where the strategy asked for it), counted as a failed one."""
        self.failed += 1
        self.on_failure(action, error)

    def __len__(self) -> int:
        return len(self.queued)

    def drain(self) -> None:
        """Carry out every queued action in order; an ActionError fails that action only."""
        queue = self.queued
        handlers = self._handlers
        while queue:
            action = queue.popleft()
            handler = handlers.get(action.kind)
            if handler is None:
                raise ActionError(f"no handler for action kind {action.kind!r}")
            try:
                handler(action)
            except ActionError as exc:
                self.failed += 1
                self.on_failure(action, exc)
            else:
                self.done += 1

    def clear(self) -> int:
        """Drop queued actions without running them; return how many were dropped."""
        count = len(self.queued)
        self.queued.clear()
        return count


for _cls in (OpenPosition, ClosePercent, UpdateStopLoss, ActivateTrailingStop, OpenPair, ClosePair):
    _FITS[_cls] = _fits_function(_cls)
