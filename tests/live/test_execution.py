"""The live gateway: strategies' orders go through real ccxt to the fake exchange, and come back as fills or refusals."""
from __future__ import annotations

import logging
from decimal import Decimal

import orjson
import pytest

from bot.event_codec import encode_record, payload_of
from bot.events import OrderCancelled, OrderRejected, PositionClosed, PositionOpened
from bot.trading.actions import ClosePercent, OpenPosition
from tests.live.support import ETH, until
from tests.live.trading_support import START, LiveRig, eth_strategy, fake_market, gateway_on


def _start(live: LiveRig, **overrides: object) -> None:
    live.rig.start(eth_strategy(**overrides))
    live.feed_served(START - 50, 50)


@pytest.mark.asyncio
async def test_a_market_entry_and_exit_fill_on_the_exchange_under_the_strategys_client_ids() -> None:
    async with fake_market(btc="1") as fake, gateway_on(fake) as live:
        _start(live)
        price = float(fake.price(ETH))
        live.act(OpenPosition(ETH, "long", 0.5, "test"))
        (opened,) = await live.wait_for(PositionOpened)
        assert opened.client_id == "s1-1" and opened.position.entry_price == pytest.approx(price)
        assert opened.fill.fee == pytest.approx(0.5 * price * 0.001) and opened.fill.liquidity == "taker"
        assert [(o.client_id, o.status) for o in fake.orders] == [("s1-1", "FILLED")]
        assert fake.balances()["ETH"] == (Decimal("0.5"), Decimal(0))
        portfolio = encode_record(live.orch().portfolio.record())
        assert portfolio["fees"] == pytest.approx(0.5 * price * 0.001)

        (position,) = live.positions()
        live.act(ClosePercent(position.id, 100.0, "done"))
        (closed,) = await live.wait_for(PositionClosed)
        assert closed.trade.exit_reason == "done" and [o.client_id for o in fake.orders] == ["s1-1", "s1-2"]
        assert fake.balances()["ETH"] == (Decimal(0), Decimal(0))
        assert live.orch().positions.pending_orders() == () and live.gateway.tracked == {}


@pytest.mark.asyncio
async def test_insufficient_funds_become_a_tagged_rejection_with_the_exchanges_reason_and_release_the_entry() -> None:
    async with fake_market(btc="0.001") as fake, gateway_on(fake) as live:
        _start(live)
        live.act(OpenPosition(ETH, "long", 0.5, "test"))
        (rejected,) = await live.wait_for(OrderRejected)
        assert rejected.client_id == "s1-1" and rejected.kind == "insufficient_funds" and rejected.intent == "open"
        assert "insufficient balance" in rejected.exchange_reason
        orchestrator = live.orch()
        assert orchestrator.positions.open_count() == 0 and orchestrator.positions.is_flat(ETH)
        assert live.events(PositionOpened) == [] and fake.orders == []
        # Keys never appear in what the bot publishes, even in an exchange error.
        published = orjson.dumps([payload_of(e) for e in live.rig.events if e.strategy_id], default=str).decode()
        assert fake.secret not in published and fake.api_key not in published
        # The risk view released the refused entry's exposure: the next one is allowed.
        fake.set_balance("BTC", "1")
        live.act(OpenPosition(ETH, "long", 0.5, "again"))
        await live.wait_for(PositionOpened)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("status", "code", "message", "kind"),
    [(400, -1013, "Filter failure: LOT_SIZE", "invalid_order"), (429, -1015, "Too many new orders; current limit is 50 orders per 10 SECOND.", "rate_limited")],
)
async def test_invalid_and_rate_limited_orders_are_rejections_naming_the_exchanges_reason(status: int, code: int, message: str, kind: str) -> None:
    async with fake_market() as fake, gateway_on(fake) as live:
        _start(live)
        fake.faults.order_errors(status, code, message)
        live.act(OpenPosition(ETH, "long", 0.5, "test"))
        (rejected,) = await live.wait_for(OrderRejected)
        assert rejected.kind == kind and message.split(";")[0] in rejected.exchange_reason
        assert live.orch().positions.open_count() == 0 and fake.orders == []


@pytest.mark.asyncio
async def test_a_timeout_on_an_order_that_reached_the_exchange_is_found_by_client_id_not_placed_twice() -> None:
    async with fake_market() as fake, gateway_on(fake) as live:
        _start(live)
        fake.faults.order_timeout(1.5)
        live.act(OpenPosition(ETH, "long", 0.5, "test"))
        (opened,) = await live.wait_for(PositionOpened)
        assert opened.client_id == "s1-1" and opened.position.quantity == 0.5
        assert [(o.client_id, o.status) for o in fake.orders] == [("s1-1", "FILLED")]
        assert len(fake.order_requests) == 1 and live.gateway.resent == 0
        assert fake.balances()["ETH"] == (Decimal("0.5"), Decimal(0))


@pytest.mark.asyncio
async def test_an_order_lost_on_the_way_is_sent_again_with_the_same_client_id() -> None:
    async with fake_market() as fake, gateway_on(fake) as live:
        _start(live)
        fake.faults.rest_errors(503, count=1)  # the create request fails before the exchange books anything
        live.act(OpenPosition(ETH, "long", 0.5, "test"))
        await live.wait_for(PositionOpened)
        assert [(o.client_id, o.status) for o in fake.orders] == [("s1-1", "FILLED")]
        assert live.gateway.resent == 1 and len(fake.order_requests) == 2


@pytest.mark.asyncio
async def test_a_limit_entry_rests_on_the_exchange_and_becomes_a_position_when_the_price_comes_to_it() -> None:
    async with fake_market() as fake, gateway_on(fake) as live:
        # The configured rates differ from the exchange's 10 bps: the booked fee must be the exchange's.
        _start(live, fees={"maker_bps": 2, "taker_bps": 5})
        series = fake.market(ETH).series
        limit = float(min(Decimal(v[2]) for v in series.values[START : START + 30]))
        live.act(OpenPosition(ETH, "long", 0.5, "dip", limit_price=limit))
        await until(lambda: bool(fake.orders) and fake.orders[0].status == "NEW", what="the limit order resting")
        assert fake.orders[0].client_id == "s1-1" and live.events(PositionOpened) == []
        await fake.stream(30)
        (opened,) = await live.wait_for(PositionOpened)
        assert opened.position.entry_price == pytest.approx(limit) and opened.fill.liquidity == "maker"
        assert opened.fill.fee == pytest.approx(0.5 * limit * 0.001)


@pytest.mark.asyncio
async def test_deactivating_cancels_a_resting_limit_entry_on_the_exchange() -> None:
    async with fake_market() as fake, gateway_on(fake) as live:
        _start(live)
        live.act(OpenPosition(ETH, "long", 0.5, "dip", limit_price=float(fake.price(ETH)) * 0.5))
        await until(lambda: bool(fake.orders) and fake.orders[0].status == "NEW", what="the limit order resting")
        assert fake.balances()["BTC"][1] > 0  # funds locked by the resting order
        live.rig.manager.deactivate("s1", "manage")
        (cancelled,) = await live.wait_for(OrderCancelled)
        assert cancelled.client_id == "s1-1" and fake.orders[0].status == "CANCELED"
        assert fake.balances()["BTC"] == (Decimal(1), Decimal(0))
        assert live.orch().positions.open_count() == 0 and live.gateway.tracked == {}


@pytest.mark.asyncio
async def test_a_rate_limited_close_is_sent_again_with_the_same_client_id_while_a_rate_limited_entry_is_refused() -> None:
    async with fake_market() as fake, gateway_on(fake) as live:
        _start(live)
        live.act(OpenPosition(ETH, "long", 0.5, "test"))
        await live.wait_for(PositionOpened)
        (position,) = live.positions()
        fake.faults.order_errors(429, -1015, "Too many new orders; current limit is 50 orders per 10 SECOND.")
        live.act(ClosePercent(position.id, 100.0, "exit"))
        (closed,) = await live.wait_for(PositionClosed)
        assert closed.trade.exit_reason == "exit" and live.events(OrderRejected) == []
        assert [r["newClientOrderId"] for r in fake.order_requests] == ["s1-1", "s1-2", "s1-2"]
        assert [o.client_id for o in fake.orders] == ["s1-1", "s1-2"] and live.gateway.status()["resent"] == 1


@pytest.mark.asyncio
async def test_a_bug_while_sending_or_polling_one_order_fails_that_order_not_the_gateway(caplog: pytest.LogCaptureFixture) -> None:
    async with fake_market() as fake, gateway_on(fake) as live:
        _start(live)
        exchange = live.gateway.exchange
        real_create, real_fetch = exchange.create_order, exchange.fetch_order
        failures = {"create": 1, "fetch": 1}

        async def create_order(*args: object, **kwargs: object) -> object:
            if failures["create"]:
                failures["create"] -= 1
                raise KeyError("a ccxt parsing bug")
            return await real_create(*args, **kwargs)

        async def fetch_order(*args: object, **kwargs: object) -> object:
            if failures["fetch"]:
                failures["fetch"] -= 1
                raise TypeError("another bug")
            return await real_fetch(*args, **kwargs)

        exchange.create_order, exchange.fetch_order = create_order, fetch_order
        caplog.set_level(logging.ERROR, logger=live.gateway._log.name)
        live.gateway._log.addHandler(caplog.handler)  # the bot's logger tree does not propagate to the root
        try:
            live.act(OpenPosition(ETH, "long", 0.5, "first"))
            # Unknown whether it reached the exchange: the poller asks (its first ask fails too), then drops it.
            (lost,) = await live.wait_for(OrderRejected)
            assert lost.client_id == "s1-1" and lost.kind == "network" and fake.orders == []
            assert "unexpected error handling order s1-1" in caplog.text and "checking order s1-1 failed unexpectedly" in caplog.text
            # The gateway still trades.
            live.act(OpenPosition(ETH, "long", 0.5, "second"))
            (opened,) = await live.wait_for(PositionOpened)
            assert opened.client_id == "s1-2" and live.gateway.running
        finally:
            live.gateway._log.removeHandler(caplog.handler)


# Binance spot without BNB: a buyer's commission is taken in the asset bought; ETH/BTC's lot step made coarse (real: 0.0001).
LOT_STEP = "0.001"


@pytest.mark.asyncio
async def test_a_buy_paying_its_fee_in_the_coin_bought_holds_what_the_market_can_sell_and_closes_whole() -> None:
    """0.5 ETH less its 0.0005 ETH fee is 0.4995, off the 0.001 step: the exchange would sell 0.499 and the
    0.0005 left could never be sold, so the position would stay open for good. It holds 0.499; the dust is a fee."""
    async with fake_market(btc="1", lot_step=LOT_STEP, buyer_commission_in_base=True) as fake, gateway_on(fake) as live:
        _start(live)
        price = float(fake.price(ETH))
        live.act(OpenPosition(ETH, "long", 0.5, "test"))
        (opened,) = await live.wait_for(PositionOpened)
        assert opened.position.quantity == 0.499 and fake.balances()["ETH"] == (Decimal("0.4995"), Decimal(0))
        # Its value counted as paid: the 0.0005 ETH commission and the 0.0005 ETH of dust.
        assert opened.fill.fee == pytest.approx(0.001 * price)
        (position,) = live.positions()
        live.act(ClosePercent(position.id, 100.0, "done"))
        (closed,) = await live.wait_for(PositionClosed)
        assert closed.trade.quantity == 0.499 and live.positions() == []
        assert [(o.side, o.executed_qty) for o in fake.orders] == [("BUY", Decimal("0.5")), ("SELL", Decimal("0.499"))]
        assert fake.balances()["ETH"] == (Decimal("0.0005"), Decimal(0))  # the dust, the account's, no strategy's
        assert live.orch().positions.is_flat(ETH)
        live.act(OpenPosition(ETH, "long", 0.5, "again"))  # and the strategy trades on
        assert len(await live.wait_for(PositionOpened, 2)) == 2


@pytest.mark.asyncio
async def test_a_stop_on_the_exchange_covers_the_whole_position_when_its_entry_paid_the_fee_in_the_coin_bought() -> None:
    async with fake_market(btc="1", lot_step=LOT_STEP, buyer_commission_in_base=True) as fake, gateway_on(fake) as live:
        _start(live, exits={"stop_loss_pct": 0.3})
        live.act(OpenPosition(ETH, "long", 0.5, "test"))
        (opened,) = await live.wait_for(PositionOpened)
        (position,) = live.positions()
        await until(lambda: live.orch().positions._account.stop_held(position.id), what="the stop resting on the exchange")
        assert [o.quantity for o in fake.orders if o.type == "STOP_LOSS"] == [Decimal("0.499")]
        stop = opened.position.stop_loss
        assert stop is not None
        series = fake.market(ETH).series
        hit = next(i for i in range(START, len(series)) if float(series.values[i][2]) <= stop)
        await fake.stream(hit - START + 3)
        live.feed_served(START, hit - START + 3)
        (closed,) = await live.wait_for(PositionClosed)
        assert closed.trade.quantity == 0.499 and live.positions() == [] and live.events(OrderRejected) == []


@pytest.mark.asyncio
async def test_a_limit_buy_whose_fee_cannot_be_read_holds_no_more_than_the_account_has_and_closes() -> None:
    """Filled while resting: the order's status carries no fee and its trades cannot be read (the exchange fails
    the request), so the fee is taken as paid in the coin bought at the configured rate: never more than the account holds."""
    async with fake_market(btc="1", lot_step=LOT_STEP, buyer_commission_in_base=True) as fake, gateway_on(fake) as live:
        _start(live)
        series = fake.market(ETH).series
        limit = float(min(Decimal(v[2]) for v in series.values[START : START + 30]))
        live.act(OpenPosition(ETH, "long", 0.5, "dip", limit_price=limit))
        await until(lambda: bool(fake.orders) and fake.orders[0].status == "NEW", what="the limit entry resting")
        fake.faults.trade_errors(503, count=10)
        await fake.stream(30)
        (opened,) = await live.wait_for(PositionOpened)
        assert [path for path, _ in fake.requests].count("/api/v3/myTrades") >= 1  # asked, and refused
        assert opened.position.quantity == 0.499 and fake.balances()["ETH"] == (Decimal("0.4995"), Decimal(0))
        (position,) = live.positions()
        live.act(ClosePercent(position.id, 100.0, "done"))
        (closed,) = await live.wait_for(PositionClosed)
        assert closed.trade.quantity == 0.499 and live.positions() == [] and live.events(OrderRejected) == []


@pytest.mark.asyncio
async def test_a_quantity_already_on_the_step_after_its_fee_loses_nothing_to_float_rounding() -> None:
    """0.3 ETH less 0.0003 is 0.2997, on ETH/BTC's real 0.0001 step; in floats 0.29969999999999997, a step short once truncated."""
    async with fake_market(btc="1", lot_step="0.0001", buyer_commission_in_base=True) as fake, gateway_on(fake) as live:
        _start(live)
        live.act(OpenPosition(ETH, "long", 0.3, "test"))
        (opened,) = await live.wait_for(PositionOpened)
        assert opened.position.quantity == 0.2997 and fake.balances()["ETH"] == (Decimal("0.2997"), Decimal(0))


@pytest.mark.asyncio
async def test_deactivating_to_close_also_closes_a_position_its_entry_in_flight_opens_afterwards() -> None:
    """The market entry of the last decision is on its way when the operator deactivates with policy close: it cannot be
    cancelled, so it fills on the dormant strategy; its next candle closes it (once: a refused close is not repeated)."""
    async with fake_market(btc="1") as fake, gateway_on(fake) as live:
        _start(live)
        live.act(OpenPosition(ETH, "long", 0.5, "the last candle's decision"))
        live.rig.manager.deactivate("s1", "close")
        orch = live.orch()
        assert orch.state == "dormant" and orch.policy == "close" and orch.positions.positions == {}
        (opened,) = await live.wait_for(PositionOpened)
        live.feed_served(START, 1)  # the protecting route's next candle
        (closed,) = await live.wait_for(PositionClosed)
        assert closed.trade.position_id == opened.position.position_id and closed.trade.exit_reason == "deactivate"
        assert live.positions() == [] and fake.balances()["ETH"] == (Decimal(0), Decimal(0))


@pytest.mark.asyncio
async def test_a_late_positions_close_under_policy_close_is_sent_once_not_again_on_every_candle_when_refused() -> None:
    async with fake_market(btc="1") as fake, gateway_on(fake) as live:
        _start(live)
        live.act(OpenPosition(ETH, "long", 0.5, "the last candle's decision"))
        live.rig.manager.deactivate("s1", "close")
        await live.wait_for(PositionOpened)
        fake.faults.order_errors(400, -2010, "Account has insufficient balance for requested action.")
        live.feed_served(START, 1)
        (refused,) = await live.wait_for(OrderRejected)
        assert refused.intent == "close"
        live.feed_served(START + 1, 3)
        await live.gateway.polled(3)
        assert [r["side"] for r in fake.order_requests] == ["BUY", "SELL"] and len(live.positions()) == 1
