"""What a graceful stop waits for before the gateway stops (OrdersOnTheirWay), on the fake Binance through the real ccxt client."""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import anyio
import pytest

from bot.events import PositionClosed, PositionOpened
from bot.live.stop_wait import OrdersOnTheirWay
from bot.strategy.booking_faults import BookingFaults
from bot.strategy.manager import StrategyManager
from bot.trading.actions import ClosePercent, OpenPosition
from tests.fake_exchange import FakeBinance
from tests.live.support import ETH, until
from tests.live.trading_support import START, LiveRig, eth_strategy, fake_market, gateway_on, journal_at

LOG = logging.getLogger("bot.tests.stop_wait")


class _Unloads:
    """Unloads settling as given, none of them ever done (the strategy manager's part, fixed)."""

    def __init__(self, settling: dict[str, list[str]] | None = None) -> None:
        self._settling = settling or {}

    def settle(self) -> list[str]:
        return []

    def settling(self) -> dict[str, list[str]]:
        return self._settling


async def _protected(live: LiveRig) -> str:
    """Open 0.5 ETH at market with a stop-loss, and a limit buy far below; return the position's id once its stop rests."""
    live.rig.start(eth_strategy(exits={"stop_loss_pct": 0.3}, risk={"max_open_positions": 2}))
    live.feed_served(START - 50, 50)
    live.act(OpenPosition(ETH, "long", 0.5, "market"))
    (opened,) = await live.wait_for(PositionOpened)
    live.act(OpenPosition(ETH, "long", 0.1, "dip", limit_price=float(live.fake.price(ETH)) * 0.5))
    position_id = opened.position.position_id
    await until(lambda: live.orch().positions.account.stop_held(position_id), what="the stop resting")
    await until(lambda: all(t.exchange_id is not None for t in live.gateway.tracked.values()), what="the limit resting")
    return position_id


@pytest.mark.asyncio
async def test_orders_resting_as_asked_are_not_waited_for(tmp_path: Path) -> None:
    async with fake_market(btc="2") as fake:
        with journal_at(tmp_path) as journal:
            async with gateway_on(fake, journal) as live:
                await _protected(live)
                wait = OrdersOnTheirWay(live.gateway, _Unloads(), LOG)
                assert wait.pending() == []
                assert await wait.wait(60.0, anyio.Event()) == []


@pytest.mark.asyncio
async def test_a_close_held_behind_its_stops_cancel_is_waited_for_until_it_fills(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOG.name)
    async with fake_market(btc="2") as fake:
        with journal_at(tmp_path) as journal:
            async with gateway_on(fake, journal) as live:
                position_id = await _protected(live)
                released = fake.faults.hold_cancels()
                live.act(ClosePercent(position_id, 100.0, "exit"))
                wait = OrdersOnTheirWay(live.gateway, _Unloads(), LOG)
                assert wait.pending() == [
                    "[s1] s1-2 (stop close sell 0.5 ETH/BTC): being cancelled",
                    "[s1] s1-4 (close sell 0.5 ETH/BTC of s1-p1): held until its stop is cancelled",
                ]
                waiting = _Logged("stopping: waiting up to ")
                LOG.addHandler(waiting)
                try:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(_release_once_waiting, waiting, fake, released)
                        left = await wait.wait(60.0, anyio.Event())
                finally:
                    LOG.removeHandler(waiting)
                assert left == [] and len(live.events(PositionClosed)) == 1
                assert [(o.client_id, o.type, o.status) for o in fake.orders if o.side == "SELL"] == [
                    ("s1-2", "STOP_LOSS", "CANCELED"), ("s1-4", "MARKET", "FILLED"),
                ]


class _Logged(logging.Handler):
    """Sets `seen` when a record starting with `text` is logged (from the task logging it: the wait's own)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self._text = text
        self.seen = anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(self._text):
            self.seen.set()


async def _release_once_waiting(waiting: _Logged, fake: FakeBinance, released: asyncio.Event) -> None:
    """Let the exchange take the cancel only once the wait waits: it logs that, then awaits, and only then may this task run."""
    await waiting.seen.wait()
    assert not any(o.side == "SELL" and o.type == "MARKET" for o in fake.orders)  # the close is still held
    released.set()


@pytest.mark.asyncio
async def test_the_bound_or_a_second_signal_ends_the_wait_with_a_line_naming_what_was_still_on_its_way(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, LOG.name)
    async with fake_market(btc="2") as fake:
        with journal_at(tmp_path) as journal:
            async with gateway_on(fake, journal) as live:
                position_id = await _protected(live)
                fake.faults.hold_cancels()  # never released
                live.act(ClosePercent(position_id, 100.0, "exit"))
                wait = OrdersOnTheirWay(live.gateway, _Unloads({"s9": ["s9-1"]}), LOG)
                left = await wait.wait(0.2, anyio.Event())
                hurry = anyio.Event()
                hurry.set()
                hurried = await wait.wait(60.0, hurry)
    assert left == hurried and "[s1] s1-4 (close sell 0.5 ETH/BTC of s1-p1): held until its stop is cancelled" in left
    assert "[s9] unloaded, settling" in left
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert warnings[0].startswith("stopping: still on their way after 0.2 s: ") and "s1-4" in warnings[0]
    assert warnings[1].startswith("stopping: a second signal ends the wait: ") and "s1-4" in warnings[1]
    assert not any(o.side == "SELL" and o.type == "MARKET" for o in fake.orders)


@pytest.mark.asyncio
async def test_an_unload_whose_orders_are_done_is_settled_by_the_wait_not_waited_for_closing_what_its_entry_opened(tmp_path: Path) -> None:
    async with fake_market(btc="1") as fake:
        with journal_at(tmp_path) as journal:
            faults = BookingFaults(LOG)
            async with gateway_on(fake, journal, faults=faults) as live:
                # No periodic settle runs here (the daemon's runs every poll_interval_s, up to 60 s): only the wait settles.
                manager = StrategyManager(live.rig.services, live.rig.factory, accounts=live.gateway, booking_faults=faults)
                manager.load(eth_strategy())
                manager.activate("s1")
                live.feed_served(START - 50, 50)
                live.act(OpenPosition(ETH, "long", 0.5, "market"))
                manager.unload("s1", close_positions=True)  # before the entry is even sent
                assert manager.settling() == {"s1": ["s1-1"]}
                left = await OrdersOnTheirWay(live.gateway, manager, LOG).wait(20.0, anyio.Event())
                assert left == [] and manager.settling() == {} and "s1" not in live.gateway.accounts
                # The entry filled during the wait; the position it opened was closed at market, as the unload asked.
                assert [(o.client_id, o.side, o.status) for o in fake.orders] == [("s1-1", "BUY", "FILLED"), ("s1-2", "SELL", "FILLED")]
                assert journal.open_positions("s1") == [] and journal.pending_orders("s1") == []
