"""Journal rows as typed records: the one place that knows each schema version's row shape and fills in what older ones lack.

JSON columns are decoded strictly by the event codec once an older shape is brought to the
current one; a row that still does not fit is a JournalError naming the journal file, the
table or meta key, and the field at fault.
"""
from __future__ import annotations

from typing import Any, Final, TypeVar

import msgspec
import orjson

from bot.event_codec import EventDecodeError, decode_record, encode_record, record_json
from bot.events import FillRecord, Frozen, PortfolioSnapshot, PositionState, TradeRecord
from bot.journal.schema import JournalError
from bot.trading.journalled import JournalledPosition, PendingOrder
from bot.trading.orders import Order
from bot.trading.risk import DailyTally

R = TypeVar("R")

# Position attributes that the journalled PositionState leaves out but recovery needs: open_positions adds
# them to each state dict (trail_anchor is 0.0 until trailing is activated, as on Position).
JOURNAL_EXTRAS: Final[tuple[str, ...]] = ("trail_anchor", "closed_quantity", "exit_value")
# PositionState fields older versions did not write, with what stands in for them: trailing_activation_price
# came first, ladder_closes_all and break_even together (positions keeping their own exit rules), group with pairs.
_OLDER_POSITION: Final[dict[str, Any]] = {"trailing_activation_price": None, "ladder_closes_all": False, "break_even": False, "group": None}


class StoredPosition(msgspec.Struct, frozen=True):
    """A positions row's state column: its PositionState, and the fields an older version did not write (placeholders here)."""

    state: PositionState
    lacks: frozenset[str] = frozenset()


class JournalledTrade(Frozen, frozen=True):
    """A trades row's record: the closed trade and its closing fill (None: journalled before fills were)."""

    __flat__ = frozenset({"trade"})
    trade: TradeRecord
    fill: FillRecord | None


class JournalledState(msgspec.Struct, frozen=True):
    """A strategy_states row: a strategy's last journalled lifecycle state."""

    state: str
    change: str | None
    policy: str | None
    last_error: str | None
    ts: int


class JournalledKillSwitch(Frozen, frozen=True):
    """The journalled kill switch: its event's payload (currency None: tripped before tallies were kept per currency)."""

    daily_loss: float
    limit: float
    currency: str | None
    tripped_by: str


class OlderDailyTally(Frozen, frozen=True):
    """A strategy's daily loss record as versions before per-currency tallies wrote it: one global figure for every
    currency beside the strategy's own (floats; no own figure for a strategy that was not tracked)."""

    global_day: float
    global_pnl: float
    day: float | None
    pnl: float | None


class JournalRecordError(JournalError):
    """A journal row or fact that does not fit its record: `where` names the file, table or meta key and row, `problem` the field."""

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}")


def decoded(cls: type[R], fields: Any, where: str) -> R:
    """The record of class `cls` a decoded JSON value holds, strictly; JournalRecordError naming `where` and the field otherwise."""
    try:
        record: R = decode_record(cls, fields)
    except EventDecodeError as exc:
        raise JournalRecordError(where, f"field {exc.path}: {exc.problem}" if exc.path else exc.problem) from None
    return record


def json_object(text: str | bytes, where: str) -> dict[str, Any]:
    """A JSON column's object; JournalRecordError naming `where` when it is not one."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise JournalRecordError(where, f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise JournalRecordError(where, f"not a JSON object: {str(text)[:80]!r}")
    return value


def stored_position(fields: dict[str, Any], where: str) -> StoredPosition:
    """A position's journalled state (the state column's object), an older version's placeholders filled in."""
    lacks = frozenset(name for name in _OLDER_POSITION if name not in fields)
    if lacks:
        fields = {**fields, **{name: _OLDER_POSITION[name] for name in lacks}}
    return StoredPosition(decoded(PositionState, fields, where), lacks)


def stored_position_text(stored: StoredPosition) -> str:
    """The state column of a stored position, written back in the shape it was read (an older one's placeholders left out)."""
    if not stored.lacks:
        return record_json(stored.state).decode()
    fields = encode_record(stored.state)
    for name in stored.lacks:
        del fields[name]
    return orjson.dumps(fields).decode()


def position_record(row: dict[str, Any], where: str = "a journalled position") -> JournalledPosition:
    """A journalled open position (its state JSON plus JOURNAL_EXTRAS) as the record recovery restores from.

    Journals written before positions kept their own exit rules have no ladder_closes_all or
    break_even (the two came together): the record says so, and the strategy's current rules apply.
    """
    stored = stored_position({key: value for key, value in row.items() if key not in JOURNAL_EXTRAS}, where)
    return JournalledPosition(
        stored.state, row.get("trail_anchor", 0.0), row.get("closed_quantity", 0.0), row.get("exit_value", 0.0),
        rules_kept="ladder_closes_all" not in stored.lacks,
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


def trade_record(text: str | bytes, where: str) -> JournalledTrade:
    """A trades row's record; one written before pairs has no group (None), one before fills were journalled no fill."""
    fields = json_object(text, where)
    fields.setdefault("group", None)
    fields.setdefault("fill", None)
    return decoded(JournalledTrade, fields, where)


def kill_switch_record(text: str | bytes, where: str) -> JournalledKillSwitch:
    """The journalled kill switch; one tripped before tallies were kept per currency names none (None)."""
    fields = json_object(text, where)
    fields.setdefault("currency", None)
    return decoded(JournalledKillSwitch, fields, where)


def strategy_tally_record(text: str, where: str) -> DailyTally | OlderDailyTally:
    """A strategy's journalled daily loss tally; one an older version wrote (a global figure, no currency) as OlderDailyTally."""
    fields = json_object(text, where)
    if "currency" not in fields and "global_pnl" in fields:
        fields.setdefault("day", None)
        fields.setdefault("pnl", None)
        return decoded(OlderDailyTally, fields, where)
    return _tally(fields, where)


def currency_tally_record(text: str, currency: str, where: str) -> DailyTally:
    """A currency's journalled global daily loss tally; the currency is the one its key names."""
    return _tally({**json_object(text, where), "currency": currency}, where)


def _tally(fields: dict[str, Any], where: str) -> DailyTally:
    tally = decoded(DailyTally, fields, where)
    # A float field reads an int as it is: the PnL is summed as a float from here on.
    return tally if type(tally.pnl) is float else msgspec.structs.replace(tally, pnl=float(tally.pnl))
