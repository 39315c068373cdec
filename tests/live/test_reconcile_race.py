"""A restored order is asked about by reconciliation and by the poller at once: its outcome is booked once, whichever answer lands first."""
from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path

import anyio
import pytest

from bot.daemon.recovery import restore_orchestrator
from bot.events import OrderFilled, PositionClosed, PositionOpened, PositionReduced
from bot.journal import Journal
from bot.live.reconcile import Reconciler, ReconcileReport
from bot.strategy.booking_faults import BookingFaults
from bot.trading.actions import OpenPosition
from tests.fake_exchange import FakeBinance
from tests.live.support import ETH, until
from tests.live.trading_support import START, LiveRig, eth_strategy, fake_market, gateway_on, journal_at

STOP_PCT = 0.3
# Held requests wait as long as the test says: the client must not give up on them meanwhile.
PATIENT_MS = 30_000


async def _stop_fires_while_down(fake: FakeBinance, journal: Journal) -> None:
    """Open 0.5 ETH with its stop resting on the exchange, stop the bot, and let the market fall through the stop."""
    async with gateway_on(fake, journal) as first:
        first.rig.start(eth_strategy(exits={"stop_loss_pct": STOP_PCT}))
        first.feed_served(START - 50, 50)
        first.act(OpenPosition(ETH, "long", 0.5, "test"))
        (opened,) = await first.wait_for(PositionOpened)
        (position,) = first.positions()
        await until(lambda: first.orch().positions._account.stop_held(position.id), what="the stop resting on the exchange")
    stop = opened.position.stop_loss
    assert stop is not None
    series = fake.market(ETH).series
    hit = next(i for i in range(START, len(series)) if float(series.values[i][2]) <= stop)
    await fake.stream(hit - START + 1)


async def _reconcile_while_the_poller_asks_too(live: LiveRig, journal: Journal, first: str) -> ReconcileReport:
    """Restore the strategy and reconcile while the poller asks about the same stop; `first` ("reconciliation" or "poller") delivers first.

    Both find the stop done and ask for its fees, and wait there (each in its own hold, so
    past every check before delivering); the test then lets them go on one after the other.
    """
    live.rig.manager.load(eth_strategy(exits={"stop_loss_pct": STOP_PCT}), announce=False)
    restore_orchestrator(journal, live.orch())
    managers = {sid: live.rig.manager.get(sid).positions for sid in live.rig.manager.ids()}
    reconciler = Reconciler(live.gateway, managers, live.rig.services.bus, logging.getLogger("bot.tests.reconcile"))
    gateway = live.gateway
    # The poller asks only once reconciliation waits for the fees: each request lands in its own hold.
    gateway.hold_polls()
    reconciling = live.fake.faults.hold_trades(1)
    polling = live.fake.faults.hold_trades(1)
    reports: list[ReconcileReport] = []
    reconciled = anyio.Event()

    async def reconcile() -> None:
        reports.append(await reconciler.run([ETH]))
        reconciled.set()

    async def let_reconciliation_on() -> None:
        reconciling.release()
        await reconciled.wait()

    async def let_the_poller_on() -> None:
        polling.release()
        await gateway.polled(1)  # the round waiting in the hold, once it is over

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(reconcile)
            await reconciling.until_held(1)
            gateway.allow_polls(1)
            await polling.until_held(1)
            steps = [let_reconciliation_on, let_the_poller_on]
            for step in steps if first == "reconciliation" else reversed(steps):
                await step()
    gateway.allow_polls()
    (report,) = reports
    return report


def _collected_booking_faults() -> tuple[BookingFaults, list[str]]:
    """Booking faults that collect their lines (a second delivery of one outcome shows up here)."""
    errors: list[str] = []
    faults = BookingFaults(logging.getLogger("bot.tests.live"))
    faults.handled_by(lambda sid, exc: errors.append(f"[{sid}] {exc}"))
    return faults, errors


@pytest.mark.asyncio
@pytest.mark.parametrize("first", ["reconciliation", "poller"])
async def test_a_stop_filled_while_down_is_booked_once_when_reconciliation_and_the_poller_both_find_it(tmp_path: Path, first: str) -> None:
    faults, errors = _collected_booking_faults()
    async with fake_market(btc="2") as fake:
        with journal_at(tmp_path) as journal:
            await _stop_fires_while_down(fake, journal)
            assert [(o.client_id, o.type, o.status) for o in fake.orders] == [("s1-1", "MARKET", "FILLED"), ("s1-2", "STOP_LOSS", "FILLED")]

            async with gateway_on(fake, journal, arm=False, faults=faults, timeout_ms=PATIENT_MS) as second:
                report = await _reconcile_while_the_poller_asks_too(second, journal, first)
                assert report.counts == {"order_filled_while_down": 1}
                assert errors == []
                assert [f.fill.client_id for f in second.events(OrderFilled)] == ["s1-2"]
                (closed,) = second.events(PositionClosed)
                assert closed.trade.exit_reason == "stop_loss" and second.positions() == []
                assert journal.open_positions("s1") == [] and journal.pending_orders("s1") == []
                assert second.gateway.tracked == {}


@pytest.mark.asyncio
@pytest.mark.parametrize("first", ["reconciliation", "poller"])
async def test_a_stop_partly_filled_while_down_reduces_the_position_once(tmp_path: Path, first: str) -> None:
    faults, errors = _collected_booking_faults()
    async with fake_market(btc="2") as fake:
        with journal_at(tmp_path) as journal:
            # The book under the stop is thin: it sells 0.2 of the 0.5 and expires with the rest.
            fake.faults.thin_stop("0.2")
            await _stop_fires_while_down(fake, journal)
            stop = fake.orders[1]
            assert (stop.client_id, stop.status, stop.executed_qty) == ("s1-2", "EXPIRED", Decimal("0.2"))

            async with gateway_on(fake, journal, arm=False, faults=faults, timeout_ms=PATIENT_MS) as second:
                report = await _reconcile_while_the_poller_asks_too(second, journal, first)
                assert report.counts == {"order_filled_while_down": 1}
                assert errors == []
                assert [f.fill.client_id for f in second.events(OrderFilled)] == ["s1-2"]
                assert len(second.events(PositionReduced)) == 1
                (position,) = second.positions()
                assert position.open_quantity == pytest.approx(0.3)
                (journalled,) = journal.open_positions("s1")
                assert journalled["status"] == "partially_closed" and journalled["closed_quantity"] == pytest.approx(0.2)
                # The book holds what the account holds.
                assert fake.balances()["ETH"] == (Decimal("0.3"), Decimal(0))
