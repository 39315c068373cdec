"""Configuration of live order execution through ccxt (mode "live")."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from bot.config.strict import Strict


class ExecutionConfig(Strict):
    """How the live gateway sends, retries, tracks and looks up orders on the exchange."""

    poll_interval_s: float = Field(default=1.0, gt=0, le=60, description="how often resting orders are checked for fills")
    send_retries: int = Field(default=3, ge=0, le=20, description="resends of an order that never reached the exchange (same client id)")
    lookup_delay_s: float = Field(
        default=1.0, ge=0, le=30, description="wait after a network error before asking the exchange whether the order arrived"
    )
    request_window_s: float = Field(
        default=11.0, ge=0, le=120,
        description="after a failed send, how long the request could still execute (Binance: ccxt's 10 s recvWindow): "
        "an order not found is resent only after it",
    )
    stop_poll_interval_s: float = Field(
        default=10.0, gt=0, le=300,
        description="how often a stop resting on the exchange is checked (at once when the feed shows it crossed): "
        "each check costs request weight",
    )
    retry_min_s: float = Field(default=0.5, gt=0)
    retry_max_s: float = Field(default=10.0, gt=0)
    stops: Literal["exchange", "local"] = Field(
        default="exchange",
        description="exchange: each position's stop-loss (or trailing stop) rests on the exchange as a stop-market order, "
        "moved as the stop moves, so it fires while the bot is down; markets without stop-market orders fall back to local. "
        "local: the bot enforces stops from the feed and sends them at market. Take-profits are always enforced by the bot",
    )
    client_id_max_length: int = Field(
        default=36, ge=8, le=64, description="the exchange's limit on client order ids (Binance: 36); strategy ids must fit"
    )
