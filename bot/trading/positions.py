"""One strategy's positions: the coordinator of their orders, fills and exits (stop-loss, take-profit ladder, trailing stop)."""
from __future__ import annotations

from typing import Literal

from bot.bus import StrategyPublisher
from bot.config.models import ExitConfig
from bot.errors import ActionError
from bot.events import (
    FillRecord,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    PositionClosed,
    PositionOpened,
    PositionReduced,
    RiskRejected,
    StopUpdated,
    TradeRecord,
    TrailingActivated,
)
from bot.ohlcv import Candle
from bot.trading.account import ExchangeAccount, OpenAccount
from bot.trading.accounting import Accounting, trade_record
from bot.trading.exit_rules import rung_quantity, rungs_hit, stop_hit, trail_move, trail_stop
from bot.trading.journalled import JournalledPosition, PendingOrder
from bot.trading.order_book import OrderBook
from bot.trading.orders import Fill, Order, OrderSide
from bot.trading.portfolio import Portfolio
from bot.trading.position import DUST, Position, TakeProfitLevel
from bot.trading.risk import RiskView

__all__ = ["Position", "PositionManager", "TakeProfitLevel"]

# A take-profit rung's close carries the reason `take_profit_<n>` (1-based) for people and
# trades.csv; the ladder itself goes by the order's typed `rung`.
_RUNG = "take_profit_"


class PositionManager:
    """Owns one strategy's positions: sends their orders, has fills booked, enforces their exits, and announces each change.

    The jobs are split: the exit rules are pure functions (exit_rules), what orders in flight
    reserve is the order book (order_book), and booking fills and marks is the accounting
    (accounting); this class sequences them, publishes the events and talks to the account.
    The account is opened with this manager as its sink: a live account reports fills and
    refusals later, from the gateway's task, through `apply_fill`, `drop_order` and
    `announce_order`.

    Events are stamped with processing time on the event clock (monotonic); the market time of
    a fill (the open time of the candle it filled in) is in the payload as `fill_ts`, and as
    `entry_ts`/`exit_ts` in trade records.
    """

    def __init__(
        self,
        strategy_id: str,
        exits: ExitConfig,
        open_account: OpenAccount,
        portfolio: Portfolio,
        risk: RiskView,
        publish: StrategyPublisher,
    ) -> None:
        self.strategy_id = strategy_id
        self._exits = exits
        self._risk = risk
        self._portfolio = portfolio
        self._publish = publish
        self.positions: dict[str, Position] = {}
        # Open positions per symbol, oldest first (read-only outside this class).
        self.by_symbol: dict[str, list[Position]] = {}
        self._accounting = Accounting(portfolio, self.positions)
        self._revalue = self._accounting.revalue  # bound once: on_bar calls it per candle while holding
        self._marks = self._accounting.marks
        self._last_ts = 0
        self._ladder_closes_all = _ladder_closes_all(exits)
        self._next_id = 0
        self.closed_trades = 0
        self.winning_trades = 0
        # Last: the account gets this manager, complete but for the account itself, as its sink.
        self._account: ExchangeAccount = open_account(self)
        self._rests_stops = self._account.rests_stops
        self._book = OrderBook(self._account.pending_orders)
        # The account's own pending list (mutated in place), so "anything pending?" is a truth test.
        self._pending_orders = self._book.orders

    @property
    def account(self) -> ExchangeAccount:
        """The exchange account its orders go through."""
        return self._account

    def configure(self, exits: ExitConfig) -> None:
        """Exit rules for positions opened from now on (open ones keep theirs)."""
        self._exits = exits
        self._ladder_closes_all = _ladder_closes_all(exits)

    def restore(self, positions: list[JournalledPosition], pending: list[PendingOrder], last_order: int, last_position: int) -> None:
        """Rebuild open positions and pending orders from journalled state (crash recovery).

        Numbering continues after the highest journalled ids, so no client order id or position
        id is reused. Exposure is re-registered with the risk view.
        """
        if self.positions or self._pending_orders:
            raise ValueError(f"strategy {self.strategy_id!r} already has positions or orders; restore only a fresh one")
        for journalled in positions:
            position = self._restored_position(journalled)
            self.positions[position.id] = position
            self.by_symbol.setdefault(position.symbol, []).append(position)
            self._marks.setdefault(position.symbol, position.entry_price)
            self._risk.on_entry(position.id, position.quantity * position.entry_price)
        book = self._book
        for entry in pending:
            order = entry.order
            if order.order_type == "stop":
                # A stop resting on the exchange reserves nothing here: its account looks it up.
                self._account.restore_stop(order)
                continue
            self._pending_orders.append(order)
            if order.intent == "open":
                book.entry_sent(order.symbol, order.quantity)
                self._risk.on_entry(order.position_id, order.quantity * order.ref_price)
                if entry.pair_group:
                    book.join_group(order.position_id, entry.pair_group)
            elif order.position_id in self.positions:
                book.close_restored(self.positions[order.position_id], order)
        # Pending entries carry position ids the positions table has not seen yet: numbering
        # continues after those too, or a restart would hand their ids (and pair groups) out again.
        prefix = f"{self.strategy_id}-p"
        pending_numbers = [
            int(entry.order.position_id[len(prefix):]) for entry in pending
            if entry.order.position_id.startswith(prefix) and entry.order.position_id[len(prefix):].isdigit()
        ]
        self._next_id = max(self._next_id, last_position, *pending_numbers)
        self._account.continue_numbering(last_order)
        for position in self.positions.values():
            self._sync_stop(position)

    def _restored_position(self, journalled: JournalledPosition) -> Position:
        state = journalled.state
        position = Position(
            state.position_id, state.symbol, state.side, 1 if state.side == "long" else -1, state.initial_quantity, state.quantity,
            state.entry_price, state.entry_ts,
        )
        position.stop_loss = state.stop_loss
        position.take_profits = [TakeProfitLevel(price, qty, bool(done)) for price, qty, done in state.take_profit]
        position.trailing_distance_pct = state.trailing_distance_pct
        position.trailing_activation_price = state.trailing_activation_price
        position.trailing_active = state.trailing_active
        position.trailing_stop = state.trailing_stop
        position.trail_anchor = journalled.trail_anchor
        if journalled.rules_kept:
            position.ladder_closes_all = state.ladder_closes_all
            position.break_even = state.break_even
        else:
            position.ladder_closes_all = self._ladder_closes_all
            position.break_even = self._exits.break_even_after_first_take_profit
        position.realised = state.realised
        position.fees = state.fees
        position.closed_quantity = journalled.closed_quantity
        position.exit_value = journalled.exit_value
        position.status = state.status
        position.group = state.group
        position.refresh_stop()
        return position

    # -- queries -------------------------------------------------------------------------------
    def open_count(self) -> int:
        """Open positions plus entries waiting to fill."""
        return len(self.positions) + self._book.entries

    def is_flat(self, symbol: str) -> bool:
        """True when the symbol has no open position and no pending entry."""
        return not self.by_symbol.get(symbol) and not self._book.entry_pending_on(symbol)

    def position_on(self, symbol: str) -> Position | None:
        """The oldest open position on a symbol, if any."""
        positions = self.by_symbol.get(symbol)
        return positions[0] if positions else None

    def pending_orders(self) -> tuple[Order, ...]:
        """Orders sent and not yet filled."""
        return tuple(self._pending_orders)

    def get(self, position_id: str) -> Position:
        """An open position by id; ActionError when there is none."""
        position = self.positions.get(position_id)
        if position is None:
            raise ActionError(f"no open position {position_id!r}")
        return position

    # -- orders --------------------------------------------------------------------------------
    def submit_open(
        self, symbol: str, side: Literal["long", "short"], quantity: float, reason: str, ts: int, ref_price: float, limit_price: float | None = None
    ) -> None:
        """Check an entry (at market, or at `limit_price`) against the risk limits and send it, or publish the rejection."""
        price = ref_price if limit_price is None else limit_price
        rejection = self._risk.check_open(quantity, price, self.open_count(), ts)
        if rejection is not None:
            self._reject(rejection, symbol, side, quantity, price)
            return
        position_id = self._new_position_id()
        self._risk.on_entry(position_id, quantity * price)
        self._send_open(symbol, side, quantity, reason, ts, price, position_id, limit_price)

    def submit_pair(self, legs: tuple[tuple[str, Literal["long", "short"], float, float], ...], reason: str, ts: int) -> str | None:
        """Send legs (symbol, side, quantity, ref price) as one pair: every leg passes the risk limits, or none is sent.

        Returns the pair's group id, or None when a leg was rejected.
        """
        registered: list[str] = []
        for index, (symbol, side, quantity, price) in enumerate(legs):
            rejection = self._risk.check_open(quantity, price, self.open_count() + index, ts)
            if rejection is not None:
                for position_id in registered:
                    self._risk.release(position_id)
                self._next_id -= len(registered)
                self._reject(rejection, symbol, side, quantity, price, pair=True)
                return None
            position_id = self._new_position_id()
            self._risk.on_entry(position_id, quantity * price)
            registered.append(position_id)
        group = registered[0].replace("-p", "-g", 1)
        for (symbol, side, quantity, price), position_id in zip(legs, registered):
            self._book.join_group(position_id, group)
            self._send_open(symbol, side, quantity, reason, ts, price, position_id)
        return group

    def _new_position_id(self) -> str:
        self._next_id += 1
        return f"{self.strategy_id}-p{self._next_id}"

    def _reject(self, rejection: tuple[str, str], symbol: str, side: str, quantity: float, price: float, pair: bool = False) -> None:
        rule, why = rejection
        self._publish(RiskRejected, None, rule, why, symbol, side, quantity, price, pair=pair)

    def _send_open(
        self,
        symbol: str,
        side: Literal["long", "short"],
        quantity: float,
        reason: str,
        ts: int,
        ref_price: float,
        position_id: str,
        limit_price: float | None = None,
    ) -> None:
        order = self._account.new_order(
            symbol, "buy" if side == "long" else "sell", quantity, "open", position_id, reason, ts, ref_price,
            "market" if limit_price is None else "limit", limit_price,
        )
        self._book.entry_sent(symbol, quantity)
        self.announce_order(order)
        fill = self._account.submit(order)
        if fill is not None:
            self.apply_fill(fill)

    def group_legs(self, group: str) -> list[Position]:
        """The open legs of a pair."""
        return [p for p in self.positions.values() if p.group == group]

    def close_group(self, group: str, reason: str, ts: int) -> int:
        """Send market closes for what is left of every leg of a pair; return how many legs."""
        count = 0
        for position in self.group_legs(group):
            available = position.open_quantity
            if available > 0:
                price = self._accounting.mark_of(position)
                self.submit_close(position, available, reason, ts, price)
                count += 1
        return count

    def submit_close(self, position: Position, quantity: float, reason: str, ts: int, ref_price: float, rung: int | None = None) -> None:
        """Send a market order closing `quantity` of a position (`rung`: the take-profit rung it takes, if any)."""
        available = position.open_quantity
        if quantity > available * (1 + DUST):
            raise ActionError(f"cannot close {quantity} of {position.id}: only {available} not already being closed")
        quantity = min(quantity, available)
        side: OrderSide = "sell" if position.direction > 0 else "buy"
        order = self._account.new_order(position.symbol, side, quantity, "close", position.id, reason, ts, ref_price, rung=rung)
        self._book.close_sent(position, quantity)
        self.announce_order(order)
        fill = self._account.submit(order)
        if fill is not None:
            self.apply_fill(fill)
        elif position.status != "closed":
            self._sync_stop(position)

    def on_bar(self, symbol: str, candle: Candle, ts: int) -> list[Position] | None:
        """Per candle of the trading timeframe: fill pending orders, enforce exits, mark to the close.

        Returns the symbol's open positions after them (its list in `by_symbol`, None before its
        first), so the caller's own per-position work needs no second lookup. The hot path of
        every delivery: with nothing pending and no position it is two lookups.
        """
        self._last_ts = ts
        if self._pending_orders:
            self.fill_pending(symbol, candle)
        held = self.by_symbol.get(symbol)
        if held:
            if len(held) == 1:
                # The usual case: no copy needed, since nothing is enforced after this one.
                self._enforce(held[0], candle)
            else:
                for position in tuple(held):  # a copy: an exit removes its position from `held`
                    self._enforce(position, candle)
            # After the exits: a fill inside this candle marked at its own price, and what is
            # left open is worth the close.
            self._marks[symbol] = candle.close
            self._revalue()
        else:
            self._marks[symbol] = candle.close
        return held

    def mark_to(self, symbol: str, price: float, ts: int) -> None:
        """Mark open positions of a symbol at a known close (after a restore, before candles flow)."""
        self._marks[symbol] = price
        self._last_ts = ts
        if self.by_symbol.get(symbol):
            self._accounting.revalue()

    def cash(self) -> float:
        """The strategy's cash (what its portfolio counts on, in the quote currency)."""
        return self._portfolio.cash

    def last_price(self, symbol: str) -> float | None:
        """The latest close (or fill price) seen for a symbol."""
        return self._marks.get(symbol)

    def fill_pending(self, symbol: str, candle: Candle) -> None:
        """Fill this symbol's pending market orders at the candle's open, stamped with its open time."""
        for fill in self._account.on_candle(symbol, candle, candle.ts):
            self.apply_fill(fill)

    def cancel_pending(self, entries_only: bool = False) -> int:
        """Cancel pending orders (all, or only entries: pending closes stay); return how many were cancelled now.

        A live account cancels asynchronously (a market order in flight cannot be cancelled at
        all): its orders end later, through `drop_order` or `apply_fill`.
        """
        dropped = self._account.cancel_pending(intent="open" if entries_only else None)
        orphaned: set[str] = set()
        for order in dropped:
            group = self._forget(order)
            if group is not None:
                orphaned.add(group)
            self._publish(OrderCancelled, None, order.client_id, order.symbol, order.reason)
        # A pair whose entry was cancelled after its other leg filled would be left unhedged:
        # the filled leg is closed too (its close stays pending; entries_only keeps it).
        if entries_only:
            for group in orphaned:
                self.close_group(group, "pair_incomplete", self._last_ts)
        return len(dropped)

    def _forget(self, order: Order, sync_stop: bool = True) -> str | None:
        """Undo what an order that ends unfilled had reserved; return the pair group of a dropped entry."""
        if order.intent == "open":
            group = self._book.entry_ended(order)
            self._risk.release(order.position_id)
            return group
        position = self.positions.get(order.position_id)
        # A take-profit whose close the exchange refused has not been taken: it may fire again.
        if position is not None and self._book.close_dropped(position, order) and sync_stop:
            self._sync_stop(position)
        return None

    def drop_order(self, order: Order, outcome: Literal["rejected", "cancelled"], kind: str, reason: str) -> None:
        """An order ended without any fill (the exchange refused or cancelled it): release it and announce why.

        `kind` is a stable category (insufficient_funds, invalid_order, rate_limited, ...) and
        `reason` the exchange's own message. A refused pair leg closes its partner if that filled.
        """
        # A close held back while the exchange's stop fired is sent again first (capped at what is
        # left): syncing the stop before would place one only to cancel it for that close.
        resend = kind == "stop_filled"
        group = self._forget(order, sync_stop=not resend)
        if outcome == "rejected":
            self._publish(
                OrderRejected, None, order.client_id, order.symbol, order.side, order.quantity, order.intent, order.position_id,
                order.reason, kind, reason,
            )
        else:
            self._publish(
                OrderCancelled, None, order.client_id, order.symbol, order.reason, side=order.side, quantity=order.quantity,
                intent=order.intent, position_id=order.position_id, kind=kind, exchange_reason=reason,
            )
        if resend:
            self._resend_after_stop(order)
        if group is not None:
            if self.group_legs(group):
                self.close_group(group, "pair_incomplete", self._last_ts)
            elif self._book.leg_on_its_way(group):
                # The partner's entry is still on its way: when it fills, it is closed at once.
                self._book.mark_broken(group)

    def _resend_after_stop(self, order: Order) -> None:
        """A close held back while the exchange's stop fired: what is still wanted of it goes out, capped at what is left."""
        position = self.positions.get(order.position_id)
        if position is None:
            return
        quantity = min(order.quantity, position.open_quantity)
        if quantity > position.initial_quantity * DUST:
            self.submit_close(position, quantity, order.reason, self._last_ts, self._accounting.mark_of(position), order.rung)
        else:
            self._sync_stop(position)

    def close_all_now(self, reason: str) -> int:
        """Close every open position at once at its last mark (there is no next candle); return how many."""
        count = self._close_all_now_pass(reason)
        if self.positions:
            # Closing a pair leg sent its sibling a market close for the next candle, which will
            # not come: cancel it and close at once too.
            self.cancel_pending()
            count += self._close_all_now_pass(reason)
        return count

    def _close_all_now_pass(self, reason: str) -> int:
        count = 0
        for position in list(self.positions.values()):
            quantity = position.open_quantity
            if quantity <= 0:
                continue
            price = self._accounting.mark_of(position)
            side: OrderSide = "sell" if position.direction > 0 else "buy"
            order = self._account.new_order(position.symbol, side, quantity, "close", position.id, reason, self._last_ts, price)
            self.announce_order(order)
            fill = self._account.fill_now(order, price, self._last_ts)
            if fill is None:  # a live account sent it at market: the fill comes later
                self._book.close_sent(position, quantity)
                self._sync_stop(position)
            else:
                self.apply_fill(fill)
            count += 1
        return count

    # -- fills ---------------------------------------------------------------------------------
    def apply_fill(self, fill: Fill) -> None:
        """Book a fill into its position and the portfolio, then announce it (booked first, always)."""
        if fill.order.intent == "open":
            self._open(fill)
        else:
            self._reduce(fill)

    @staticmethod
    def _fill_record(fill: Fill) -> FillRecord:
        order = fill.order
        return FillRecord(
            order.client_id, order.symbol, order.side, fill.quantity, fill.price, fill.fee, fill.liquidity, order.reason, fill.ts,
            rung=order.rung,
        )

    def _announce_fill(self, fill: FillRecord) -> None:
        # After the position event, which carries the same fill: a journal writes both in one
        # transaction from that event.
        self._publish(OrderFilled, None, fill)

    def _open(self, fill: Fill) -> None:
        order = fill.order
        symbol = order.symbol
        group = self._book.entry_ended(order)
        direction = 1 if order.side == "buy" else -1
        price = fill.price
        exits = self._exits
        position = Position(
            order.position_id, symbol, "long" if direction > 0 else "short", direction, fill.quantity, fill.quantity, price, fill.ts
        )
        if exits.stop_loss_pct is not None:
            position.stop_loss = price * (1 - direction * exits.stop_loss_pct / 100.0)
            position.refresh_stop()
        for step in exits.take_profit:
            qty = fill.quantity * step.close_pct / 100.0
            position.take_profits.append(TakeProfitLevel(price * (1 + direction * step.pct / 100.0), qty))
        position.ladder_closes_all = self._ladder_closes_all
        position.break_even = exits.break_even_after_first_take_profit
        if exits.trailing is not None:
            position.trailing_distance_pct = exits.trailing.distance_pct
            position.trailing_activation_price = price * (1 + direction * exits.trailing.activation_pct / 100.0)
        position.fees = fill.fee
        position.group = group
        if group is not None:
            # A leg's own stop or take-profit would close it alone: pairs exit as a whole,
            # on the strategy's spread rules.
            position.stop_loss = None
            position.take_profits = []
            position.trailing_activation_price = None
            position.trailing_distance_pct = None
            position.break_even = False
            position.refresh_stop()
        self.positions[position.id] = position
        self.by_symbol.setdefault(symbol, []).append(position)
        self._accounting.book_entry(position, fill)
        # After revaluing: booking may trip the kill switch, whose event must see a consistent portfolio.
        if fill.fee:
            self._risk.book(-fill.fee, fill.ts)
        filled = self._fill_record(fill)
        self._publish(PositionOpened, None, position.record(), order.client_id, self._portfolio.record(), filled)
        self._announce_fill(filled)
        self._sync_stop(position)
        if self._book.take_broken(group):
            self.submit_close(position, position.quantity, "pair_incomplete", fill.ts, price)

    def _reduce(self, fill: Fill) -> None:
        order = fill.order
        position = self.positions.get(order.position_id)
        if position is None:
            raise ActionError(f"fill {order.client_id} for unknown position {order.position_id!r}")
        booked = self._accounting.book_exit(position, fill)
        self._book.close_filled(position, order)
        closed = booked.closed
        if closed:
            del self.positions[position.id]
            self.by_symbol[position.symbol].remove(position)
        self._accounting.revalue()
        # After revaluing: booking may trip the kill switch, whose event must see a consistent portfolio.
        self._risk.on_exit(position.id, 1.0 if closed else booked.fraction, booked.realised - fill.fee, fill.ts)
        filled = self._fill_record(fill)
        if closed:
            self.closed_trades += 1
            if position.realised - position.fees > 0:
                self.winning_trades += 1
            self._publish(PositionClosed, None, self.trade_record(position), self._portfolio.record(), filled)
            self._account.position_closed(position.id)
            if position.group is not None:
                self._announce_fill(filled)
                # Whatever closed one leg (the strategy, a user, the unload) closes the others
                # with it, so a pair is never left half open.
                for sibling in self.group_legs(position.group):
                    available = sibling.open_quantity
                    if available > 0:
                        self.submit_close(sibling, available, "pair_leg_closed", fill.ts, self._accounting.mark_of(sibling))
                return
        else:
            self._publish(
                PositionReduced, None, position.record(), booked.quantity, fill.price, order.reason, rung=order.rung,
                portfolio=self._portfolio.record(), fill=filled,
            )
            self._sync_stop(position)
        self._announce_fill(filled)

    def trade_record(self, position: Position) -> TradeRecord:
        """The closed trade as one row: pnl is net of fees, exit price is the quantity-weighted average."""
        return trade_record(self.strategy_id, position)

    # -- exits -----------------------------------------------------------------------------------
    def _enforce(self, position: Position, candle: Candle) -> None:
        # Per position per candle: each rule is asked only when the position has one of its kind.
        # Statements, not conditional expressions: no empty tuple to iterate on the usual candle.
        if position.stop is not None:
            hit = stop_hit(position, candle)
            if hit is not None:
                if self._account.stop_held(position.id):
                    # The stop order resting on the exchange fires: its fill arrives from the gateway.
                    self._account.stop_crossed(position.id)
                else:
                    self._trigger(position, position.open_quantity, hit.price, hit.kind, candle, "stop")
                return
        if position.take_profits:
            for index in rungs_hit(position, candle):
                level = position.take_profits[index]
                level.done = True
                qty = rung_quantity(position, index, position.open_quantity)
                if qty > 0:
                    self._trigger(position, qty, level.price, f"{_RUNG}{index + 1}", candle, "limit", index)
                if position.status == "closed":
                    return
        if not position.trailing_active:
            return
        move = trail_move(position, candle)
        if move is not None:
            position.trail_anchor = move.anchor
            position.trailing_stop = move.stop
            position.refresh_stop()
            # A moved stop is a position change: announced (and so journalled) like any other.
            self._publish(StopUpdated, None, position.id, trailing_stop=move.stop, anchor=move.anchor, reason="trailing")
            self._sync_stop(position)

    def _trigger(
        self, position: Position, quantity: float, price: float, reason: str, candle: Candle, kind: Literal["stop", "limit"],
        rung: int | None = None,
    ) -> None:
        # Market time of an intrabar trigger is not known finer than its candle: stamp the fill
        # with the candle's open time, as the next-open fills are.
        if quantity <= 0:
            return  # already being closed (a live close in flight): nothing more to send
        side: OrderSide = "sell" if position.direction > 0 else "buy"
        order: Order = self._account.new_order(position.symbol, side, quantity, "close", position.id, reason, candle.ts, price, rung=rung)
        self.announce_order(order)
        fill = self._account.trigger_fill(order, price, candle, candle.ts, kind)
        if fill is None:  # a live account sent it at market: the fill comes later
            self._book.close_sent(position, quantity)
            self._sync_stop(position)
        else:
            self.apply_fill(fill)

    # -- stop management (action handlers call these) ------------------------------------------
    def update_stop(self, position_id: str, price: float, reason: str, ts: int) -> None:
        """Move a position's stop-loss."""
        position = self.get(position_id)
        if price <= 0:
            raise ActionError(f"stop price must be positive, got {price}")
        position.stop_loss = price
        position.refresh_stop()
        self._publish(StopUpdated, None, position_id, stop_loss=price, reason=reason)
        self._sync_stop(position)

    def activate_trailing(self, position_id: str, distance_pct: float, anchor: float, ts: int) -> None:
        """Start trailing a position's stop behind the best price from `anchor` on."""
        position = self.get(position_id)
        if not 0 < distance_pct < 100:
            raise ActionError(f"trailing distance must be in (0, 100) percent, got {distance_pct}")
        d = position.direction
        position.trailing_active = True
        position.trailing_distance_pct = distance_pct
        position.trail_anchor = anchor
        position.trailing_stop = trail_stop(anchor, distance_pct, d)
        position.refresh_stop()
        self._publish(TrailingActivated, None, position_id, distance_pct, anchor, position.trailing_stop)
        self._sync_stop(position)

    def _sync_stop(self, position: Position) -> None:
        """Tell the account what stop the position should have resting on the exchange (skipped for an account that rests none: paper).

        It covers what is not already being closed; a position wholly being closed has none.
        """
        if not self._rests_stops:
            return
        # Rounded: float noise just under a lot step (0.5 - 0.4995) would cost the stop a whole step when the exchange truncates it.
        quantity = round(position.open_quantity, 12)
        stop = position.stop if quantity > position.initial_quantity * DUST else None
        side: OrderSide = "sell" if position.direction > 0 else "buy"
        self._account.protect(position.id, position.symbol, side, quantity, stop, position.stop_kind, self._last_ts)

    def announce_order(self, order: Order) -> None:
        """Announce an order sent (an account announces through this the orders it creates itself)."""
        # The group is journalled with the order, so a leg pending at a crash comes back as a leg of its pair.
        group = self._book.group_of_entry(order)
        order_type = order.order_type
        if order_type == "market" and group is None and order.rung is None:
            # Most orders: every keyword field at its default, so no keyword dict is built and unpacked twice.
            self._publish(
                OrderSubmitted, None, order.client_id, order.symbol, order.side, order.quantity, order.intent, order.position_id,
                order.reason, order.ref_price,
            )
            return
        self._publish(
            OrderSubmitted, None, order.client_id, order.symbol, order.side, order.quantity, order.intent, order.position_id,
            order.reason, order.ref_price, order_type=order_type,
            limit_price=order.limit_price if order_type == "limit" else None,
            stop_price=order.stop_price if order_type == "stop" else None, group=group, rung=order.rung,
        )


def _ladder_closes_all(exits: ExitConfig) -> bool:
    return sum(step.close_pct for step in exits.take_profit) >= 100 - 1e-9
