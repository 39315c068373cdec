"""The strategy plug-in interface: what a strategy declares, and what its orchestrator lends it."""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from math import isfinite
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar, get_args, get_origin

from bot.bus import StrategyPublisher
from bot.config.numbers import StrictNumbers
from bot.errors import ActionError
from bot.events import Signal
from bot.indicators.registry import IndicatorRegistry
from bot.ohlcv import Candle
from bot.trading.actions import (
    Action,
    ActivateTrailingStop,
    ClosePair,
    ClosePercent,
    OpenPair,
    OpenPosition,
    Side,
    UpdateStopLoss,
    fits,
    non_finite,
    unfit,
)

if TYPE_CHECKING:
    from bot.config.models import StrategyConfig
    from bot.trading.positions import Position

Stream = tuple[str, str]


class PositionView(Protocol):
    """What a strategy's context reads of its positions: its PositionManager in process, a mirror of the hub's book on a worker."""

    @property
    def positions(self) -> Mapping[str, Position]:
        """Open positions by id."""
        ...

    def position_on(self, symbol: str) -> Position | None:
        """The oldest open position on a symbol, if any."""
        ...

    def is_flat(self, symbol: str) -> bool:
        """True when the symbol has no open position and no pending entry."""
        ...

    def last_price(self, symbol: str) -> float | None:
        """The latest close (or fill price) seen for a symbol."""
        ...


class StrategyParams(StrictNumbers):
    """Base of every strategy's parameter model: frozen, unknown parameters rejected, numbers only as finite JSON numbers."""


P = TypeVar("P", bound=StrategyParams)


class StrategyContext:
    """What an orchestrator lends its strategy: indicators, a read-only view of positions, actions, signals.

    Everything here belongs to that one orchestrator, so a strategy can reach no other
    strategy's state and cannot emit an event without its strategy id.
    """

    __slots__ = ("spec", "strategy_id", "symbol", "timeframe", "quantity", "position_on", "_registry_for", "_put", "_refuse", "_publish", "_positions", "_now")

    def __init__(
        self,
        spec: StrategyConfig,
        registry_for: Callable[[str, str], IndicatorRegistry],
        put: Callable[[Any], None],
        refuse: Callable[[Action, ActionError], None],
        publish: StrategyPublisher,
        positions: PositionView,
        now: Callable[[], int],
    ) -> None:
        self.spec = spec
        self.strategy_id = spec.id
        self.symbol = spec.symbol
        self.timeframe = spec.timeframe
        self.quantity = spec.quantity
        self._registry_for = registry_for
        self._put = put
        # An action it cannot queue fails there, counted and announced as a failed one (ActionQueue.refuse in process).
        self._refuse = refuse
        self._publish = publish
        self._positions = positions
        self._now = now
        # position() with the symbol given, bound straight to the positions: one call on a strategy's per-candle path.
        self.position_on: Callable[[str], Position | None] = positions.position_on

    # -- market data ---------------------------------------------------------------------------
    def indicators(self, symbol: str | None = None, timeframe: str | None = None) -> IndicatorRegistry:
        """The indicator registry of a stream (default: the trading symbol and timeframe); it is
        updated with each closed candle before the strategy sees it."""
        return self._registry_for(symbol or self.symbol, timeframe or self.timeframe)

    @property
    def now(self) -> int:
        """Event-clock time of the candle being processed."""
        return self._now()

    # -- positions (read-only) -----------------------------------------------------------------
    def position(self, symbol: str | None = None) -> Position | None:
        """The oldest open position on a symbol (default: the trading symbol), if any."""
        return self._positions.position_on(symbol or self.symbol)

    def positions(self) -> list[Position]:
        """Every open position of this strategy."""
        return list(self._positions.positions.values())

    def is_flat(self, symbol: str | None = None) -> bool:
        """True when the symbol has no open position and no entry waiting to fill."""
        return self._positions.is_flat(symbol or self.symbol)

    def last_price(self, symbol: str | None = None) -> float | None:
        """The latest close (or fill price) seen for a symbol."""
        return self._positions.last_price(symbol or self.symbol)

    # -- actions -------------------------------------------------------------------------------
    def open(
        self, side: Side, symbol: str | None = None, quantity: float | None = None, reason: str = "signal", limit_price: float | None = None
    ) -> None:
        """Queue an entry at market, or a limit order at `limit_price` (default: the configured quantity of the trading symbol).

        A limit entry rests until the price trades through it (deactivating the strategy cancels it).
        """
        self._queue(OpenPosition(symbol or self.symbol, side, self.quantity if quantity is None else quantity, reason, limit_price))

    def close(self, position: Position, percent: float = 100.0, reason: str = "signal") -> None:
        """Queue a market close of `percent` of a position's quantity not already being closed."""
        self._queue(ClosePercent(position.id, percent, reason))

    def open_pair(self, long_symbol: str, long_quantity: float, short_symbol: str, short_quantity: float, reason: str = "signal") -> None:
        """Queue a long and a short as one action: both legs are sent, or neither."""
        self._queue(OpenPair(OpenPosition(long_symbol, "long", long_quantity, reason), OpenPosition(short_symbol, "short", short_quantity, reason)))

    def close_pair(self, group: str, reason: str = "signal") -> None:
        """Queue closing both legs of a pair together."""
        self._queue(ClosePair(group, reason))

    def update_stop(self, position: Position, price: float, reason: str = "strategy") -> None:
        """Queue moving a position's stop-loss."""
        self._queue(UpdateStopLoss(position.id, price, reason))

    def trail(self, position: Position, distance_pct: float, anchor_price: float) -> None:
        """Queue activating a trailing stop on a position."""
        self._queue(ActivateTrailingStop(position.id, distance_pct, anchor_price))

    def _queue(self, action: Action) -> None:
        # A NaN or infinite number, or a value not of its field's type, fails the action here, the same wherever the
        # strategy runs: on the way to a book on another machine it could not travel (JSON has no NaN), and no book can act on it.
        # `fits` is the quick test of the common case; the others say why when it does not hold.
        problem = None if fits(action) else (non_finite(action) or unfit(action))
        if problem is not None:
            self._refuse(action, ActionError(problem))
            return
        self._put(action)

    def signal(self, decision: str, score: float, symbol: str, candle: Candle, details: dict[str, Any] | None = None) -> None:
        """Publish why the strategy decided what it did (a `signal` event, tagged with its id).

        The score must be a finite number: JSON has no NaN, and an event that could not be read
        back from the event log would be lost to every reader of it.
        """
        if not isfinite(score):
            raise ValueError(f"a signal's score must be a finite number, got {score!r}")
        self._publish(Signal, self._now(), decision, score, symbol, candle.close, details or {})


class Strategy(Generic[P]):
    """Base of every strategy: decides from closed candles through its context; owns its market filters.

    A subclass names its parameter model as the type argument, `class EmaCross(Strategy[EmaCrossParams])`
    (a pydantic model deriving from StrategyParams, every field with a default), and declares
    `name`, `version` and a docstring (its description: what it does and when it suits); it reads
    its parameters, typed, as `self.params`. The type argument becomes its `Params`; a class written
    the older way (no type argument, `Params = ...`) works as before.
    The orchestrator updates the indicator registries, feeds positions, fills and exits;
    the strategy only decides. It must keep no state outside itself and the registries it
    asked its context for, so two instances never interfere.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "0.0.0"
    Params: ClassVar[type[StrategyParams]] = StrategyParams

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in cls.__dict__.get("__orig_bases__", ()):
            if get_origin(base) is not Strategy:
                continue
            (declared,) = get_args(base)
            if not isinstance(declared, type):
                continue  # still generic (Strategy[P]): a base for other strategies
            own = cls.__dict__.get("Params")
            if own is None:
                cls.Params = declared
            elif not (isinstance(own, type) and issubclass(own, declared)):
                # Validation would build one model and the strategy read it as another.
                raise TypeError(f"{cls.__name__}: Params {getattr(own, '__name__', own)!r} is not its type argument {declared.__name__!r}")

    def __init__(self, params: P, context: StrategyContext) -> None:
        self.params: P = params
        self.ctx = context

    @classmethod
    def description(cls) -> str:
        """The class docstring, dedented: what the strategy does and when it suits."""
        return inspect.cleandoc(cls.__doc__ or "")

    def subscriptions(self) -> Sequence[Stream]:
        """The (symbol, timeframe) streams it reads; the trading symbol and timeframe come first."""
        return ((self.ctx.symbol, self.ctx.timeframe),)

    def on_candle(self, symbol: str, timeframe: str, candle: Candle) -> None:
        """A closed candle of one of its streams while trading, after that stream's indicators took it."""

    def on_history(self, symbol: str, timeframe: str, candle: Candle) -> None:
        """A candle of warm-up history, after its indicators took it: keep state current, decide nothing."""

    def reset(self) -> None:
        """Forget candle-derived state of its own (warm-up is about to replay the whole history)."""

    def reconfigured(self) -> None:
        """Runtime settings changed (reload, set): `ctx.spec` is the new config; re-read what it caches."""

    def snapshot(self) -> dict[str, Any]:
        """Strategy-specific state worth showing in `status` (plain data)."""
        return {}
