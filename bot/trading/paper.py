"""The paper exchange: fills a strategy's orders from candles, per the documented fill model."""
from __future__ import annotations

from typing import Any, ClassVar, Literal

from bot.config.models import FeesConfig, FillConfig
from bot.ohlcv import Candle
from bot.trading.account import AccountSink
from bot.trading.orders import Fill, Intent, Order, OrderNumbering, OrderSide


class PaperAccount(OrderNumbering):
    """One strategy's account on the paper exchange: its pending orders, fill model and fees.

    Fill model (documented trading semantics):
    - `next_open` (default): a market order decided on a candle's close fills at the next
      candle's open, so no decision sees a price it could not have traded at.
    - `close`: it fills at once at the deciding candle's close.
    Either way the price moves against the order by `slippage_bps`. Stop and take-profit
    triggers fill at their trigger price, or at the open when the candle gapped through it.
    A limit order waits from the next candle on until the price trades through its limit, and
    fills at the limit (or at the open, when the candle opened beyond it), without slippage.
    Take-profits and limit orders pay the maker fee, everything else the taker fee.
    """

    # Every paper stop is enforced from candles by the position manager.
    rests_stops: ClassVar[bool] = False

    __slots__ = ("_fees", "_fill", "pending_orders", "_slip")

    def __init__(self, strategy_id: str, fees: FeesConfig, fill: FillConfig) -> None:
        super().__init__(strategy_id)
        self._fees = fees
        self._fill = fill
        self._slip = fill.slippage_bps / 10_000.0
        # Mutated in place, never rebound: the position manager holds a reference to it.
        self.pending_orders: list[Order] = []

    def configure(self, fees: FeesConfig, fill: FillConfig) -> None:
        """Take new fee and fill settings for orders from now on."""
        self._fees = fees
        self._fill = fill
        self._slip = fill.slippage_bps / 10_000.0

    def submit(self, order: Order) -> Fill | None:
        """Accept an order: a market order fills now (close model) or at the next candle's open; a limit order waits."""
        if self._fill.model == "close" and order.order_type == "market":
            return self._market_fill(order, order.ref_price, order.submitted_ts)
        self.pending_orders.append(order)
        return None

    def fill_now(self, order: Order, price: float, ts: int) -> Fill:
        """Fill a market order at once at `price` (plus slippage): closing out on unload."""
        return self._market_fill(order, price, ts)

    def on_candle(self, symbol: str, candle: Candle, ts: int) -> list[Fill]:
        """Fill this symbol's pending market orders at the candle's open, and its limit orders the candle reached."""
        pending = self.pending_orders
        if not pending:
            return []
        fills: list[Fill] = []
        waiting: list[Order] = []
        for order in pending:
            if order.symbol != symbol:
                waiting.append(order)
            elif order.order_type == "market":
                fills.append(self._market_fill(order, candle.open, ts))
            else:
                fill = self._limit_fill(order, candle, ts)
                if fill is None:
                    waiting.append(order)
                else:
                    fills.append(fill)
        pending[:] = waiting
        return fills

    def _limit_fill(self, order: Order, candle: Candle, ts: int) -> Fill | None:
        limit = order.limit_price
        assert limit is not None, f"limit order {order.client_id} without a limit price"
        if order.side == "buy":
            if candle.low > limit:
                return None
            price = min(candle.open, limit)
        else:
            if candle.high < limit:
                return None
            price = max(candle.open, limit)
        return Fill(order, price, order.quantity, price * order.quantity * self._fees.maker_bps / 10_000.0, ts, "maker")

    def cancel_pending(self, intent: Intent | None = None) -> list[Order]:
        """Drop pending orders (all, or those of one intent) and return them."""
        pending = self.pending_orders
        dropped = [o for o in pending if intent is None or o.intent == intent]
        pending[:] = [o for o in pending if not (intent is None or o.intent == intent)]
        return dropped

    def trigger_fill(self, order: Order, trigger: float, candle: Candle, ts: int, kind: Literal["stop", "limit"]) -> Fill:
        """Fill a stop or take-profit at its trigger, or at the open if the candle gapped through it."""
        open_ = candle.open
        worse_for_seller = kind == "stop"
        if (order.side == "sell") == worse_for_seller:
            # A sell stop (or buy limit) fills at the lower of open and trigger: a gap down
            # through a sell stop fills at the open, and a buy limit gapped under fills better.
            price = open_ if open_ < trigger else trigger
        else:
            price = open_ if open_ > trigger else trigger
        if kind == "limit":
            return Fill(order, price, order.quantity, price * order.quantity * self._fees.maker_bps / 10_000.0, ts, "maker")
        return Fill(order, price, order.quantity, price * order.quantity * self._fees.taker_bps / 10_000.0, ts, "taker")

    # -- stops: the paper exchange enforces every stop from candles, none rests "on the exchange" ----
    def protect(self, position_id: str, symbol: str, side: OrderSide, quantity: float, stop: float | None, reason: str, ts: int) -> None:
        """Nothing to place: `trigger_fill` fills stops the candles reach."""

    def stop_held(self, position_id: str) -> bool:
        """Never: the position manager enforces paper stops itself."""
        return False

    def stop_crossed(self, position_id: str) -> None:
        """Never called: no paper stop is held."""

    def position_closed(self, position_id: str) -> None:
        """Nothing rests on a paper exchange."""

    def restore_stop(self, order: Order) -> None:
        """A journal written in mode live names a stop resting on a real exchange: paper cannot take it over."""
        raise ValueError(
            f"the journal has stop order {order.client_id} resting on the live exchange for position {order.position_id}: "
            "restore this strategy in mode live (or use another journal for paper trading)"
        )

    def _market_fill(self, order: Order, base_price: float, ts: int) -> Fill:
        price = base_price * (1.0 + self._slip) if order.side == "buy" else base_price * (1.0 - self._slip)
        fee = price * order.quantity * self._fees.taker_bps / 10_000.0
        return Fill(order, price, order.quantity, fee, ts, "taker")


class PaperExchange:
    """The shared paper exchange gateway: opens one isolated account per strategy id."""

    name = "paper"

    def open_account(self, strategy_id: str, fees: FeesConfig, fill: FillConfig, sink: AccountSink) -> PaperAccount:
        """Create the account a strategy's orchestrator trades through (it needs no sink: paper outcomes are return values)."""
        return PaperAccount(strategy_id, fees, fill)

    def status(self) -> dict[str, Any]:
        """What `status` shows of the gateway."""
        return {"gateway": "paper"}

    def problems(self) -> list[str]:
        """Nothing can go wrong between the bot and its own paper exchange."""
        return []

    async def start(self) -> None:
        """Nothing to connect for paper trading."""

    async def stop(self) -> None:
        """Nothing to disconnect for paper trading."""
