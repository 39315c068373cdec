"""Builders shared by the journal tests: the strategies, a rig that journals, and comparisons with live state."""
from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.config.models import StrategyConfig
from bot.event_codec import encode_record
from bot.journal import JOURNAL_EXTRAS, Journal
from bot.trading.orders import Order
from bot.trading.positions import Position
from tests.support import Rig, strategy

# Stop-loss, a two-rung take-profit ladder (partial closes), trailing and break-even (stop_updated).
EXITS_A: dict[str, Any] = {
    "stop_loss_pct": 1,
    "take_profit": [{"pct": 0.5, "close_pct": 50}, {"pct": 1, "close_pct": 50}],
    "trailing": {"activation_pct": 0.3, "distance_pct": 0.2},
    "break_even_after_first_take_profit": True,
}


def strategies() -> tuple[StrategyConfig, StrategyConfig]:
    """Two strategies on the same BTC/USD 1m stream, with different sizes, exits and fees."""
    a = strategy(id="a", exits=EXITS_A, fees={"taker_bps": 5, "maker_bps": 2})
    b = strategy(
        id="b",
        quantity=0.25,
        analyzers=[{"type": "ema_cross", "params": {"fast": 5, "slow": 12}}],
        exits={"stop_loss_pct": 2, "take_profit": [{"pct": 0.4, "close_pct": 30}]},
        fees={"taker_bps": 4},
    )
    return a, b


@dataclass(frozen=True)
class JournalledRun:
    """A finished replay whose every event went through a journal, closed at `path`."""

    rig: Rig
    path: Path


def journalled_rig(journal: Journal) -> Rig:
    """A rig whose bus calls `journal.record` before any strategy is loaded or any consumer other than the test's event list."""
    rig = Rig()
    rig.services.bus.subscribe(journal.record)
    return rig


def position_as_journalled(position: Position) -> dict[str, Any]:
    """What the journal should hold for a live position: its record plus the extras recovery needs."""
    return {**encode_record(position.record()), **{name: getattr(position, name) for name in JOURNAL_EXTRAS}}


def order_as_journalled(order: Order, pair_group: str | None = None) -> dict[str, Any]:
    """What pending_orders should return for a live pending order (of a pair's leg: with its group)."""
    return {
        "client_id": order.client_id,
        "symbol": order.symbol,
        "side": order.side,
        "quantity": order.quantity,
        "intent": order.intent,
        "position_id": order.position_id,
        "reason": order.reason,
        "ref_price": order.ref_price,
        "submitted_ts": order.submitted_ts,
        "filled_quantity": 0.0,
        "pair_group": pair_group,
        "order_type": None if order.order_type == "market" else order.order_type,
        "limit_price": order.limit_price,
        "stop_price": order.stop_price,
        "rung": order.rung,
    }


def without_portfolio(payload: dict[str, Any]) -> dict[str, Any]:
    """A position_closed payload as a trade record."""
    return {k: v for k, v in payload.items() if k != "portfolio"}


def dump_tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of a journal file, in a stable order, read with plain sqlite3."""
    with closing(sqlite3.connect(path)) as conn:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {table: sorted(conn.execute(f"SELECT * FROM {table}").fetchall(), key=repr) for table in tables}


def integrity(path: Path) -> str:
    """The result of PRAGMA integrity_check on a file ('ok' when sound)."""
    with closing(sqlite3.connect(path)) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
