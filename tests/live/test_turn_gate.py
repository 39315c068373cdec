"""The live gateway under the daemon's turns: an order decided in a turn reaches the exchange only once the turn is journalled."""
from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from bot.events import OrderRejected, PositionOpened
from bot.journal import Journal, JournalError
from bot.journal.turns import Turns
from bot.trading.actions import OpenPosition
from tests.live.support import ETH
from tests.live.trading_support import START, eth_strategy, fake_market, gateway_on


class CommitRefused(Journal):
    """A journal whose turn commits fail (the disk gone bad at that moment): the turn's writes are rolled back."""

    def commit_turn(self) -> None:
        self.rollback_turn()
        raise JournalError("commit refused")


def _journalled_orders(path: Path) -> list[tuple[str, str]]:
    """What another connection sees in the journal's orders table: committed rows only."""
    with closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT client_id, status FROM orders ORDER BY client_id").fetchall()


@pytest.mark.asyncio
async def test_an_order_decided_in_a_turn_is_placed_only_after_the_turn_commits(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path) as journal:
        turns = Turns(journal)
        async with fake_market(btc="1") as fake, gateway_on(fake, journal, commits=turns) as live:
            live.rig.start(eth_strategy())
            live.feed_served(START - 50, 50)
            with turns.turn():
                live.act(OpenPosition(ETH, "long", 0.5, "test"))
                # The gateway's tasks and its poller have run meanwhile: nothing was sent, nothing is committed.
                await live.gateway.polled(2)
                assert fake.orders == [] and _journalled_orders(path) == []
            # Committed when the turn ended; only then sent.
            assert _journalled_orders(path) == [("s1-1", "submitted")]
            (opened,) = await live.wait_for(PositionOpened)
            assert opened.client_id == "s1-1" and [o.client_id for o in fake.orders] == ["s1-1"]


@pytest.mark.asyncio
async def test_an_order_of_a_turn_that_cannot_be_journalled_is_never_sent_and_ends_rejected(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with CommitRefused(path) as journal:
        turns = Turns(journal)
        async with fake_market(btc="1") as fake, gateway_on(fake, journal, commits=turns) as live:
            live.rig.start(eth_strategy())
            live.feed_served(START - 50, 50)
            with pytest.raises(JournalError), turns.turn():
                live.act(OpenPosition(ETH, "long", 0.5, "test"))
            (rejected,) = await live.wait_for(OrderRejected)
            assert rejected.client_id == "s1-1" and rejected.kind == "journal"
            await live.gateway.polled(2)
            assert fake.orders == [] and live.gateway.tracked == {} and _journalled_orders(path) == []
            orchestrator = live.orch()
            assert orchestrator.positions.open_count() == 0 and orchestrator.positions.is_flat(ETH)
