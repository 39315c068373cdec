"""Start-up reconciliation: bring the journal in line with the exchange before trading resumes, and report every difference."""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.bus import EventBus
from bot.events import ExchangeDifference, Reconciled, ReconcileDifference
from bot.live.errors import ExchangeFailure, describe
from bot.live.exchange_errors import network_failure, translated
from bot.live.execution import LiveExchange
from bot.trading.positions import PositionManager

# Balances within this fraction of what the journal expects are equal (exchange rounding, dust).
_TOLERANCE = 1e-6


@dataclass(slots=True)
class ReconcileReport:
    """What reconciliation found and did, counted by kind, with one line per difference."""

    counts: dict[str, int] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    def add(self, kind: str, line: str) -> None:
        """Count a difference of `kind` and keep its description."""
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self.lines.append(line)


class Reconciler:
    """Compares the journal (restored into the strategies) with the exchange's orders and balances.

    1. Each order the journal has as pending is looked up by its client id: filled or cancelled
       while the bot was down, its outcome is booked now (so the journal is fixed through the
       usual events); still open, it is tracked again; unknown to the exchange, it never
       arrived and is dropped.
    2. Open orders on the exchange that carry a loaded strategy's client id prefix but that the
       journal does not know are reported (left alone: the bot did not decide them this run).
    3. Each base asset's balance is compared with the net quantity the strategies' open
       positions hold; when every traded symbol has the same quote asset, its balance is
       compared with the cash the strategies count on (more is fine: kept outside the bot).
    Then stops may be placed on the exchange (`arm_stops`): restored ones are settled by now.
    Every difference is an event (`reconcile_difference` for a strategy, `exchange_difference`
    for the account) and a log warning; `reconciled` sums them up.
    """

    def __init__(self, gateway: LiveExchange, managers: Mapping[str, PositionManager], bus: EventBus, logger: logging.Logger) -> None:
        self._gateway = gateway
        self._managers = managers
        self._bus = bus
        self._log = logger

    async def run(self, symbols: Iterable[str]) -> ReconcileReport:
        """Reconcile; raises an ExchangeFailure only when the exchange cannot be asked at all (then trading must not start)."""
        report = ReconcileReport()
        await self._pending_orders(report)
        traded = sorted(
            set(symbols)
            | {o.symbol for a in self._gateway.accounts.values() for o in a.pending_orders}
            | {p.symbol for m in self._managers.values() for p in m.positions.values()}
        )
        await self._open_orders(report, traded)
        await self._balances(report, traded)
        # Only now may stops be placed: the journal's resting stops are settled, so none is doubled.
        self._gateway.arm_stops()
        self._bus.publish(Reconciled, None, dict(report.counts), tuple(report.lines))
        if report.lines:
            self._log.warning("reconciliation with %s found %d difference(s)", self._gateway.exchange.id, len(report.lines))
        else:
            self._log.info("reconciliation with %s: journal and exchange agree", self._gateway.exchange.id)
        return report

    def _difference(self, report: ReconcileReport, kind: str, strategy_id: str | None, line: str, **detail: Any) -> None:
        report.add(kind, line)
        self._log.warning("reconcile: %s", line)
        if strategy_id is None:
            self._bus.publish(ExchangeDifference, None, kind, line, **detail)
        else:
            self._bus.publish(ReconcileDifference, None, strategy_id, kind, line, **detail)

    async def _pending_orders(self, report: ReconcileReport) -> None:
        gateway = self._gateway
        for sid, account in gateway.accounts.items():
            # Stops resting when the bot stopped are looked up like any order: one that fired
            # while the bot was down is the position's close, booked now.
            for order in [*account.pending_orders, *account.stops.restored_orders()]:
                tracked = gateway.adopt(account, order)
                found, reply = await gateway.lookup(tracked)
                cid = order.client_id
                if found == "unknown":
                    raise network_failure(f"cannot ask {gateway.exchange.id} about order {cid}; not trading on a journal that may be wrong")
                if found == "not_found":
                    gateway.forget(tracked, "cancelled", "not_on_exchange", "the exchange has no order with this client id: it never arrived")
                    self._difference(report, "order_missing", sid, f"[{sid}] order {cid} ({order.side} {order.quantity} {order.symbol}) never reached the exchange: dropped", client_id=cid)
                    continue
                assert reply is not None
                outcome = await gateway.apply(tracked, reply)
                if outcome.status == "open":
                    report.counts["order_still_open"] = report.counts.get("order_still_open", 0) + 1
                    self._log.info("reconcile: [%s] order %s is still open on the exchange: tracking it again", sid, cid)
                elif outcome.fill is not None:
                    fill = outcome.fill
                    self._difference(
                        report, "order_filled_while_down", sid,
                        f"[{sid}] order {cid} filled while the bot was down: {fill.quantity} {order.symbol} at {fill.price} (booked now)",
                        client_id=cid, quantity=fill.quantity, price=fill.price,
                    )
                else:
                    self._difference(report, "order_cancelled_while_down", sid, f"[{sid}] order {cid} was {outcome.status} on the exchange while the bot was down", client_id=cid)

    async def _open_orders(self, report: ReconcileReport, symbols: list[str]) -> None:
        gateway = self._gateway
        prefixes = {sid + "-": sid for sid in gateway.accounts}
        for symbol in symbols:
            try:
                with translated(gateway.exchange):
                    orders = await gateway.exchange.fetch_open_orders(symbol)
            except ExchangeFailure as exc:
                raise network_failure(f"cannot list open orders of {symbol}: {describe(exc)}") from exc
            for reply in orders:
                cid = str(reply.get("clientOrderId") or "")
                if cid in gateway.tracked:
                    continue
                owner = next((sid for prefix, sid in prefixes.items() if cid.startswith(prefix) and cid[len(prefix):].isdigit()), None)
                if owner is not None:
                    self._difference(
                        report, "order_unknown", owner,
                        f"[{owner}] open order {cid} ({reply.get('side')} {reply.get('amount')} {symbol}) is not in the journal: left alone, not managed",
                        client_id=cid,
                    )
                else:
                    self._difference(report, "order_foreign", None, f"open order {cid or reply.get('id')} on {symbol} belongs to no strategy: left alone", symbol=symbol)

    def _held(self, symbols: list[str]) -> dict[str, float]:
        """Net base quantity the strategies' open positions hold, per base asset of the traded symbols."""
        held = {symbol.partition("/")[0]: 0.0 for symbol in symbols}
        for manager in self._managers.values():
            for position in manager.positions.values():
                base = position.symbol.partition("/")[0]
                held[base] = held.get(base, 0.0) + position.direction * position.quantity
        return held

    async def _balances(self, report: ReconcileReport, symbols: list[str]) -> None:
        try:
            with translated(self._gateway.exchange):
                balance = await self._gateway.exchange.fetch_balance()
        except ExchangeFailure as exc:
            raise network_failure(f"cannot read balances: {describe(exc)}") from exc
        totals: Mapping[str, Any] = balance.get("total") or {}
        quotes = {symbol.partition("/")[2].split(":")[0] for symbol in symbols}
        if len(quotes) == 1:
            # Cash can only be attributed when one quote asset funds every strategy.
            quote = next(iter(quotes))
            cash = sum(manager.cash() for manager in self._managers.values())
            actual = float(totals.get(quote) or 0.0)
            if cash > 0 and actual < cash * (1 - _TOLERANCE):
                self._difference(
                    report, "balance_short", None,
                    f"{quote}: the strategies count on {cash:g} of cash but the exchange balance is {actual:g}: entries may be refused",
                    asset=quote, expected=cash, actual=actual,
                )
        for asset, expected in sorted(self._held(symbols).items()):
            actual = float(totals.get(asset) or 0.0)
            if expected < 0:
                continue  # a short: on a margin or derivatives account the balance does not show it
            if actual < expected * (1 - _TOLERANCE):
                self._difference(
                    report, "balance_short", None,
                    f"{asset}: the strategies' open positions hold {expected:g} but the exchange balance is {actual:g}",
                    asset=asset, expected=expected, actual=actual,
                )
            elif actual > expected * (1 + _TOLERANCE) + 1e-12:
                self._difference(
                    report, "balance_extra", None,
                    f"{asset}: the exchange balance {actual:g} is more than the {expected:g} the strategies hold (kept outside the bot?)",
                    asset=asset, expected=expected, actual=actual,
                )
