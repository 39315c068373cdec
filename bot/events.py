"""The typed events: one frozen, slotted class per event type, its records, and the type registry.

Every event carries `seq` (bus order), `ts` (market time: the candle clock in replay) and
`ts_init` (when it was created: the wall clock in live, equal to `ts` in replay). Events a
strategy caused derive from `StrategyEvent` and cannot be built without a `strategy_id`.
Every class is a frozen msgspec Struct: slotted, immutable, built in C (a tenth of a frozen
dataclass's cost), positional in field order. msgspec makes a class's fields keyword-only per
class, so a class with positional fields and keyword-only ones is split in two (its positional
fields in a private base). How an event is written as bytes (events.jsonl, the wire) is
`bot.event_codec`'s job; the class-level notes of `Frozen` tell it which optional keys today's
format leaves out and the key order where it is not the field order.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

import msgspec

from bot.ohlcv import Candle

OrderSide = Literal["buy", "sell"]
Intent = Literal["open", "close"]
OrderType = Literal["market", "limit", "stop"]



# Detail keys a feed state cannot hold: its payload has them (a "symbol" key marks one symbol's
# stream; a market-wide state may name a timeframe in its detail).
_FEED_KEYS: Final = frozenset({"state", "symbol"})
_STREAM_FEED_KEYS: Final = frozenset({"state", "symbol", "timeframe"})


# Optional facts of a difference found at reconciliation (`bot.live.reconcile`).
_DIFFERENCE_DETAIL: Final = frozenset({"client_id", "quantity", "price", "symbol", "asset", "expected", "actual"})


class Frozen(msgspec.Struct, frozen=True):
    """Base of every event and record: a frozen, slotted Struct, with the codec's notes on its fields."""

    # Read by bot.event_codec; a subclass names its own fields. Keys left out of the payload
    # when the value is the field's default:
    __omit__: ClassVar[frozenset[str]] = frozenset()
    # Nested records whose keys sit in the parent payload:
    __flat__: ClassVar[frozenset[str]] = frozenset()
    # The take-profit rung, left out of a line when the sibling `reason` says it (`take_profit_<rung + 1>`):
    __rung__: ClassVar[frozenset[str]] = frozenset()
    # The payload's key order where it is not the field order (msgspec puts keyword-only fields
    # last); empty: the field order.
    __order__: ClassVar[tuple[str, ...]] = ()


# -- records carried inside events ------------------------------------------------------------
class _FillRecordPositional(Frozen, frozen=True):
    """FillRecord's positional fields."""

    client_id: str
    symbol: str
    side: OrderSide
    quantity: float
    price: float
    fee: float
    liquidity: Literal["maker", "taker"]
    reason: str
    fill_ts: int


class FillRecord(_FillRecordPositional, frozen=True, kw_only=True):
    """One fill as events and the journal carry it; `fill_ts` is its market time."""

    __rung__ = frozenset({"rung"})
    rung: int | None = None


class PortfolioSnapshot(Frozen, frozen=True):
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


class PositionState(Frozen, frozen=True):
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


class TradeRecord(Frozen, frozen=True):
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


class ReplaySource(Frozen, frozen=True):
    """One recorded candle file a replay reads."""

    symbol: str
    file: str
    timeframe: str


# -- bases --------------------------------------------------------------------------------------
class Event(Frozen, frozen=True):
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


class MarketEvent(Event, frozen=True):
    """Base of the market-wide events: they carry no strategy id."""

    # A class attribute, not a property: read for every market event published (no call).
    strategy_id: ClassVar[None] = None


class StrategyEvent(Event, frozen=True):
    """Base of the events a strategy caused or had done to it: always tagged with its id."""

    scoped: ClassVar[bool] = True

    strategy_id: str


# -- market events ------------------------------------------------------------------------------
class CandleClosed(MarketEvent, frozen=True):
    """A candle of (symbol, timeframe) closed; `ts` is its close time."""

    type: ClassVar[str] = "candle"
    symbol: str
    timeframe: str
    candle: Candle


class CandleGap(MarketEvent, frozen=True):
    """Missing candles in a feed: `missing` candles between the one opening at `after` and at `next`."""

    type: ClassVar[str] = "candle_gap"
    symbol: str
    timeframe: str
    after: int
    next: int
    missing: int


class FeedState(MarketEvent, frozen=True):
    """A feed changed state; `symbol` set for one symbol's stream, `detail` the state's open-ended facts."""

    type: ClassVar[str] = "feed_state"
    state: str
    detail: dict[str, Any] = msgspec.field(default_factory=dict)
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


class Reconciled(MarketEvent, frozen=True):
    """Start-up reconciliation with the exchange finished: counts per kind of difference, and each line."""

    type: ClassVar[str] = "reconciled"
    differences: dict[str, int]
    lines: tuple[str, ...]


class _ExchangeDifferencePositional(MarketEvent, frozen=True):
    """ExchangeDifference's positional fields."""

    kind: str
    message: str


class ExchangeDifference(_ExchangeDifferencePositional, frozen=True, kw_only=True):
    """An exchange balance or order no strategy accounts for."""

    type: ClassVar[str] = "exchange_difference"
    __omit__ = _DIFFERENCE_DETAIL
    client_id: str | None = None
    quantity: float | None = None
    price: float | None = None
    symbol: str | None = None
    asset: str | None = None
    expected: float | None = None
    actual: float | None = None


class KillSwitch(MarketEvent, frozen=True):
    """The global daily loss limit tripped: no new entries anywhere."""

    type: ClassVar[str] = "kill_switch"
    daily_loss: float
    limit: float
    currency: str | None
    tripped_by: str


class ReplayStarted(MarketEvent, frozen=True):
    """A replay begins, with the files it reads."""

    type: ClassVar[str] = "replay_started"
    sources: tuple[ReplaySource, ...]


class ReplayFinished(MarketEvent, frozen=True):
    """A replay ended after `candles` candles and `gaps` gaps."""

    type: ClassVar[str] = "replay_finished"
    candles: int
    gaps: int


# -- strategy events ----------------------------------------------------------------------------
class StrategyStateChanged(StrategyEvent, frozen=True):
    """A strategy's lifecycle state changed (loaded / active / dormant / failed / unloaded)."""

    type: ClassVar[str] = "strategy_state"
    state: str
    change: str
    policy: str | None
    error: str | None


class StrategyFault(StrategyEvent, frozen=True):
    """An exception in a strategy's code: its text, where it was raised and what was being done."""

    type: ClassVar[str] = "strategy_error"
    error: str
    where: str
    note: str


class Signal(StrategyEvent, frozen=True):
    """An entry or exit decision with its score and each analyzer's part."""

    type: ClassVar[str] = "signal"
    decision: str
    score: float
    symbol: str
    close: float
    analyzers: dict[str, Any]  # the strategy's own details (`Strategy.signal`): scores, and text such as a regime


class _OrderSubmittedPositional(StrategyEvent, frozen=True):
    """OrderSubmitted's positional fields."""

    client_id: str
    symbol: str
    side: OrderSide
    quantity: float
    intent: Intent
    position_id: str
    reason: str
    ref_price: float


class OrderSubmitted(_OrderSubmittedPositional, frozen=True, kw_only=True):
    """An order was sent; `group` names the pair an entry leg belongs to, `rung` the take-profit it takes."""

    type: ClassVar[str] = "order_submitted"
    __omit__ = frozenset({"order_type", "limit_price", "stop_price", "group"})
    __rung__ = frozenset({"rung"})
    order_type: OrderType = "market"
    limit_price: float | None = None
    stop_price: float | None = None
    group: str | None = None
    rung: int | None = None


class OrderFilled(StrategyEvent, frozen=True):
    """An order filled (announced after the position event that booked the same fill)."""

    type: ClassVar[str] = "order_filled"
    __flat__ = frozenset({"fill"})
    fill: FillRecord


class _OrderCancelledPositional(StrategyEvent, frozen=True):
    """OrderCancelled's positional fields."""

    client_id: str
    symbol: str
    reason: str


class OrderCancelled(_OrderCancelledPositional, frozen=True, kw_only=True):
    """An order ended unfilled: cancelled by the bot (client id, symbol, reason) or by the exchange (all of it)."""

    type: ClassVar[str] = "order_cancelled"
    __omit__ = frozenset({"side", "quantity", "intent", "position_id", "kind", "exchange_reason"})
    __order__ = ("client_id", "symbol", "side", "quantity", "intent", "position_id", "reason", "kind", "exchange_reason")
    side: OrderSide | None = None
    quantity: float | None = None
    intent: Intent | None = None
    position_id: str | None = None
    kind: str | None = None
    exchange_reason: str | None = None


class OrderRejected(StrategyEvent, frozen=True):
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


class _ReconcileDifferencePositional(StrategyEvent, frozen=True):
    """ReconcileDifference's positional fields."""

    kind: str
    message: str


class ReconcileDifference(_ReconcileDifferencePositional, frozen=True, kw_only=True):
    """The exchange disagreed with a strategy's journal at start-up, and what was done."""

    type: ClassVar[str] = "reconcile_difference"
    __omit__ = _DIFFERENCE_DETAIL
    client_id: str | None = None
    quantity: float | None = None
    price: float | None = None
    symbol: str | None = None
    asset: str | None = None
    expected: float | None = None
    actual: float | None = None


class PositionOpened(StrategyEvent, frozen=True):
    """A position opened by the fill of order `client_id`."""

    type: ClassVar[str] = "position_opened"
    __flat__ = frozenset({"position"})
    position: PositionState
    client_id: str
    portfolio: PortfolioSnapshot
    fill: FillRecord


class _PositionReducedPositional(StrategyEvent, frozen=True):
    """PositionReduced's positional fields."""

    position: PositionState
    closed_quantity: float
    price: float
    reason: str


class PositionReduced(_PositionReducedPositional, frozen=True, kw_only=True):
    """A partial close: `closed_quantity` at `price` (a take-profit rung or a close-percent action)."""

    type: ClassVar[str] = "position_reduced"
    __flat__ = frozenset({"position"})
    __rung__ = frozenset({"rung"})
    rung: int | None = None
    portfolio: PortfolioSnapshot
    fill: FillRecord


class PositionClosed(StrategyEvent, frozen=True):
    """A position closed: its trade record, the portfolio after it and the closing fill."""

    type: ClassVar[str] = "position_closed"
    __flat__ = frozenset({"trade"})
    trade: TradeRecord
    portfolio: PortfolioSnapshot
    fill: FillRecord


class _StopUpdatedPositional(StrategyEvent, frozen=True):
    """StopUpdated's positional fields."""

    position_id: str
    reason: str


class StopUpdated(_StopUpdatedPositional, frozen=True, kw_only=True):
    """A position's stop moved: its stop-loss, or its trailing stop with the new anchor."""

    type: ClassVar[str] = "stop_updated"
    __omit__ = frozenset({"stop_loss", "trailing_stop", "anchor"})
    __order__ = ("position_id", "stop_loss", "trailing_stop", "anchor", "reason")
    stop_loss: float | None = None
    trailing_stop: float | None = None
    anchor: float | None = None


class TrailingActivated(StrategyEvent, frozen=True):
    """A position's trailing stop started, `distance_pct` behind `anchor`."""

    type: ClassVar[str] = "trailing_activated"
    position_id: str
    distance_pct: float
    anchor: float
    trailing_stop: float


class _RiskRejectedPositional(StrategyEvent, frozen=True):
    """RiskRejected's positional fields."""

    rule: str
    reason: str
    symbol: str
    side: str
    quantity: float
    price: float


class RiskRejected(_RiskRejectedPositional, frozen=True, kw_only=True):
    """An entry refused by a risk rule (`pair`: one leg of a pair, so neither was sent)."""

    type: ClassVar[str] = "risk_rejected"
    __omit__ = frozenset({"pair"})
    pair: bool = False


class ActionFailed(StrategyEvent, frozen=True):
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
