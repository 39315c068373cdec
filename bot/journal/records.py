"""Journal rows as typed records: the one place that knows each schema version's row shape and fills in what older ones lack."""
from __future__ import annotations

from typing import Any

from bot.events import PortfolioSnapshot, PositionState
from bot.trading.journalled import JournalledPosition, PendingOrder
from bot.trading.orders import Order


def position_record(row: dict[str, Any]) -> JournalledPosition:
    """A journalled open position (its state JSON plus the extra columns) as the record recovery restores from.

    Journals written before positions kept their own exit rules have no ladder_closes_all or
    break_even (the two came together): the record says so, and the strategy's current rules apply.
    """
    state = PositionState(
        row["position_id"], row["symbol"], row["side"], row["status"], row["initial_quantity"], row["quantity"],
        row["entry_price"], row["entry_ts"], row["stop_loss"],
        tuple((price, quantity, bool(done)) for price, quantity, done in row["take_profit"]),
        bool(row["trailing_active"]), row["trailing_distance_pct"], row.get("trailing_activation_price"), row["trailing_stop"],
        bool(row.get("ladder_closes_all", False)), bool(row.get("break_even", False)), row["realised"], row["fees"], row.get("group"),
    )
    return JournalledPosition(
        state, row.get("trail_anchor", 0.0), row.get("closed_quantity", 0.0), row.get("exit_value", 0.0),
        rules_kept="ladder_closes_all" in row,
    )


def pending_order_record(row: dict[str, Any], strategy_id: str) -> PendingOrder:
    """A journalled pending order (with its rung and, for an entry leg, its pair group); columns older schemas lacked are NULL."""
    order = Order(
        row["client_id"], strategy_id, row["symbol"], row["side"], row["quantity"], row["intent"], row["position_id"] or "",
        row["reason"], row["submitted_ts"], row["ref_price"], row.get("order_type") or "market", row.get("limit_price"),
        row.get("stop_price"), row.get("rung"),
    )
    return PendingOrder(order, row.get("pair_group") or None)


def portfolio_record(snapshot: dict[str, Any]) -> PortfolioSnapshot:
    """A journalled portfolio snapshot; older ones lack market_value, peak_equity and the drawdown."""
    equity = snapshot["equity"]
    return PortfolioSnapshot(
        snapshot["start"], snapshot["cash"], equity, snapshot["realised"], snapshot["unrealised"], snapshot["fees"],
        snapshot.get("market_value", equity - snapshot["cash"]), snapshot.get("peak_equity", max(snapshot["start"], equity)),
        snapshot.get("max_drawdown", 0.0), snapshot.get("max_drawdown_pct", 0.0),
    )
