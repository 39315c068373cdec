"""Configuration of the exchange connection (ccxt) and of the live candle feed."""
from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator

from bot.config.execution import ExecutionConfig
from bot.config.strict import Strict
from bot.ohlcv import timeframe_ms

_EXCHANGE_ID = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# How long a start waits for the exchange's markets before giving up (exchange.start_timeout_s).
DEFAULT_START_TIMEOUT_S = 60.0


class LiveFeedConfig(Strict):
    """How the ccxt candle feed backfills, streams, polls and decides a feed is stale."""

    timeframe: str = "1m"
    symbols: tuple[str, ...] = Field(default=(), description="unified symbols the daemon streams when feed.source is ccxt")
    mode: Literal["auto", "stream", "poll"] = Field(default="auto", description="auto: stream when the exchange has watchOHLCV, else poll")
    backfill: int = Field(default=1_000, ge=0, description="closed candles fetched over REST before the first live one")
    page_limit: int = Field(default=1_000, ge=1, le=5_000, description="candles asked for per fetch_ohlcv request")
    stale_margin_s: float = Field(default=30.0, gt=0, description="a feed with no candle for a timeframe plus this is stale")
    poll_interval_s: float | None = Field(default=None, gt=0, description="polling period (default: a tenth of the timeframe, 1-10 s)")
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=60.0, gt=0)
    rest_retries: int = Field(default=8, ge=0, description="retries of one REST request on network errors and rate limits")

    @field_validator("timeframe")
    @classmethod
    def _timeframe_known(cls, value: str) -> str:
        timeframe_ms(value)
        return value

    @field_validator("symbols")
    @classmethod
    def _symbols_distinct(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for symbol in value:
            if not symbol.strip() or symbol != symbol.strip():
                raise ValueError(f"{symbol!r} is not a symbol (unified form such as ETH/BTC)")
        repeated = sorted({s for s in value if value.count(s) > 1})
        if repeated:
            raise ValueError(f"listed more than once: {', '.join(repeated)}")
        return value


class ExchangeConfig(Strict):
    """A ccxt exchange: id, url and option overrides, sandbox, and the names of the variables holding its keys.

    Keys never appear in a config file: only the names of the environment variables to read.
    """

    id: str = Field(description="ccxt exchange id, such as binance")
    urls: dict[str, Any] = Field(default_factory=dict, description="deep-merged over ccxt's urls (testnets, proxies, a local fake)")
    options: dict[str, Any] = Field(default_factory=dict, description="deep-merged over ccxt's options, such as defaultType")
    sandbox: bool = Field(default=False, description="use the exchange's testnet (ccxt set_sandbox_mode)")
    enable_rate_limit: bool = True
    rate_limit_ms: float | None = Field(default=None, gt=0, description="override ccxt's delay between requests")
    timeout_ms: int = Field(default=10_000, ge=100)
    start_timeout_s: float = Field(
        default=DEFAULT_START_TIMEOUT_S, gt=0, le=86_400,
        description="how long a start (bot record, bot run) retries loading the markets while the exchange cannot be reached; "
        "then it ends with 'exchange unreachable' (exit code 2)",
    )
    api_key_env: str | None = None
    secret_env: str | None = None
    password_env: str | None = None
    feed: LiveFeedConfig = LiveFeedConfig()
    execution: ExecutionConfig = ExecutionConfig()

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        # Whether ccxt knows the id is checked when the exchange is built: importing ccxt here
        # would slow every command that only reads the config.
        if not _EXCHANGE_ID.match(value):
            raise ValueError("must be a ccxt exchange id: lower-case letters, digits and '_'")
        return value

    @field_validator("api_key_env", "secret_env", "password_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError("must be the name of an environment variable, not a key")
        return value
