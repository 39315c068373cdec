"""Stops resting on the exchange (execution.stops "exchange"): placed, moved, cancelled before a close, and fired while the bot is down."""
from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path

import pytest

from bot.daemon.recovery import restore_orchestrator
from bot.events import OrderCancelled, OrderRejected, OrderSubmitted, PositionClosed, PositionOpened, PositionReduced, StopUpdated
from bot.live.reconcile import Reconciler
from bot.trading.actions import ActivateTrailingStop, ClosePercent, OpenPosition, UpdateStopLoss
from tests.fake_exchange.orders import Order as FakeOrder
from tests.live.support import ETH, trigger, until
from tests.live.trading_support import START, LiveRig, eth_strategy, fake_market, gateway_on, journal_at

STOP_PCT = 0.3


def _start(live: LiveRig, **overrides: object) -> None:
    live.rig.start(eth_strategy(exits={"stop_loss_pct": STOP_PCT}, **overrides))
    live.feed_served(START - 50, 50)


def _stops(live: LiveRig, status: str | None = None) -> list[FakeOrder]:
    return [o for o in live.fake.orders if o.type == "STOP_LOSS" and (status is None or o.status == status)]


async def _resting_stop(live: LiveRig, count: int = 1) -> FakeOrder:
    """Wait until the exchange holds the position's stop (the `count`-th one placed) and the bot knows it rests."""
    await until(lambda: len(_stops(live)) >= count and _stops(live)[count - 1].status == "NEW", what=f"stop #{count} resting on the exchange")
    (position,) = live.positions()
    await until(lambda: live.orch().positions._account.stop_held(position.id), what="the gateway to confirm the stop")
    return _stops(live)[count - 1]


def _first_low_at_or_below(live: LiveRig, price: float | None) -> int:
    assert price is not None, "the position has no stop"
    series = live.fake.market(ETH).series
    return next(i for i in range(START, len(series)) if float(series.values[i][2]) <= price)


@pytest.mark.asyncio
async def test_a_positions_stop_rests_on_the_exchange_and_fires_there_without_the_bot() -> None:
    async with fake_market() as fake, gateway_on(fake) as live:
        _start(live)
        live.act(OpenPosition(ETH, "long", 0.5, "test"))
        (opened,) = await live.wait_for(PositionOpened)
        stop = await _resting_stop(live)
        assert stop.client_id == "s1-2" and stop.side == "SELL" and stop.quantity == Decimal("0.5")
        assert trigger(stop) == pytest.approx(opened.position.stop_loss, abs=1e-6)
        # The exchange holds the position's ETH for the stop.
        assert fake.balances()["ETH"] == (Decimal(0), Decimal("0.5"))
        (placed,) = [p for p in live.events(OrderSubmitted) if p.order_type == "stop"]
        assert placed.client_id == "s1-2" and placed.stop_price == opened.position.stop_loss and placed.reason == "stop_loss"
        stops = live.gateway.status()["stops"]
        assert stops["mode"] == "exchange" and stops["positions"]["s1"][0]["state"] == "resting"

        # The market falls through the stop; the bot sees no candle at all (as if it were down).
        hit = _first_low_at_or_below(live, opened.position.stop_loss)
        await fake.stream(hit - START + 1)
        (closed,) = await live.wait_for(PositionClosed)
        assert closed.trade.exit_reason == "stop_loss" and closed.trade.exit_price == pytest.approx(trigger(stop), rel=0.01)
        # Nothing else was sent: the stop was the close.
        assert [o.client_id for o in fake.orders] == ["s1-1", "s1-2"] and fake.balances()["ETH"] == (Decimal(0), Decimal(0))
        assert live.orch().positions.pending_orders() == () and live.gateway.tracked == {}
        assert live.gateway.status()["stops"]["positions"] == {}


@pytest.mark.asyncio
async def test_a_stop_the_feed_shows_hit_is_left_to_the_exchange_not_sent_twice() -> None:
    async with fake_market() as fake, gateway_on(fake) as live:
        _start(live)
        live.act(OpenPosition(ETH, "long", 0.5, "test"))
        (opened,) = await live.wait_for(PositionOpened)
        await _resting_stop(live)
        hit = _first_low_at_or_below(live, opened.position.stop_loss)
        await fake.stream(hit - START + 1)
        live.feed_served(START, hit - START + 1)  # the bot's feed shows the same fall
        (closed,) = await live.wait_for(PositionClosed)
        assert closed.trade.exit_reason == "stop_loss"
        assert [o.client_id for o in fake.orders] == ["s1-1", "s1-2"]
        assert all(p.order_type == "stop" or p.intent == "open" for p in live.events(OrderSubmitted))


@pytest.mark.asyncio
async def test_a_close_by_the_strategy_cancels_the_stop_first_and_a_partial_close_puts_it_back_for_the_rest() -> None:
    async with fake_market() as fake, gateway_on(fake) as live:
        _start(live)
        live.act(OpenPosition(ETH, "long", 0.5, "test"))
        await live.wait_for(PositionOpened)
        first = await _resting_stop(live)
        (position,) = live.positions()

        live.act(ClosePercent(position.id, 50.0, "half"))
        (reduced,) = await live.wait_for(PositionReduced)
        assert reduced.reason == "half" and reduced.position.quantity == pytest.approx(0.25)
        second = await _resting_stop(live, count=2)
        assert first.status == "CANCELED" and second.quantity == Decimal("0.25")
        # The stop's lock was released before the sell: nothing was refused for insufficient funds.
        assert live.events(OrderRejected) == []
        (moved,) = live.events(OrderCancelled)
        assert moved.client_id == first.client_id and moved.kind == "stop_moved"
        assert fake.balances()["ETH"] == (Decimal(0), Decimal("0.25"))

        live.act(ClosePercent(position.id, 100.0, "done"))
        (closed,) = await live.wait_for(PositionClosed)
        assert closed.trade.exit_reason == "done"
        await until(lambda: second.status == "CANCELED", what="the last stop cancelled")
        assert fake.balances()["ETH"] == (Decimal(0), Decimal(0)) and [o.status for o in fake.orders if o.is_open] == []
        released = live.events(OrderCancelled)[-1]
        assert released.client_id == second.client_id and released.kind == "stop_released"
        assert live.gateway.tracked == {} and live.orch().positions.pending_orders() == ()


@pytest.mark.asyncio
async def test_moving_the_stop_replaces_the_order_on_the_exchange_and_a_trailing_stop_follows_the_price() -> None:
    async with fake_market() as fake, gateway_on(fake) as live:
        # A wide stop: in the served stretch the price makes three new highs and never falls 1.2 % below them.
        live.rig.start(eth_strategy(exits={"stop_loss_pct": 2.0}))
        live.feed_served(START - 50, 50)
        live.act(OpenPosition(ETH, "long", 0.5, "test"))
        (opened,) = await live.wait_for(PositionOpened)
        first = await _resting_stop(live)
        (position,) = live.positions()
        entry = opened.position.entry_price

        live.act(UpdateStopLoss(position.id, round(entry * 0.985, 6), "manual"))
        second = await _resting_stop(live, count=2)
        assert first.status == "CANCELED" and trigger(second) == pytest.approx(entry * 0.985, abs=1e-6)

        live.act(ActivateTrailingStop(position.id, 1.2, entry))
        third = await _resting_stop(live, count=3)
        assert second.status == "CANCELED" and trigger(third) == pytest.approx(entry * 0.988, abs=1e-6)
        for index in range(START, START + 90):
            await fake.stream(1)
            live.feed_served(index, 1)
            await until(lambda: live.orch().positions._account.stop_held(position.id), what="the moved stop resting")
        moves = [p for p in live.events(StopUpdated) if p.reason == "trailing"]
        assert len(moves) >= 2 and position.status == "open"
        (resting,) = _stops(live, "NEW")
        assert trigger(resting) == pytest.approx(moves[-1].trailing_stop, abs=1e-6) and resting.quantity == Decimal("0.5")
        # Every earlier stop was cancelled, one replacement per move at most (moves in between are coalesced).
        assert all(o.status == "CANCELED" for o in _stops(live) if o is not resting)
        assert 4 <= len(_stops(live)) <= 3 + len(moves)
        kinds = {p.kind for p in live.events(OrderCancelled)}
        assert kinds == {"stop_moved"} and live.events(OrderRejected) == []


@pytest.mark.asyncio
async def test_a_refused_stop_is_reported_and_the_bot_enforces_it_from_the_feed() -> None:
    async with fake_market() as fake, gateway_on(fake) as live:
        live.rig.start(eth_strategy())  # no stop-loss yet: the strategy sets one after the entry
        live.feed_served(START - 50, 50)
        live.act(OpenPosition(ETH, "long", 0.5, "test"))
        (opened,) = await live.wait_for(PositionOpened)
        (position,) = live.positions()
        stop = round(opened.position.entry_price * (1 - STOP_PCT / 100), 6)
        fake.faults.order_errors(400, -2010, "Stop price would trigger immediately.")
        live.act(UpdateStopLoss(position.id, stop, "manual"))
        (refused,) = await live.wait_for(OrderRejected)
        assert refused.client_id == "s1-2" and "Stop price would trigger immediately" in refused.exchange_reason
        assert not live.orch().positions._account.stop_held(position.id)
        assert live.gateway.status()["stops"]["positions"]["s1"][0]["state"] == "refused"
        hit = _first_low_at_or_below(live, stop)
        await fake.stream(hit - START + 1)
        live.feed_served(START, hit - START + 1)
        (closed,) = await live.wait_for(PositionClosed)
        assert closed.trade.exit_reason == "stop_loss"
        assert [(o.client_id, o.type) for o in fake.orders] == [("s1-1", "MARKET"), ("s1-3", "MARKET")]


@pytest.mark.asyncio
async def test_stops_stay_local_where_the_market_takes_no_stop_orders_or_the_config_says_so() -> None:
    for market_has_stops, mode in ((False, "exchange"), (True, "local")):
        async with fake_market(stop_orders=market_has_stops) as fake, gateway_on(fake, stops=mode) as live:
            _start(live)
            live.act(OpenPosition(ETH, "long", 0.5, "test"))
            (opened,) = await live.wait_for(PositionOpened)
            hit = _first_low_at_or_below(live, opened.position.stop_loss)
            await fake.stream(hit - START + 1)
            live.feed_served(START, hit - START + 1)
            (closed,) = await live.wait_for(PositionClosed)
            assert closed.trade.exit_reason == "stop_loss"
            assert [o.type for o in fake.orders] == ["MARKET", "MARKET"], (market_has_stops, mode)


@pytest.mark.asyncio
async def test_a_stop_that_fired_while_the_bot_was_down_is_booked_at_restart_and_one_still_resting_is_kept(tmp_path: Path) -> None:
    async with fake_market(btc="2") as fake:
        with journal_at(tmp_path) as journal:
            async with gateway_on(fake, journal) as first:
                _start(first, risk={"max_open_positions": 3})
                first.act(OpenPosition(ETH, "long", 0.5, "test"))
                (opened,) = await first.wait_for(PositionOpened)
                await _resting_stop(first)
            assert [o["order_type"] for o in journal.pending_orders("s1")] == ["stop"]

            # Down, still resting: the restart takes the stop over instead of placing another.
            async with gateway_on(fake, journal, arm=False) as second:
                second.rig.manager.load(eth_strategy(exits={"stop_loss_pct": STOP_PCT}, risk={"max_open_positions": 3}), announce=False)
                restore_orchestrator(journal, second.orch())
                managers = {sid: second.rig.manager.get(sid).positions for sid in second.rig.manager.ids()}
                report = await Reconciler(second.gateway, managers, second.rig.services.bus, logging.getLogger("test")).run([ETH])
                assert report.counts == {"order_still_open": 1}
                await _resting_stop(second)
                assert len(_stops(second)) == 1

            # Down again; the market falls through the stop, which fills on the exchange.
            hit = _first_low_at_or_below(first, opened.position.stop_loss)
            await fake.stream(hit - START + 1)
            assert _stops(first)[0].status == "FILLED"

            async with gateway_on(fake, journal, arm=False) as third:
                third.rig.manager.load(eth_strategy(exits={"stop_loss_pct": STOP_PCT}, risk={"max_open_positions": 3}), announce=False)
                restore_orchestrator(journal, third.orch())
                managers = {sid: third.rig.manager.get(sid).positions for sid in third.rig.manager.ids()}
                report = await Reconciler(third.gateway, managers, third.rig.services.bus, logging.getLogger("test")).run([ETH])
                assert report.counts == {"order_filled_while_down": 1}
                (closed,) = third.events(PositionClosed)
                assert closed.trade.exit_reason == "stop_loss" and third.positions() == []
                assert journal.open_positions("s1") == [] and journal.pending_orders("s1") == []
                assert [o.client_id for o in fake.orders] == ["s1-1", "s1-2"]


@pytest.mark.asyncio
async def test_a_stop_below_min_notional_is_not_placed_again_every_poll() -> None:
    async with fake_market() as fake, gateway_on(fake) as live:
        live.rig.start(eth_strategy(exits={"stop_loss_pct": 0.3}))
        live.feed_served(START - 50, 50)
        live.act(OpenPosition(ETH, "long", 0.5, "test"))
        await live.wait_for(PositionOpened)
        (position,) = live.positions()
        await until(lambda: live.orch().positions._account.stop_held(position.id), what="stop resting")
        # The strategy takes 99.9 %: what is left (0.0005 ETH, ~0.000045 BTC) is below the market's NOTIONAL minimum for a stop.
        live.act(ClosePercent(position.id, 99.9, "most"))
        await live.wait_for(PositionReduced)
        await live.gateway.polled(30)
        rejected = [p for p in live.events(OrderRejected)]
        kinds = {p.kind for p in rejected}
        stops = [o for o in fake.orders if o.type == "STOP_LOSS"]
        assert len(rejected) == 1 and "NOTIONAL" in rejected[0].exchange_reason, f"{len(rejected)} refused stops ({kinds}) in 30 polls; exchange took {len(stops)} stops"
        assert live.gateway.status()["stops"]["positions"]["s1"][0]["state"] == "refused"


@pytest.mark.asyncio
async def test_a_resting_stop_is_asked_about_rarely_and_at_once_when_the_feed_shows_it_crossed() -> None:
    async with fake_market() as fake, gateway_on(fake, stop_poll_interval_s=60.0) as live:
        _start(live)
        live.act(OpenPosition(ETH, "long", 0.5, "test"))
        (opened,) = await live.wait_for(PositionOpened)
        stop = await _resting_stop(live)
        exchange = live.gateway.exchange
        real_fetch = exchange.fetch_order
        asked: list[object] = []

        async def fetch_order(*args: object, **kwargs: object) -> object:
            asked.append(args[0])
            return await real_fetch(*args, **kwargs)

        exchange.fetch_order = fetch_order
        await live.gateway.polled(25)
        assert len(asked) <= 1
        # The market falls through the stop; the exchange fills it, and the bot's feed shows the fall.
        hit = _first_low_at_or_below(live, opened.position.stop_loss)
        await fake.stream(hit - START + 1)
        assert stop.status == "FILLED"
        live.feed_served(START, hit - START + 1)
        (closed,) = await live.wait_for(PositionClosed, timeout=2.0)
        assert closed.trade.exit_reason == "stop_loss" and [o.client_id for o in fake.orders] == ["s1-1", "s1-2"]
