"""Start-up reconciliation against the fake exchange, on a real SQLite journal: the journal is fixed and every difference reported."""
from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path

import pytest

from bot.daemon.recovery import restore_orchestrator
from bot.events import ExchangeDifference, OrderCancelled, OrderSubmitted, PositionOpened, Reconciled, ReconcileDifference
from bot.journal import Journal
from bot.live.reconcile import Reconciler, ReconcileReport
from bot.trading.actions import OpenPosition
from tests.live.support import ETH, until
from tests.live.trading_support import START, LiveRig, eth_strategy, fake_market, gateway_on, journal_at


async def _reconcile(live: LiveRig) -> ReconcileReport:
    managers = {sid: live.rig.manager.get(sid).positions for sid in live.rig.manager.ids()}
    reconciler = Reconciler(live.gateway, managers, live.rig.services.bus, logging.getLogger("bot.tests.reconcile"))
    return await reconciler.run([ETH])


def _restart(live: LiveRig, journal: Journal) -> None:
    """Load the strategy afresh and restore it from the journal, as the daemon does at start-up."""
    live.rig.manager.load(eth_strategy(risk={"max_open_positions": 3}), announce=False)
    restore_orchestrator(journal, live.rig.manager.get("s1"))


@pytest.mark.asyncio
async def test_a_restart_books_an_order_filled_while_down_and_keeps_tracking_one_still_open(tmp_path: Path) -> None:
    async with fake_market(btc="2") as fake:
        series = fake.market(ETH).series
        price = float(fake.price(ETH))
        near = float(min(Decimal(v[2]) for v in series.values[START : START + 20]))
        with journal_at(tmp_path) as journal:
            async with gateway_on(fake, journal) as first:
                first.rig.start(eth_strategy(risk={"max_open_positions": 3}))
                first.feed_served(START - 50, 50)
                first.act(OpenPosition(ETH, "long", 0.5, "market"))
                await first.wait_for(PositionOpened)
                first.act(OpenPosition(ETH, "long", 0.2, "near", limit_price=near), OpenPosition(ETH, "long", 0.3, "far", limit_price=price * 0.5))
                await until(lambda: [o.status for o in fake.orders] == ["FILLED", "NEW", "NEW"], what="two resting limit orders")
            # The bot is down; the market reaches the near limit.
            await fake.stream(20)
            assert [o.status for o in fake.orders] == ["FILLED", "FILLED", "NEW"]
            assert [o["client_id"] for o in journal.pending_orders("s1")] == ["s1-2", "s1-3"]

            async with gateway_on(fake, journal) as second:
                _restart(second, journal)
                report = await _reconcile(second)
                assert report.counts == {"order_filled_while_down": 1, "order_still_open": 1}
                assert "s1-2 filled while the bot was down: 0.2" in report.lines[0]
                orchestrator = second.orch()
                assert sorted(p.quantity for p in orchestrator.positions.positions.values()) == [0.2, 0.5]
                assert [o.client_id for o in orchestrator.positions.pending_orders()] == ["s1-3"]
                # Fixed in the journal before trading resumes: the filled order is done, its position open.
                assert [o["client_id"] for o in journal.pending_orders("s1")] == ["s1-3"]
                assert sorted(p["quantity"] for p in journal.open_positions("s1")) == [0.2, 0.5]
                differences = second.events(ReconcileDifference)
                assert [d.kind for d in differences] == ["order_filled_while_down"]
                (summary,) = second.events(Reconciled, None)
                assert summary.differences == {"order_filled_while_down": 1, "order_still_open": 1}
                # The still-open order is tracked again: cancelled by the user on the exchange, it is released.
                fake.account.cancel(fake.market(ETH).id, None, "s1-3", fake.now_ms)
                (cancelled,) = await second.wait_for(OrderCancelled)
                assert cancelled.client_id == "s1-3" and orchestrator.positions.open_count() == 2
                assert journal.pending_orders("s1") == []


@pytest.mark.asyncio
async def test_unknown_and_foreign_orders_missing_orders_and_balances_are_each_reported(tmp_path: Path) -> None:
    async with fake_market(btc="2", eth="0") as fake:
        with journal_at(tmp_path) as journal:
            async with gateway_on(fake, journal) as first:
                first.rig.start(eth_strategy(risk={"max_open_positions": 3}))
                first.feed_served(START - 50, 50)
                first.act(OpenPosition(ETH, "long", 0.5, "market"))
                await first.wait_for(PositionOpened)
                # Journalled, then the bot died before sending it: the exchange never heard of s1-2.
                first.rig.services.bus.publish(OrderSubmitted, None, "s1", "s1-2", ETH, "buy", 0.1, "open", "s1-p2", "x", 0.09)
            low = str(round(float(fake.price(ETH)) * 0.5, 6))
            fake.place_order(ETH, "buy", "limit", "0.1", price=low, client_id="s1-77")  # carries s1's prefix, not in the journal
            fake.place_order(ETH, "buy", "limit", "0.1", price=low, client_id="by-hand")  # the user's own
            fake.set_balance("ETH", "0.3")  # 0.2 of the position's 0.5 ETH were moved off the account
            fake.set_balance("BTC", "0.5")  # less than the strategy's cash: its entries may be refused

            async with gateway_on(fake, journal) as second:
                _restart(second, journal)
                report = await _reconcile(second)
        assert report.counts == {"order_missing": 1, "order_unknown": 1, "order_foreign": 1, "balance_short": 2}
        text = "\n".join(report.lines)
        assert "s1-2" in text and "never reached the exchange" in text
        assert "s1-77" in text and "by-hand" in text and "ETH: the strategies' open positions hold 0.5 but the exchange balance is 0.3" in text
        assert "BTC: the strategies count on 0.9" in text and "entries may be refused" in text
        kinds = sorted(d.kind for d in second.events(ReconcileDifference))
        assert kinds == ["order_missing", "order_unknown"]
        assert sorted(d.kind for d in second.events(ExchangeDifference, None)) == ["balance_short", "balance_short", "order_foreign"]
        with journal_at(tmp_path) as reopened:
            assert reopened.pending_orders("s1") == []
        # Nothing was placed, cancelled or sent again by reconciling.
        assert [o.client_id for o in fake.orders] == ["s1-1", "s1-77", "by-hand"] and len(fake.order_requests) == 1


@pytest.mark.asyncio
async def test_journal_and_exchange_in_agreement_report_no_difference(tmp_path: Path) -> None:
    async with fake_market(btc="2", eth="0") as fake:
        with journal_at(tmp_path) as journal:
            async with gateway_on(fake, journal) as first:
                first.rig.start(eth_strategy())
                first.feed_served(START - 50, 50)
                first.act(OpenPosition(ETH, "long", 0.5, "market"))
                await first.wait_for(PositionOpened)
            async with gateway_on(fake, journal) as second:
                _restart(second, journal)
                report = await _reconcile(second)
        assert report.counts == {} and report.lines == []
        assert [(r.differences, r.lines) for r in second.events(Reconciled, None)] == [({}, ())]
