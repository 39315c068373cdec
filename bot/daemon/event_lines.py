"""One log line per event of interest, with the strategy id, for the daemon's stderr."""
from __future__ import annotations

import logging

from bot.events import Event

LOGGED_EVENTS = (
    "strategy_state",
    "strategy_error",
    "position_opened",
    "position_reduced",
    "position_closed",
    "risk_rejected",
    "action_failed",
    "kill_switch",
    "feed_state",
    "candle_gap",
)


class EventLines:
    """A bus subscriber that logs the events an operator wants to see scroll by."""

    def __init__(self, logger: logging.Logger) -> None:
        self._log = logger

    def __call__(self, event: Event) -> None:
        """Log one event."""
        p = event.payload
        who = f"[{event.strategy_id}] " if event.strategy_id else ""
        if event.type == "strategy_state":
            text = f"{p['change']} -> {p['state']}" + (f" ({p['policy']})" if p.get("policy") else "") + (f": {p['error']}" if p.get("error") else "")
        elif event.type == "position_opened":
            text = f"opened {p['side']} {p['quantity']} {p['symbol']} @ {p['entry_price']} (stop {p['stop_loss']})"
        elif event.type == "position_reduced":
            text = f"reduced {p['position_id']} by {p['closed_quantity']} @ {p['price']} ({p['reason']})"
        elif event.type == "position_closed":
            text = f"closed {p['position_id']} @ {p['exit_price']:.8g} ({p['exit_reason']}), pnl {p['pnl']:.8g}"
        elif event.type == "risk_rejected":
            text = f"entry refused by {p['rule']}: {p['reason']}"
        elif event.type == "strategy_error":
            text = f"error: {p['error']} ({p['note']})"
        else:
            text = f"{event.type} {p}"
        level = logging.WARNING if event.type in ("strategy_error", "kill_switch", "risk_rejected", "candle_gap") else logging.INFO
        self._log.log(level, "%s%s", who, text)
