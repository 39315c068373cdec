"""The typed events: one frozen, slotted class per event type, its records, and the type registry.

Every event carries `seq` (bus order), `ts` (market time: the candle clock in replay) and
`ts_init` (when it was created: the wall clock in live, equal to `ts` in replay). Events a
strategy caused derive from `StrategyEvent` and cannot be built without a `strategy_id`.
How an event is written as bytes (events.jsonl, the wire) is `bot.event_codec`'s job; field
metadata here only tells it which optional keys today's format leaves out.
"""
from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, TypeVar

from bot.ohlcv import Candle

OrderSide = Literal["buy", "sell"]
Intent = Literal["open", "close"]
OrderType = Literal["market", "limit", "stop"]

# Field metadata read by the codec. OMIT: the key is left out when the value is the field's
# default. FLAT: a nested record whose keys sit in the parent payload. RUNG: the take-profit
# rung, left out when the sibling `reason` already says it (`take_profit_<rung + 1>`).
OMIT: Final = {"omit": True}
FLAT: Final = {"flat": True}
RUNG: Final = {"rung": True}


# Detail keys a feed state cannot hold: its payload has them (a "symbol" key marks one symbol's
# stream; a market-wide state may name a timeframe in its detail).
_FEED_KEYS: Final = frozenset({"state", "symbol"})
_STREAM_FEED_KEYS: Final = frozenset({"state", "symbol", "timeframe"})



_T = TypeVar("_T")
_NO_VALUE: Final = object()


def _quick_init(cls: type[_T]) -> type[_T]:
    """Give a frozen slotted dataclass an __init__ that fills each slot through its own descriptor.

    The frozen __init__ of dataclasses calls object.__setattr__ per field (~95 ns each on Python
    3.11), and every event and record on the replay's hot path is built through it; the slot's
    setter costs about half. Same signature, defaults, factories and __post_init__; the instance
    stays immutable (its __setattr__ is still the frozen one). The source is built from the
    class's own field names (identifiers), never from data.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    names: dict[str, Any] = {"_NO_VALUE": _NO_VALUE}
    params: list[str] = []
    body: list[str] = []
    starred = False
    for param in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        f = fields[param.name]
        if not f.name.isidentifier() or not f.init:
            raise TypeError(f"{cls.__name__}.{f.name}: not a plain init field")
        if param.kind is inspect.Parameter.KEYWORD_ONLY and not starred:
            params.append("*")
            starred = True
        if f.default_factory is not dataclasses.MISSING:
            names[f"factory_{f.name}"] = f.default_factory
            params.append(f"{f.name}=_NO_VALUE")
            body.append(f"if {f.name} is _NO_VALUE: {f.name} = factory_{f.name}()")
        elif f.default is not dataclasses.MISSING:
            names[f"default_{f.name}"] = f.default
            params.append(f"{f.name}=default_{f.name}")
        else:
            params.append(f.name)
    for name in fields:
        names[f"set_{name}"] = getattr(cls, name).__set__
        body.append(f"set_{name}(self, {name})")
    if hasattr(cls, "__post_init__"):
        body.append("self.__post_init__()")
    source = f"def __init__(self, {', '.join(params)}):\n" + "".join(f"    {line}\n" for line in body)
    exec(compile(source, f"<__init__ of {cls.__qualname__}>", "exec"), names)  # noqa: S102  our classes' field names only
    init = names["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__annotations__ = cls.__init__.__annotations__
    cls.__init__ = init  # type: ignore[method-assign]  # replaces the generated one
    return cls


# -- records carried inside events ------------------------------------------------------------
@_quick_init
@dataclass(frozen=True, slots=True)
class FillRecord:
    """One fill as events and the journal carry it; `fill_ts` is its market time."""

    client_id: str
    symbol: str
    side: OrderSide
    quantity: float
    price: float
    fee: float
    liquidity: Literal["maker", "taker"]
    reason: str
    fill_ts: int
    rung: int | None = field(default=None, kw_only=True, metadata=RUNG)


@_quick_init
@dataclass(frozen=True, slots=True)
class PortfolioSnapshot:
    """A strategy portfolio's numbers at one moment."""

    start: float
    cash: float
    equity: float
    realised: float
    unrealised: float
    fees: float
    market_value: float
    peak_equity: float
    max_drawdown: float
    max_drawdown_pct: float


@_quick_init
@dataclass(frozen=True, slots=True)
class PositionState:
    """A position as journalled and announced; `take_profit` holds (price, quantity, done) per rung."""

    position_id: str
    symbol: str
    side: Literal["long", "short"]
    status: Literal["open", "partially_closed", "closed"]
    initial_quantity: float
    quantity: float
    entry_price: float
    entry_ts: int
    stop_loss: float | None
    take_profit: tuple[tuple[float, float, bool], ...]
    trailing_active: bool
    trailing_distance_pct: float | None
    trailing_activation_price: float | None
    trailing_stop: float | None
    ladder_closes_all: bool
    break_even: bool
    realised: float
    fees: float
    group: str | None


@_quick_init
@dataclass(frozen=True, slots=True)
class TradeRecord:
    """A closed trade: pnl net of fees, exit price quantity-weighted."""

    strategy_id: str
    position_id: str
    symbol: str
    side: Literal["long", "short"]
    quantity: float
    entry_ts: int
    entry_price: float
    exit_ts: int
    exit_price: float
    pnl: float
    fees: float
    exit_reason: str
    group: str | None


@_quick_init
@dataclass(frozen=True, slots=True)
class ReplaySource:
    """One recorded candle file a replay reads."""

    symbol: str
    file: str
    timeframe: str


# -- bases --------------------------------------------------------------------------------------
@_quick_init
@dataclass(frozen=True, slots=True)
class Event:
    """Base of every event: bus sequence number, market time and creation time."""

    type: ClassVar[str] = ""
    scoped: ClassVar[bool] = False

    seq: int
    ts: int
    ts_init: int

    if TYPE_CHECKING:  # a field of StrategyEvent, None on MarketEvent

        @property
        def strategy_id(self) -> str | None:
            """The strategy the event belongs to; None for a market-wide event."""


@_quick_init
@dataclass(frozen=True, slots=True)
class MarketEvent(Event):
    """Base of the market-wide events: they carry no strategy id."""

    @property
    def strategy_id(self) -> None:
        """Always None: a market event belongs to no strategy."""
        return None


@_quick_init
@dataclass(frozen=True, slots=True)
class StrategyEvent(Event):
    """Base of the events a strategy caused or had done to it: always tagged with its id."""

    scoped: ClassVar[bool] = True

    strategy_id: str


# -- market events ------------------------------------------------------------------------------
@_quick_init
@dataclass(frozen=True, slots=True)
class CandleClosed(MarketEvent):
    """A candle of (symbol, timeframe) closed; `ts` is its close time."""

    type: ClassVar[str] = "candle"
    symbol: str
    timeframe: str
    candle: Candle


@_quick_init
@dataclass(frozen=True, slots=True)
class CandleGap(MarketEvent):
    """Missing candles in a feed: `missing` candles between the one opening at `after` and at `next`."""

    type: ClassVar[str] = "candle_gap"
    symbol: str
    timeframe: str
    after: int
    next: int
    missing: int


@_quick_init
@dataclass(frozen=True, slots=True)
class FeedState(MarketEvent):
    """A feed changed state; `symbol` set for one symbol's stream, `detail` the state's open-ended facts."""

    type: ClassVar[str] = "feed_state"
    state: str
    detail: dict[str, Any] = field(default_factory=dict)
    symbol: str | None = None
    timeframe: str | None = None

    def __post_init__(self) -> None:
        # The payload holds state, symbol and timeframe beside the detail: a detail key of the
        # same name would overwrite one, and a timeframe without a symbol is not written.
        if self.symbol is None and self.timeframe is not None:
            raise ValueError(f"feed_state: timeframe {self.timeframe!r} without a symbol")
        clash = sorted((_FEED_KEYS if self.symbol is None else _STREAM_FEED_KEYS).intersection(self.detail))
        if clash:
            raise ValueError(f"feed_state: detail keys {clash} collide with the event's own fields")


@_quick_init
@dataclass(frozen=True, slots=True)
class Reconciled(MarketEvent):
    """Start-up reconciliation with the exchange finished: counts per kind of difference, and each line."""

    type: ClassVar[str] = "reconciled"
    differences: dict[str, int]
    lines: tuple[str, ...]


@_quick_init
@dataclass(frozen=True, slots=True)
class ExchangeDifference(MarketEvent):
    """An exchange balance or order no strategy accounts for."""

    type: ClassVar[str] = "exchange_difference"
    kind: str
    message: str
    client_id: str | None = field(default=None, kw_only=True, metadata=OMIT)
    quantity: float | None = field(default=None, kw_only=True, metadata=OMIT)
    price: float | None = field(default=None, kw_only=True, metadata=OMIT)
    symbol: str | None = field(default=None, kw_only=True, metadata=OMIT)
    asset: str | None = field(default=None, kw_only=True, metadata=OMIT)
    expected: float | None = field(default=None, kw_only=True, metadata=OMIT)
    actual: float | None = field(default=None, kw_only=True, metadata=OMIT)


@_quick_init
@dataclass(frozen=True, slots=True)
class KillSwitch(MarketEvent):
    """The global daily loss limit tripped: no new entries anywhere."""

    type: ClassVar[str] = "kill_switch"
    daily_loss: float
    limit: float
    currency: str | None
    tripped_by: str


@_quick_init
@dataclass(frozen=True, slots=True)
class ReplayStarted(MarketEvent):
    """A replay begins, with the files it reads."""

    type: ClassVar[str] = "replay_started"
    sources: tuple[ReplaySource, ...]


@_quick_init
@dataclass(frozen=True, slots=True)
class ReplayFinished(MarketEvent):
    """A replay ended after `candles` candles and `gaps` gaps."""

    type: ClassVar[str] = "replay_finished"
    candles: int
    gaps: int


# -- strategy events ----------------------------------------------------------------------------
@_quick_init
@dataclass(frozen=True, slots=True)
class StrategyStateChanged(StrategyEvent):
    """A strategy's lifecycle state changed (loaded / active / dormant / failed / unloaded)."""

    type: ClassVar[str] = "strategy_state"
    state: str
    change: str
    policy: str | None
    error: str | None


@_quick_init
@dataclass(frozen=True, slots=True)
class StrategyFault(StrategyEvent):
    """An exception in a strategy's code: its text, where it was raised and what was being done."""

    type: ClassVar[str] = "strategy_error"
    error: str
    where: str
    note: str


@_quick_init
@dataclass(frozen=True, slots=True)
class Signal(StrategyEvent):
    """An entry or exit decision with its score and each analyzer's part."""

    type: ClassVar[str] = "signal"
    decision: str
    score: float
    symbol: str
    close: float
    analyzers: dict[str, Any]  # the strategy's own details (`Strategy.signal`): scores, and text such as a regime


@_quick_init
@dataclass(frozen=True, slots=True)
class OrderSubmitted(StrategyEvent):
    """An order was sent; `group` names the pair an entry leg belongs to, `rung` the take-profit it takes."""

    type: ClassVar[str] = "order_submitted"
    client_id: str
    symbol: str
    side: OrderSide
    quantity: float
    intent: Intent
    position_id: str
    reason: str
    ref_price: float
    order_type: OrderType = field(default="market", kw_only=True, metadata=OMIT)
    limit_price: float | None = field(default=None, kw_only=True, metadata=OMIT)
    stop_price: float | None = field(default=None, kw_only=True, metadata=OMIT)
    group: str | None = field(default=None, kw_only=True, metadata=OMIT)
    rung: int | None = field(default=None, kw_only=True, metadata=RUNG)


@_quick_init
@dataclass(frozen=True, slots=True)
class OrderFilled(StrategyEvent):
    """An order filled (announced after the position event that booked the same fill)."""

    type: ClassVar[str] = "order_filled"
    fill: FillRecord = field(metadata=FLAT)


@_quick_init
@dataclass(frozen=True, slots=True)
class OrderCancelled(StrategyEvent):
    """An order ended unfilled: cancelled by the bot (client id, symbol, reason) or by the exchange (all of it)."""

    type: ClassVar[str] = "order_cancelled"
    client_id: str
    symbol: str
    side: OrderSide | None = field(default=None, kw_only=True, metadata=OMIT)
    quantity: float | None = field(default=None, kw_only=True, metadata=OMIT)
    intent: Intent | None = field(default=None, kw_only=True, metadata=OMIT)
    position_id: str | None = field(default=None, kw_only=True, metadata=OMIT)
    reason: str
    kind: str | None = field(default=None, kw_only=True, metadata=OMIT)
    exchange_reason: str | None = field(default=None, kw_only=True, metadata=OMIT)


@_quick_init
@dataclass(frozen=True, slots=True)
class OrderRejected(StrategyEvent):
    """The exchange refused an order: `kind` its stable category, `exchange_reason` its message."""

    type: ClassVar[str] = "order_rejected"
    client_id: str
    symbol: str
    side: OrderSide
    quantity: float
    intent: Intent
    position_id: str
    reason: str
    kind: str
    exchange_reason: str


@_quick_init
@dataclass(frozen=True, slots=True)
class ReconcileDifference(StrategyEvent):
    """The exchange disagreed with a strategy's journal at start-up, and what was done."""

    type: ClassVar[str] = "reconcile_difference"
    kind: str
    message: str
    client_id: str | None = field(default=None, kw_only=True, metadata=OMIT)
    quantity: float | None = field(default=None, kw_only=True, metadata=OMIT)
    price: float | None = field(default=None, kw_only=True, metadata=OMIT)
    symbol: str | None = field(default=None, kw_only=True, metadata=OMIT)
    asset: str | None = field(default=None, kw_only=True, metadata=OMIT)
    expected: float | None = field(default=None, kw_only=True, metadata=OMIT)
    actual: float | None = field(default=None, kw_only=True, metadata=OMIT)


@_quick_init
@dataclass(frozen=True, slots=True)
class PositionOpened(StrategyEvent):
    """A position opened by the fill of order `client_id`."""

    type: ClassVar[str] = "position_opened"
    position: PositionState = field(metadata=FLAT)
    client_id: str
    portfolio: PortfolioSnapshot
    fill: FillRecord


@_quick_init
@dataclass(frozen=True, slots=True)
class PositionReduced(StrategyEvent):
    """A partial close: `closed_quantity` at `price` (a take-profit rung or a close-percent action)."""

    type: ClassVar[str] = "position_reduced"
    position: PositionState = field(metadata=FLAT)
    closed_quantity: float
    price: float
    reason: str
    rung: int | None = field(default=None, kw_only=True, metadata=RUNG)
    portfolio: PortfolioSnapshot = field(kw_only=True)
    fill: FillRecord = field(kw_only=True)


@_quick_init
@dataclass(frozen=True, slots=True)
class PositionClosed(StrategyEvent):
    """A position closed: its trade record, the portfolio after it and the closing fill."""

    type: ClassVar[str] = "position_closed"
    trade: TradeRecord = field(metadata=FLAT)
    portfolio: PortfolioSnapshot
    fill: FillRecord


@_quick_init
@dataclass(frozen=True, slots=True)
class StopUpdated(StrategyEvent):
    """A position's stop moved: its stop-loss, or its trailing stop with the new anchor."""

    type: ClassVar[str] = "stop_updated"
    position_id: str
    stop_loss: float | None = field(default=None, kw_only=True, metadata=OMIT)
    trailing_stop: float | None = field(default=None, kw_only=True, metadata=OMIT)
    anchor: float | None = field(default=None, kw_only=True, metadata=OMIT)
    reason: str


@_quick_init
@dataclass(frozen=True, slots=True)
class TrailingActivated(StrategyEvent):
    """A position's trailing stop started, `distance_pct` behind `anchor`."""

    type: ClassVar[str] = "trailing_activated"
    position_id: str
    distance_pct: float
    anchor: float
    trailing_stop: float


@_quick_init
@dataclass(frozen=True, slots=True)
class RiskRejected(StrategyEvent):
    """An entry refused by a risk rule (`pair`: one leg of a pair, so neither was sent)."""

    type: ClassVar[str] = "risk_rejected"
    rule: str
    reason: str
    symbol: str
    side: str
    quantity: float
    price: float
    pair: bool = field(default=False, kw_only=True, metadata=OMIT)


@_quick_init
@dataclass(frozen=True, slots=True)
class ActionFailed(StrategyEvent):
    """A queued action could not be carried out."""

    type: ClassVar[str] = "action_failed"
    kind: str
    error: str


MARKET_EVENT_CLASSES: Final[tuple[type[MarketEvent], ...]] = (
    CandleClosed, CandleGap, FeedState, Reconciled, ExchangeDifference, KillSwitch, ReplayStarted, ReplayFinished,
)
STRATEGY_EVENT_CLASSES: Final[tuple[type[StrategyEvent], ...]] = (
    StrategyStateChanged, StrategyFault, Signal, OrderSubmitted, OrderFilled, OrderCancelled, OrderRejected,
    ReconcileDifference, PositionOpened, PositionReduced, PositionClosed, StopUpdated, TrailingActivated,
    RiskRejected, ActionFailed,
)
# The wire and CLI name events by their type string; everything inside the process by class.
EVENT_CLASSES: Final[dict[str, type[Event]]] = {cls.type: cls for cls in (*MARKET_EVENT_CLASSES, *STRATEGY_EVENT_CLASSES)}
STRATEGY_EVENTS: Final[frozenset[str]] = frozenset(cls.type for cls in STRATEGY_EVENT_CLASSES)
MARKET_EVENTS: Final[frozenset[str]] = frozenset(cls.type for cls in MARKET_EVENT_CLASSES)
EVENT_TYPES: Final[frozenset[str]] = STRATEGY_EVENTS | MARKET_EVENTS


def event_class(type_: str) -> type[Event]:
    """The class of a type string; ValueError naming it when there is none."""
    cls = EVENT_CLASSES.get(type_)
    if cls is None:
        raise ValueError(f"unknown event type {type_!r}")
    return cls
