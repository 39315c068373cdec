"""The immutable event envelope and the catalogue of event types with their scope."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

# Event types that describe something a strategy did or had done to it. The bus refuses
# these without a strategy id, so no code path can emit an untagged strategy event.
STRATEGY_EVENTS: Final[frozenset[str]] = frozenset(
    {
        "strategy_state",  # loaded / active / dormant / failed / unloaded
        "strategy_error",  # an exception in the strategy's code, with the error text
        "signal",  # an entry or exit decision with its score
        "order_submitted",
        "order_filled",
        "order_cancelled",
        "order_rejected",  # the exchange refused an order: kind (insufficient_funds, ...) and its reason
        "reconcile_difference",  # the exchange disagreed with the journal at start-up, and what was done
        "position_opened",
        "position_reduced",  # a partial close (take-profit step or close-percent action)
        "position_closed",
        "stop_updated",
        "trailing_activated",
        "risk_rejected",
        "action_failed",
    }
)

# Market-wide event types: they carry no strategy id.
MARKET_EVENTS: Final[frozenset[str]] = frozenset(
    {
        "candle",  # a candle closed (symbol, timeframe)
        "candle_gap",  # missing candles detected in a feed
        "feed_state",
        "reconciled",  # start-up reconciliation with the exchange finished: counts of what differed
        "exchange_difference",  # an exchange balance or order no strategy accounts for
        "kill_switch",  # the global daily loss limit tripped: no new entries anywhere
        "replay_started",
        "replay_finished",
    }
)

EVENT_TYPES: Final[frozenset[str]] = STRATEGY_EVENTS | MARKET_EVENTS


@dataclass(frozen=True, slots=True)
class Event:
    """One immutable bus event: type, strategy id (None for market events), event time, seq, payload.

    The payload dict is shared by every subscriber and the event log: subscribers must treat it
    as read-only (it is not copied per subscriber, to keep publishing cheap).
    """

    type: str
    strategy_id: str | None
    ts: int
    seq: int
    payload: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """Return the event as a plain dict in its stable serialised key order."""
        return {
            "seq": self.seq,
            "ts": self.ts,
            "type": self.type,
            "strategy_id": self.strategy_id,
            "payload": self.payload,
        }
