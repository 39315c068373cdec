"""A pair whose legs were still waiting for their fills when the process died comes back as a pair."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from bot.candles.reader import read_candles
from bot.config.models import StrategyConfig
from bot.daemon.recovery import restore_orchestrator
from bot.events import OrderSubmitted, PositionClosed, PositionOpened
from bot.journal import SCHEMA_VERSION, Journal
from bot.ohlcv import Candle
from tests.support import SHARED_DATA, Rig, module_strategy, repo_catalog

PARAMS = {"second_symbol": "XMR/BTC", "window": 100, "entry_z": 2.0, "exit_z": 0.5, "stop_z": 4.0}


def _spec() -> StrategyConfig:
    return module_strategy("pairs_arbitrage", symbol="ETH/BTC", timeframe="5m", quantity=1.0, params=PARAMS, risk={"max_open_positions": 2})


def _merged() -> list[tuple[str, Candle]]:
    eth = [("ETH/BTC", c) for c in read_candles(SHARED_DATA / "ETH-BTC_1m.csv")]
    xmr = [("XMR/BTC", c) for c in read_candles(SHARED_DATA / "XMR-BTC_1m.csv")]
    return [(symbol, candle) for symbol, candle in sorted(eth + xmr, key=lambda item: (item[1].ts, item[0]))]


def _rig() -> Rig:
    return Rig(feeds={"ETH/BTC": "1m", "XMR/BTC": "1m"}, catalog=repo_catalog())


def test_pending_pair_legs_are_restored_with_their_group_and_close_together(tmp_path: Path) -> None:
    candles = _merged()
    journal = Journal(tmp_path / "journal.sqlite")
    before = _rig()
    before.services.bus.subscribe(journal.record)
    before.start(_spec())
    orchestrator = before.manager.get("pairs_arbitrage")
    index = 0
    while len(orchestrator.positions.pending_orders()) < 2:
        symbol, candle = candles[index]
        before.services.hub.ingest(symbol, candle)
        index += 1
    pending = orchestrator.positions.pending_orders()
    assert {o.intent for o in pending} == {"open"} and not orchestrator.positions.positions
    group = next(e.group for e in before.of_type(OrderSubmitted, "pairs_arbitrage"))
    journal.close()

    # The process dies here; a new one restores from the journal and the candles go on.
    journal = Journal(tmp_path / "journal.sqlite")
    after = _rig()
    for symbol, candle in candles[max(0, index - 3000) : index]:
        after.services.hub.ingest(symbol, candle)
    after.manager.load(_spec(), announce=False)
    restored = after.manager.get("pairs_arbitrage")
    assert restore_orchestrator(journal, restored)["pending_orders"] == 2
    after.manager.activate("pairs_arbitrage")
    journal.close()
    while not after.of_type(PositionClosed, "pairs_arbitrage"):
        symbol, candle = candles[index]
        after.services.hub.ingest(symbol, candle)
        index += 1
    opened = after.of_type(PositionOpened, "pairs_arbitrage")
    assert len(opened) == 2 and {p.position.group for p in opened} == {group}
    for symbol, candle in candles[index : index + 40]:
        after.services.hub.ingest(symbol, candle)
    closed = after.of_type(PositionClosed, "pairs_arbitrage")
    assert [c.trade.group for c in closed[:2]] == [group, group]
    # Later pairs get new position ids and groups: the restored pending legs' ids are not handed out again.
    for symbol, candle in candles[index + 40 : index + 6000]:
        after.services.hub.ingest(symbol, candle)
    ids = [e.position.position_id for e in after.of_type(PositionOpened, "pairs_arbitrage")]
    groups = [e.position.group for e in after.of_type(PositionOpened, "pairs_arbitrage")]
    assert len(ids) >= 6 and len(set(ids)) == len(ids)
    assert all(groups.count(g) == 2 for g in groups)
    assert closed[0].trade.exit_reason == closed[1].trade.exit_reason or "pair_leg_closed" in (closed[0].trade.exit_reason, closed[1].trade.exit_reason)


def test_a_version_1_journal_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    Journal(path).close()
    with sqlite3.connect(path) as conn:
        for column in ("pair_group", "order_type", "limit_price", "stop_price", "rung"):
            conn.execute(f"ALTER TABLE orders DROP COLUMN {column}")
        conn.execute("UPDATE schema_version SET version = 1")
    conn.close()
    Journal(path).close()
    with sqlite3.connect(path) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(orders)")]
        version = conn.execute("SELECT version FROM schema_version").fetchall()
    conn.close()
    assert {"pair_group", "order_type", "limit_price", "stop_price", "rung"} <= set(columns) and version == [(SCHEMA_VERSION,)] and SCHEMA_VERSION == 5
