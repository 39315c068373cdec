"""LiveExchange: the execution gateway that sends every strategy's orders to a ccxt exchange and tracks them to an outcome."""
from __future__ import annotations

import logging
import random as _random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, Protocol

import anyio
from anyio.abc import TaskGroup, TaskStatus

from bot.clock import Clock
from bot.config.execution import ExecutionConfig
from bot.config.models import FeesConfig, FillConfig
from bot.fmt import format_qty
from bot.live.backoff import Backoff
from bot.live.errors import (
    ExchangeFailure,
    ExchangeRateLimited,
    ExchangeRetryable,
    ExchangeSetupError,
    OrderAlreadyPlaced,
    OrderNotFound,
    OrderOutcomeUnknown,
    OrderTypeRefused,
    describe,
)
from bot.live.exchange_errors import translated
from bot.live.live_account import LiveAccount
from bot.live.order_results import OrderOutcome, has_fee, outcome_of
from bot.trading.account import AccountSink
from bot.trading.orders import Order

Lookup = Literal["found", "not_found", "unknown"]


class CommitGate(Protocol):
    """Holds an action until the strategy turn it was decided in is journalled (bot.journal.turns.Turns)."""

    def after_commit(self, send: Callable[[], object], discard: Callable[[], object]) -> None: ...
def _nothing() -> None:
    """Nothing to send once the turn is committed."""


# Client ids are `<strategy id>-<n>`: room for n up to 10**9.
_NUMBER_ROOM = 10


@dataclass(slots=True, eq=False)
class TrackedOrder:
    """An order the gateway is responsible for until the exchange reports it done."""

    account: LiveAccount
    order: Order
    exchange_id: str | None = None
    # Sent, and the network failed before the answer: whether it reached the exchange is not known yet.
    unconfirmed: bool = False
    cancel_requested: bool = False
    # Monotonic time it was (last) sent: "not found" proves it never arrived only after the request window.
    sent_at: float = 0.0
    # A resting stop is asked about less often than other orders (monotonic time of its next poll).
    next_poll: float = 0.0
    # Polls in a row in which the exchange said it has no order under the id it gave us.
    missing: int = 0


class LiveExchange:
    """The shared live gateway: one LiveAccount per strategy, every order sent, retried and tracked here.

    An order goes out with its client id `<strategy_id>-<n>`. A network error while sending
    leaves it unknown whether the exchange got it, so the gateway asks the exchange for that
    client id before anything else and sends again (the same client id) only when the exchange
    says it has no such order: an order is never placed twice. Refusals (insufficient funds,
    invalid order, rate limited) become the strategy's `order_rejected` events with the
    exchange's words. Resting orders are polled until filled or cancelled.
    """

    name = "live"

    def __init__(
        self,
        exchange: Any,
        settings: ExecutionConfig,
        clock: Clock,
        logger: logging.Logger,
        *,
        redact: Callable[[str], str] = str,
        on_error: Callable[[str, BaseException], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        random: Callable[[], float] = _random.random,
        monotonic: Callable[[], float] = time.monotonic,
        commits: CommitGate | None = None,
    ) -> None:
        self.exchange = exchange
        # The daemon's turns: an order decided in a turn leaves only once the turn is committed,
        # so no order reaches the exchange without its journal entry. None: sent at once.
        self._commits = commits
        self.settings = settings
        self._clock = clock
        self._log = logger
        self._redact = redact
        # Live trading passes the relay to the strategy manager (bot.strategy.booking_faults), built before both.
        self._on_error: Callable[[str, BaseException], None] = on_error or self._log_error
        self._sleep = sleep
        self._random = random
        self._monotonic = monotonic
        self.accounts: dict[str, LiveAccount] = {}
        # Client id -> the order being sent or resting; only orders without an outcome yet.
        self.tracked: dict[str, TrackedOrder] = {}
        self._tg: TaskGroup | None = None
        self._scope: anyio.CancelScope | None = None
        self.sent = 0
        self.resent = 0
        # Symbols whose market refused stop-market orders: their stops are enforced by the bot.
        self._no_stop_orders: set[str] = set()
        self._stops_armed = False

    # -- service lifecycle -----------------------------------------------------------------------
    def open_account(self, strategy_id: str, fees: FeesConfig, fill: FillConfig, sink: AccountSink) -> LiveAccount:
        """The account a strategy's orchestrator trades through; its id must fit the exchange's client id limit."""
        limit = self.settings.client_id_max_length
        if len(strategy_id) + _NUMBER_ROOM > limit:
            raise ExchangeSetupError(
                f"strategy id {strategy_id!r} is too long for live trading: client order ids '<id>-<n>' must fit "
                f"{self.exchange.id}'s {limit} characters (use an id of at most {limit - _NUMBER_ROOM})"
            )
        account = LiveAccount(strategy_id, fees, self, self._booking_failed, sink)
        self.accounts[strategy_id] = account
        if self._stops_armed:
            account.stops.arm()
        return account

    def status(self) -> dict[str, Any]:
        """What `status` shows of the gateway: orders without an outcome yet, sends and resends, stops on the exchange."""
        return {
            "gateway": "live",
            "exchange": self.exchange.id,
            "running": self._tg is not None,
            "orders_in_flight": sorted(self.tracked),
            "unconfirmed": sorted(cid for cid, t in self.tracked.items() if t.unconfirmed),
            "sent": self.sent,
            "resent": self.resent,
            "stops": {
                "mode": self.settings.stops,
                "armed": self._stops_armed,
                "enforced_locally": sorted(self._no_stop_orders),
                "positions": {sid: rows for sid, account in self.accounts.items() if (rows := account.stops.status())},
            },
        }

    @property
    def running(self) -> bool:
        """Whether orders can be sent (markets loaded, tracking running)."""
        return self._tg is not None

    def supports_stops(self, symbol: str) -> bool:
        """Whether a position on `symbol` gets its stop resting on the exchange (else the bot enforces it from the feed).

        Needs `stops: "exchange"` and a market that takes stop-market orders: where the market
        lists its order types (Binance's `orderTypes`), STOP_LOSS must be one; elsewhere ccxt's
        `createStopLossOrder` capability decides, and a refusal of the order type turns it off.
        """
        if self.settings.stops != "exchange" or symbol in self._no_stop_orders:
            return False
        market = (getattr(self.exchange, "markets", None) or {}).get(symbol)
        if market is None:
            return False
        types = (market.get("info") or {}).get("orderTypes")
        if isinstance(types, list):
            return "STOP_LOSS" in types
        has = getattr(self.exchange, "has", {}) or {}
        return bool(has.get("createStopLossOrder") or has.get("createTriggerOrder"))

    def same_stop(self, symbol: str, quantity: float, price: float, other_quantity: float, other_price: float) -> bool:
        """Whether two stops are the same order on the exchange (equal once rounded to the market's precision)."""
        return self._rounded(self.exchange.amount_to_precision, symbol, quantity) == self._rounded(
            self.exchange.amount_to_precision, symbol, other_quantity
        ) and self._rounded(self.exchange.price_to_precision, symbol, price) == self._rounded(self.exchange.price_to_precision, symbol, other_price)

    def sellable(self, symbol: str, quantity: float) -> float:
        """`quantity` rounded down to the market's lot step (as is when that would leave nothing, or no step is known)."""
        rounded = self._rounded(self.exchange.amount_to_precision, symbol, quantity)
        return rounded if 0.0 < rounded <= quantity else quantity

    @staticmethod
    def _rounded(rounding: Callable[[str, float], Any], symbol: str, value: float) -> float:
        try:
            with translated():
                return float(rounding(symbol, value))
        except (ExchangeFailure, KeyError, TypeError, ValueError):
            return value  # below the market's minimum, or no precision known: compare as is

    def now(self) -> float:
        """The gateway's monotonic clock, in seconds."""
        return self._monotonic()

    def poll_soon(self, order: Order) -> None:
        """Ask about a resting order at the next poll (the feed shows its stop was crossed)."""
        tracked = self.tracked.get(order.client_id)
        if tracked is not None:
            tracked.next_poll = 0.0

    def arm_stops(self) -> None:
        """Start placing stops on the exchange (after reconciliation has settled those restored from the journal)."""
        self._stops_armed = True
        for account in list(self.accounts.values()):
            account.stops.arm()

    def on_their_way(self) -> list[str]:
        """What a graceful stop waits for, one line each: orders being sent, looked up or cancelled, and closes held
        behind their stop's cancel; not orders resting as asked (a limit, a stop), whose outcome may take days."""
        lines = []
        for cid, tracked in self.tracked.items():
            order = tracked.order
            if tracked.cancel_requested:
                state = "being cancelled"
            elif tracked.unconfirmed:
                state = "not known yet whether it reached the exchange"
            elif tracked.exchange_id is None:
                state = "being sent"
            elif order.order_type == "market":
                state = "open"
            else:
                continue  # resting
            lines.append(f"[{tracked.account.strategy_id}] {cid} ({order.order_type} {order.intent} {order.side} {format_qty(order.quantity)} {order.symbol}): {state}")
        for sid, account in self.accounts.items():
            for order in account.stops.held_closes():
                lines.append(f"[{sid}] {order.client_id} (close {order.side} {format_qty(order.quantity)} {order.symbol} of {order.position_id}): held until its stop is cancelled")
        return lines

    def problems(self) -> list[str]:
        """Orders whose arrival at the exchange could not be confirmed yet (the poller keeps asking)."""
        return [f"order {cid}: not known yet whether it reached {self.exchange.id}" for cid, t in self.tracked.items() if t.unconfirmed]

    async def start(self) -> None:
        """Nothing to do before `run`, which loads the markets."""

    async def stop(self) -> None:
        """Stop tracking; orders resting on the exchange stay there (the next start reconciles them)."""
        if self._scope is not None:
            self._scope.cancel()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Load the markets, then send and track orders until stopped (start it in the daemon's task group)."""
        with anyio.CancelScope() as scope:
            self._scope = scope
            await self._load_markets()
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._poll_loop)
                task_status.started()
        self._tg = None

    async def _load_markets(self) -> None:
        # Before any order: ccxt would load them inside the first create_order, where a
        # failure is indistinguishable from the order's own.
        backoff = self._backoff()
        while True:
            try:
                with translated(self.exchange):
                    await self.exchange.load_markets()
                return
            except ExchangeRetryable as exc:
                delay = backoff.next_delay()
                self._log.warning("%s: loading markets failed (%s); again in %.1f s", self.exchange.id, self._text(exc), delay)
                await self._sleep(delay)

    # -- from accounts -------------------------------------------------------------------------
    def send(self, account: LiveAccount, order: Order) -> None:
        """Place an order in the background; its outcome reaches the account."""
        if self._tg is None:
            raise RuntimeError("the live gateway is not running: start LiveExchange.run first")
        tracked = TrackedOrder(account, order, sent_at=self._monotonic())
        self.tracked[order.client_id] = tracked
        place = partial(self._tg.start_soon, self._guarded, self._place, tracked)
        if self._commits is None:
            place()
        else:
            self._commits.after_commit(place, partial(self._not_journalled, tracked))

    def unless_journalled(self, discard: Callable[[], object]) -> None:
        """Run `discard` if the open turn (the caller's) cannot be journalled: for an order held back to be sent later."""
        if self._commits is not None:
            self._commits.after_commit(_nothing, discard)

    def _not_journalled(self, tracked: TrackedOrder) -> None:
        """The turn that decided the order could not be journalled: it was never sent, and ends as refused."""
        self.forget(tracked, "rejected", "journal", "not sent: the journal could not record it")

    def cancel(self, order: Order, dropped: Callable[[], object] | None = None) -> None:
        """Ask the exchange to cancel a resting order; the outcome (cancelled, or filled after all) comes by polling.

        Like a send, the request goes out only once the turn that decided it is journalled: a
        kill -9 before that commit must not leave a stop cancelled on the exchange that the
        journal still has resting. If the turn cannot be journalled, the request is dropped (and
        `dropped` tells the caller).
        """
        tracked = self.tracked.get(order.client_id)
        if tracked is None or tracked.cancel_requested:
            return
        tracked.cancel_requested = True
        if self._commits is None:
            self._start_cancel(tracked)
        else:
            self._commits.after_commit(partial(self._start_cancel, tracked), partial(self._cancel_dropped, tracked, dropped))

    def _start_cancel(self, tracked: TrackedOrder) -> None:
        # Not acknowledged yet: `apply` starts the cancel when the exchange reports the order open.
        if tracked.cancel_requested and tracked.exchange_id is not None and self._tg is not None:
            self._tg.start_soon(self._guarded, self._cancel, tracked)

    def _cancel_dropped(self, tracked: TrackedOrder, dropped: Callable[[], object] | None) -> None:
        """The turn that asked for the cancel could not be journalled: the order stays as the journal has it."""
        tracked.cancel_requested = False
        if dropped is not None:
            dropped()

    def adopt(self, account: LiveAccount, order: Order) -> TrackedOrder:
        """Take over an order restored from the journal (reconciliation decides what it became)."""
        tracked = TrackedOrder(account, order, unconfirmed=True)
        self.tracked[order.client_id] = tracked
        return tracked

    # -- account lifecycle -------------------------------------------------------------------------
    def in_flight(self, strategy_id: str) -> list[str]:
        """Client ids of a strategy's orders still waiting for an outcome (a stop resting on the exchange waits for none)."""
        return sorted(cid for cid, t in self.tracked.items() if t.account.strategy_id == strategy_id and not self._protecting(t))

    def close_account(self, strategy_id: str) -> list[str]:
        """Drop a strategy's account, unless orders of it are in flight: then return those, and it stays (their outcomes still reach it).

        Stops resting for its open positions stay on the exchange, no longer tracked: the journal
        keeps them, and a later load of the strategy looks them up again.
        """
        waiting = self.in_flight(strategy_id)
        if waiting:
            return waiting
        self.accounts.pop(strategy_id, None)
        for cid in [cid for cid, t in self.tracked.items() if t.account.strategy_id == strategy_id]:
            del self.tracked[cid]
        return []

    def adopt_restored(self, strategy_id: str) -> list[str]:
        """Hand the pending orders a strategy took back from the journal to the poller, which looks each up by client id; return their ids.

        For a strategy loaded while trading (at start-up, reconciliation looks them up instead);
        its stops journalled as resting are handed over by its StopKeeper as they are restored.
        """
        account = self.accounts.get(strategy_id)
        if account is None:
            return []
        restored = [order for order in account.pending_orders if order.client_id not in self.tracked]
        for order in restored:
            self.adopt(account, order)
        return [order.client_id for order in restored]

    @staticmethod
    def _protecting(tracked: TrackedOrder) -> bool:
        # Confirmed resting and nothing asked of it: it protects a position until it fires, maybe never.
        return tracked.order.order_type == "stop" and tracked.exchange_id is not None and not tracked.unconfirmed and not tracked.cancel_requested

    # -- placing ---------------------------------------------------------------------------------
    def _backoff(self) -> Backoff:
        s = self.settings
        return Backoff(s.retry_min_s, max(s.retry_min_s, s.retry_max_s), random=self._random)

    async def _place(self, tracked: TrackedOrder) -> None:
        order = tracked.order
        backoff = self._backoff()
        resends = 0
        while True:
            self.sent += 1
            try:
                with translated(self.exchange, sending=True):
                    reply = await self._create(order)
            except OrderAlreadyPlaced:
                # An earlier attempt of ours reached the exchange after all: that one is the order.
                reply = None
            except ExchangeRateLimited as exc:
                # A definite refusal, not an unknown outcome. A late entry is another trade, so it
                # is reported; a close (a stop, a take-profit, an exit) is still wanted late: it
                # is sent again, same client id, after the backoff.
                if order.intent != "close" or resends >= self.settings.send_retries:
                    self._refused(tracked, exc)
                    return
                resends += 1
                self.resent += 1
                self._log.warning("%s: close %s rate limited (%s); sending it again", self.exchange.id, order.client_id, self._text(exc))
                await self._sleep(backoff.next_delay())
                continue
            except OrderOutcomeUnknown as exc:
                # The network, or the exchange's "failed this time" (Binance -1001): whether the
                # order was booked is unknown until we ask.
                self._log.warning("%s: sending %s failed (%s); asking the exchange whether it arrived", self.exchange.id, order.client_id, self._text(exc))
                sent_at = self._monotonic()
                await self._sleep(self.settings.lookup_delay_s)
                found, reply = await self._lookup_with_retries(tracked)
                # "Not found" is final only once the request can no longer execute (the exchange
                # refuses it after its request window): before that it may still be booked late,
                # and a market order's client id is not unique once it has filled.
                while found == "not_found" and self._monotonic() - sent_at < self.settings.request_window_s:
                    await self._sleep(min(self.settings.poll_interval_s, max(0.0, self.settings.request_window_s - (self._monotonic() - sent_at))))
                    found, reply = await self._lookup_with_retries(tracked)
                if found == "not_found":
                    if resends >= self.settings.send_retries:
                        self._refused(tracked, exc)
                        return
                    resends += 1
                    self.resent += 1
                    await self._sleep(backoff.next_delay())
                    tracked.sent_at = self._monotonic()
                    continue
                if found == "unknown":
                    tracked.unconfirmed = True  # the poller keeps asking; never resent blindly
                    return
            except ExchangeFailure as exc:
                if order.order_type == "stop" and isinstance(exc, OrderTypeRefused):
                    self._no_stop_orders.add(order.symbol)
                    self._log.warning("%s takes no stop-market orders on %s: its stops are enforced by the bot", self.exchange.id, order.symbol)
                self._refused(tracked, exc)
                return
            if reply is None:
                found, reply = await self._lookup_with_retries(tracked)
                if found != "found":
                    tracked.unconfirmed = True
                    return
            assert reply is not None
            await self.apply(tracked, reply)
            return

    async def _create(self, order: Order) -> dict[str, Any]:
        params: dict[str, Any] = {"clientOrderId": order.client_id}
        if order.order_type == "stop":
            # ccxt's unified stop-loss trigger: a stop-market order (Binance spot STOP_LOSS).
            params["stopLossPrice"] = order.stop_price
            if (self.exchange.markets or {}).get(order.symbol, {}).get("contract"):
                # On derivatives a stop outliving its position must not open the opposite one.
                params["reduceOnly"] = True
            reply: dict[str, Any] = await self.exchange.create_order(order.symbol, "market", order.side, order.quantity, None, params)
        else:
            reply = await self.exchange.create_order(order.symbol, order.order_type, order.side, order.quantity, order.limit_price, params)
        return reply

    async def _lookup_with_retries(self, tracked: TrackedOrder) -> tuple[Lookup, dict[str, Any] | None]:
        backoff = self._backoff()
        for _ in range(max(1, self.settings.send_retries + 1)):
            found, reply = await self.lookup(tracked)
            if found != "unknown":
                return found, reply
            await self._sleep(backoff.next_delay())
        return "unknown", None

    async def lookup(self, tracked: TrackedOrder) -> tuple[Lookup, dict[str, Any] | None]:
        """Ask the exchange about an order by its exchange id, or by client id when that is not known."""
        order = tracked.order
        try:
            with translated(self.exchange):
                if tracked.exchange_id is not None:
                    reply = await self.exchange.fetch_order(tracked.exchange_id, order.symbol)
                else:
                    reply = await self.exchange.fetch_order(None, order.symbol, {"clientOrderId": order.client_id})
        except OrderNotFound:
            return "not_found", None
        except ExchangeFailure as exc:
            self._log.warning("%s: could not look up order %s: %s", self.exchange.id, order.client_id, self._text(exc))
            return "unknown", None
        return "found", reply

    async def apply(self, tracked: TrackedOrder, reply: dict[str, Any]) -> OrderOutcome:
        """Act on what the exchange says about an order: deliver its outcome, or keep tracking it."""
        order = tracked.order
        fee_bps = tracked.account.fees.maker_bps if order.order_type == "limit" else tracked.account.fees.taker_bps
        # A perpetual's position is what filled; a spot buy's, what the account can sell of it.
        spot = bool(((self.exchange.markets or {}).get(order.symbol) or {}).get("spot", True))
        outcome = outcome_of(order, reply, self._clock.now_ms(), fee_bps, self.sellable, spot)
        if outcome.fill is not None and not has_fee(reply) and reply.get("id"):
            # An order status (Binance's GET order) carries no fees: its trades do.
            fees = await self._trade_fees(order, reply["id"])
            if fees:
                outcome = outcome_of(order, {**reply, "fees": fees}, self._clock.now_ms(), fee_bps, self.sellable, spot)
        if self.tracked.get(order.client_id) is not tracked:
            # Another caller (the poller, reconciliation, the send or the cancel) delivered it meanwhile:
            # a restored order is asked about by both reconciliation and the poller.
            return outcome
        tracked.unconfirmed = False
        if outcome.exchange_id is not None:
            tracked.exchange_id = str(outcome.exchange_id)
        if outcome.status == "open":
            if tracked.cancel_requested:
                # Behind any turn still waiting for its commit (the one that asked may be among them).
                if self._commits is None:
                    self._start_cancel(tracked)
                else:
                    self._commits.after_commit(partial(self._start_cancel, tracked), _nothing)
            tracked.account.opened(order)
            return outcome
        del self.tracked[order.client_id]
        if outcome.fill is not None:
            tracked.account.filled(outcome.fill)
        else:
            # Without a fill the status is "cancelled" or "rejected" ("filled" always carries one).
            kind: Literal["cancelled", "rejected"] = "cancelled" if outcome.status == "cancelled" else "rejected"
            tracked.account.dropped(order, kind, kind, f"the exchange reports the order {outcome.reason or outcome.status}")
        return outcome

    async def _trade_fees(self, order: Order, exchange_id: str) -> list[Any]:
        """The fees of an order's trades, or none when they cannot be read (the configured rate stands in)."""
        try:
            with translated(self.exchange):
                trades = await self.exchange.fetch_order_trades(exchange_id, order.symbol)
        except ExchangeFailure as exc:
            self._log.warning("%s: fees of order %s unknown (%s): estimated from the configured rate", self.exchange.id, order.client_id, self._text(exc))
            return []
        return [t["fee"] for t in trades if isinstance(t, dict) and t.get("fee")]

    def forget(self, tracked: TrackedOrder, outcome: Literal["rejected", "cancelled"], kind: str, reason: str) -> bool:
        """End an order without a fill (it never reached the exchange, or was refused); False if its outcome was delivered already."""
        if self.tracked.get(tracked.order.client_id) is not tracked:
            return False
        del self.tracked[tracked.order.client_id]
        tracked.account.dropped(tracked.order, outcome, kind, self._redact(reason))
        return True

    def _refused(self, tracked: TrackedOrder, exc: ExchangeFailure) -> None:
        kind = exc.kind
        self._log.warning("%s refused order %s (%s): %s", self.exchange.id, tracked.order.client_id, kind, self._text(exc))
        self.forget(tracked, "rejected", kind, describe(exc, self._redact))

    # -- tracking --------------------------------------------------------------------------------
    async def _cancel(self, tracked: TrackedOrder) -> None:
        order = tracked.order
        try:
            with translated(self.exchange):
                reply = await self.exchange.cancel_order(tracked.exchange_id, order.symbol)
        except OrderNotFound:
            return  # already done (filled, most likely): the poller reports what it became
        except ExchangeFailure as exc:
            self._log.warning("%s: cancelling %s failed: %s (polling continues)", self.exchange.id, order.client_id, self._text(exc))
            return
        if isinstance(reply, dict) and reply.get("status") and self.tracked.get(order.client_id) is tracked:
            await self.apply(tracked, reply)

    async def _guarded(self, step: Callable[[TrackedOrder], Awaitable[None]], tracked: TrackedOrder) -> None:
        """Run one order's step so that a bug (not an exchange error) cannot stop the gateway for every strategy."""
        try:
            await step(tracked)
        except Exception:  # noqa: BLE001  a bug in one order's step must not stop the gateway
            self._log.exception("%s: unexpected error handling order %s; the poller asks the exchange what became of it", self.exchange.id, tracked.order.client_id)
            if self.tracked.get(tracked.order.client_id) is tracked:
                tracked.unconfirmed = True  # looked up, never resent blindly

    async def _poll_loop(self) -> None:
        while True:
            await self._sleep(self.settings.poll_interval_s)
            try:
                await self.poll_once()
                for account in list(self.accounts.values()):
                    account.stops.retry_refused(self._monotonic())
            except Exception:  # noqa: BLE001  a bug must not stop the tracking of every strategy's orders: logged, next round
                self._log.exception("%s: polling orders failed unexpectedly", self.exchange.id)

    async def poll_once(self) -> None:
        """Ask the exchange about every order still without an outcome."""
        for tracked in list(self.tracked.values()):
            if tracked.exchange_id is None and not tracked.unconfirmed:
                continue  # still being sent by its own task
            resting_stop = tracked.order.order_type == "stop" and not tracked.unconfirmed and not tracked.cancel_requested
            if resting_stop:
                # Its fill is no one's cue to act at once (the position is protected either way): asked
                # about every stop_poll_interval_s, or at once when the feed shows the stop crossed.
                now = self._monotonic()
                if now < tracked.next_poll:
                    continue
                tracked.next_poll = now + self.settings.stop_poll_interval_s
            try:
                await self._poll(tracked)
            except Exception:  # noqa: BLE001  one order's surprise (a bug, an answer ccxt could not parse) must not starve the others
                self._log.exception("%s: checking order %s failed unexpectedly; asking again next round", self.exchange.id, tracked.order.client_id)

    async def _poll(self, tracked: TrackedOrder) -> None:
        found, reply = await self.lookup(tracked)
        if self.tracked.get(tracked.order.client_id) is not tracked:
            return  # its outcome arrived meanwhile
        if found == "found" and reply is not None:
            tracked.missing = 0
            await self.apply(tracked, reply)
        elif found == "not_found" and tracked.unconfirmed:
            # Inside the request window it may still be booked late: forgotten only after it.
            if self._monotonic() - tracked.sent_at >= self.settings.request_window_s:
                self.forget(tracked, "rejected", "network", "the order never reached the exchange (a network error while sending it)")
        elif found == "not_found":
            # An order the exchange confirmed and no longer knows (purged, or removed by hand):
            # after three polls in a row it is taken as cancelled, or a close held behind it would wait forever.
            tracked.missing += 1
            if tracked.missing >= 3:
                self.forget(tracked, "cancelled", "not_on_exchange", "the exchange no longer knows this order")

    # -- helpers -----------------------------------------------------------------------------------
    def _text(self, exc: BaseException) -> str:
        return describe(exc, self._redact)

    def _booking_failed(self, strategy_id: str, exc: BaseException) -> None:
        self._on_error(strategy_id, exc)

    def _log_error(self, strategy_id: str, exc: BaseException) -> None:
        self._log.error("[%s] booking an exchange fill failed: %s", strategy_id, describe(exc, self._redact))
