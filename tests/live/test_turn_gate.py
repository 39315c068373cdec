"""The live gateway under the daemon's turns: an order decided in a turn reaches the exchange only once the turn is journalled."""
from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from bot.events import OrderRejected, PositionOpened
from bot.journal import Journal, JournalError
from bot.journal.turns import Turns
from bot.strategy.delivery import TurnNotJournalled
from bot.trading.actions import ClosePercent, OpenPosition
from tests.journal.refusals import allow_inserts, refuse_inserts, writer_held
from tests.live.support import ETH, until
from tests.live.trading_support import START, eth_strategy, fake_market, gateway_on


def _turns(journal: Journal) -> Turns:
    return Turns(journal, asyncio.get_running_loop().call_soon_threadsafe)


def _journalled_orders(path: Path) -> list[tuple[str, str]]:
    """What another connection sees in the journal's orders table: committed rows only."""
    with closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT client_id, status FROM orders ORDER BY client_id").fetchall()


@pytest.mark.asyncio
async def test_an_order_decided_in_a_turn_is_placed_only_after_the_turn_commits(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path) as journal:
        turns = _turns(journal)
        async with fake_market(btc="1") as fake, gateway_on(fake, journal, commits=turns) as live:
            live.rig.start(eth_strategy())
            live.feed_served(START - 50, 50)
            with turns.turn() as outcome:
                live.act(OpenPosition(ETH, "long", 0.5, "test"))
                # The gateway's tasks and its poller have run meanwhile: nothing was sent, nothing is committed.
                await live.gateway.polled(2)
                assert fake.orders == [] and _journalled_orders(path) == []
            # Committed on the writer thread once the turn ended; only then sent.
            await outcome.settled()
            assert _journalled_orders(path) == [("s1-1", "submitted")]
            (opened,) = await live.wait_for(PositionOpened)
            assert opened.client_id == "s1-1" and [o.client_id for o in fake.orders] == ["s1-1"]


@pytest.mark.asyncio
async def test_an_order_of_a_turn_that_cannot_be_journalled_is_never_sent_and_ends_rejected(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path) as journal:
        turns = _turns(journal)
        async with fake_market(btc="1") as fake, gateway_on(fake, journal, commits=turns) as live:
            live.rig.start(eth_strategy())
            live.feed_served(START - 50, 50)
            refuse_inserts(path, "orders")  # the disk full when the turn's order is written
            with turns.turn() as outcome:
                live.act(OpenPosition(ETH, "long", 0.5, "test"))
            with pytest.raises(JournalError, match="order_submitted of 's1'"):
                await outcome.settled()
            (rejected,) = await live.wait_for(OrderRejected)
            assert rejected.client_id == "s1-1" and rejected.kind == "journal"
            await live.gateway.polled(2)
            assert fake.orders == [] and live.gateway.tracked == {} and _journalled_orders(path) == []
            orchestrator = live.orch()
            assert orchestrator.positions.open_count() == 0 and orchestrator.positions.is_flat(ETH)


@pytest.mark.asyncio
async def test_a_close_held_behind_a_resting_stop_in_a_turn_that_cannot_be_journalled_never_reaches_the_exchange(tmp_path: Path) -> None:
    """The close waits for the stop's cancel, and the cancel for the turn's commit: the turn rolled back, neither goes out.

    The writer thread is held busy (a slow disk) while the gateway's tasks and poller run: before
    the commit nothing of the turn may reach the exchange, not even the stop's cancel, or a kill -9
    in that window would leave the position without the stop the journal says is resting.
    """
    path = tmp_path / "journal.sqlite"
    with Journal(path) as journal:
        turns = _turns(journal)
        async with fake_market() as fake, gateway_on(fake, journal, commits=turns) as live:
            live.rig.start(eth_strategy(exits={"stop_loss_pct": 0.3}))
            live.feed_served(START - 50, 50)
            live.act(OpenPosition(ETH, "long", 0.5, "test"))  # outside a turn: its own commits
            await live.wait_for(PositionOpened)
            await until(lambda: any(o.type == "STOP_LOSS" and o.status == "NEW" for o in fake.orders), what="the stop resting")
            (position,) = live.positions()
            await until(lambda: live.orch().positions._account.stop_held(position.id), what="the gateway to confirm the stop")
            (stop,) = [o for o in fake.orders if o.type == "STOP_LOSS"]
            refuse_inserts(path, "orders")  # a disk full for a moment
            with writer_held(journal) as release:
                with turns.turn() as outcome:
                    live.act(ClosePercent(position.id, 100.0, "done"))
                await live.gateway.polled(2)
                assert stop.status == "NEW" and [o.client_id for o in fake.orders] == ["s1-1", stop.client_id]
                release()
                with pytest.raises(JournalError):
                    await outcome.settled()
            allow_inserts(path, "orders")
            # The close ends refused; the stop was never cancelled and still protects the position.
            (rejected,) = await live.wait_for(OrderRejected)
            assert rejected.kind == "journal" and live.orch().positions.pending_orders() == ()
            await live.gateway.polled(3)
            assert stop.status == "NEW" and [o.client_id for o in fake.orders] == ["s1-1", stop.client_id]
            journalled = {cid for cid, _ in _journalled_orders(path)}
            assert {o.client_id for o in fake.orders} <= journalled
            # The stop still follows the position: a close decided in a turn that commits cancels it and goes out.
            with turns.turn() as outcome:
                live.act(ClosePercent(position.id, 100.0, "again"))
            await outcome.settled()
            await until(lambda: stop.status == "CANCELED", what="the stop cancelled for the committed close")
            await until(lambda: any(o.type == "MARKET" and o.side == "SELL" and o.status == "FILLED" for o in fake.orders), what="the close filled")


@pytest.mark.asyncio
async def test_a_failed_strategys_resting_entry_is_cancelled_even_when_the_turn_that_failed_it_is_not_journalled(tmp_path: Path) -> None:
    """Failed inside its turn, the entry's cancel waits for the commit and is dropped with it: asked again afterwards (found by review)."""
    path = tmp_path / "journal.sqlite"
    with Journal(path) as journal:
        turns = _turns(journal)
        async with fake_market() as fake, gateway_on(fake, journal, commits=turns) as live:
            live.rig.start(eth_strategy())
            live.feed_served(START - 50, 50)
            live.act(OpenPosition(ETH, "long", 0.5, "dip", limit_price=float(fake.price(ETH)) * 0.5))  # outside a turn
            await until(lambda: bool(fake.orders) and fake.orders[0].status == "NEW", what="the limit entry resting")
            await until(lambda: live.gateway.tracked["s1-1"].exchange_id is not None, what="acknowledged")
            manager, orch = live.rig.manager, live.orch()
            refuse_inserts(path, "strategy_states", "NEW.state = 'failed'")  # a disk full for a moment
            with turns.turn() as outcome:
                # The strategy's code raised on this candle: InboxDelivery hands it to the manager inside the turn.
                manager.on_handler_error(orch, orch.on_candle, RuntimeError("bug"))
            with pytest.raises(JournalError) as caught:
                await outcome.settled()
            allow_inserts(path, "strategy_states")
            # What InboxDelivery does next, outside any turn.
            manager.on_handler_error(orch, orch.on_candle, TurnNotJournalled(str(caught.value)))
            assert orch.state == "failed"
            # A failed strategy takes no new entry: its resting entry is cancelled on the exchange.
            await until(lambda: fake.orders[0].status == "CANCELED", what="the entry cancelled")
