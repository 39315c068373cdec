"""Take-profit rungs on a live account: a refused rung fires again, a rung in flight at a crash does not fire twice."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.daemon.recovery import restore_orchestrator
from bot.events import OrderRejected, OrderSubmitted, PositionOpened, PositionReduced
from bot.live.reconcile import Reconciler
from bot.trading.actions import OpenPosition
from tests.live.support import ETH, until
from tests.live.trading_support import START, LiveRig, eth_strategy, fake_market, gateway_on, journal_at

# One rung half-way: in the served stretch the price reaches +0.1 % over the entry at candle 16, and again later.
EXITS = {"take_profit": [{"pct": 0.1, "close_pct": 50}]}


def _reaching(live: LiveRig, price: float, after: int = START) -> int:
    series = live.fake.market(ETH).series
    return next(i for i in range(after, len(series)) if float(series.values[i][1]) >= price)


@pytest.mark.asyncio
async def test_a_rung_whose_close_the_exchange_refused_fires_again_when_the_price_comes_back() -> None:
    async with fake_market() as fake, gateway_on(fake, stops="local") as live:
        live.rig.start(eth_strategy(exits=EXITS))
        live.feed_served(START - 50, 50)
        live.act(OpenPosition(ETH, "long", 0.5, "test"))
        (opened,) = await live.wait_for(PositionOpened)
        target = opened.position.take_profit[0][0]
        first = _reaching(live, target)
        fake.faults.order_errors(400, -2010, "Account has insufficient balance for requested action.")
        await fake.stream(first - START + 1)
        live.feed_served(START, first - START + 1)
        (refused,) = await live.wait_for(OrderRejected)
        assert refused.reason == "take_profit_1" and refused.kind == "insufficient_funds"
        (position,) = live.positions()
        assert position.take_profits[0].done is False and position.pending_close == 0

        again = _reaching(live, target, after=first + 1)
        await fake.stream(again - first)
        live.feed_served(first + 1, again - first)
        (reduced,) = await live.wait_for(PositionReduced)
        assert reduced.reason == "take_profit_1" and reduced.position.quantity == pytest.approx(0.25)
        assert position.take_profits[0].done is True


@pytest.mark.asyncio
async def test_a_rung_close_in_flight_at_a_crash_is_not_sent_again_after_the_restart(tmp_path: Path) -> None:
    async with fake_market() as fake:
        with journal_at(tmp_path) as journal:
            async with gateway_on(fake, journal, stops="local") as first_run:
                first_run.rig.start(eth_strategy(exits=EXITS))
                first_run.feed_served(START - 50, 50)
                first_run.act(OpenPosition(ETH, "long", 0.5, "test"))
                (opened,) = await first_run.wait_for(PositionOpened)
                target = opened.position.take_profit[0][0]
                first = _reaching(first_run, target)
                fake.faults.order_timeout(30.0)  # the rung's close is booked, its answer never comes before the crash
                await fake.stream(first - START + 1)
                first_run.feed_served(START, first - START + 1)
                await until(lambda: len(fake.orders) == 2, what="the rung's close on the exchange")
            assert [o["reason"] for o in journal.pending_orders("s1")] == ["take_profit_1"]

            async with gateway_on(fake, journal, arm=False, stops="local") as second_run:
                second_run.rig.manager.load(eth_strategy(exits=EXITS), announce=False)
                restore_orchestrator(journal, second_run.orch())
                (position,) = second_run.positions()
                assert position.take_profits[0].done is True and position.pending_close == pytest.approx(0.25)
                managers = {"s1": second_run.orch().positions}
                report = await Reconciler(second_run.gateway, managers, second_run.rig.services.bus, logging.getLogger("test")).run([ETH])
                assert report.counts == {"order_filled_while_down": 1}
                (reduced,) = second_run.events(PositionReduced)
                assert reduced.reason == "take_profit_1"
                again = _reaching(second_run, target, after=first + 1)
                await fake.stream(again - first)
                second_run.feed_served(first + 1, again - first)
                assert [o.client_id for o in fake.orders] == ["s1-1", "s1-2"]
                assert position.quantity == pytest.approx(0.25) and second_run.events(OrderSubmitted) == []
