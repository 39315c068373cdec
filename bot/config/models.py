"""Frozen, strict configuration models; unknown fields are rejected everywhere."""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from bot.config.cluster import ClusterConfig
from bot.config.currency import CURRENCY_PATTERN
from bot.config.defaults import DEFAULT_CONTROL_SOCKET
from bot.config.exchange import ExchangeConfig
from bot.config.http import HttpConfig
from bot.config.numbers import Amount, number_problems
from bot.config.strict import Strict
from bot.ohlcv import timeframe_ms

_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _check_timeframe(value: str) -> str:
    timeframe_ms(value)
    return value


Timeframe = Annotated[str, Field(description="candle timeframe such as 1m, 5m, 1h, 1d")]
Bps = Annotated[float, Field(ge=0, le=10_000)]


class FeesConfig(Strict):
    """Fees per fill in basis points: maker for take-profit (limit) fills, taker for the rest."""

    maker_bps: Bps = 0.0
    taker_bps: Bps = 0.0


class FillConfig(Strict):
    """How the paper exchange fills market orders decided on a candle's close."""

    model: Literal["next_open", "close"] = "next_open"
    slippage_bps: Bps = 0.0


class StrategyRiskConfig(Strict):
    """Per-strategy risk limits; None disables a limit."""

    max_open_positions: int = Field(default=1, ge=1)
    max_position_size: Amount | None = Field(default=None, description="max quantity of one position")
    max_daily_loss: Amount | None = Field(default=None, description="quote currency, net of fees, per UTC day")


_ONE_LIMIT = TypeAdapter(Amount)
_LIMIT_PER_CURRENCY = TypeAdapter(dict[str, Amount | None])


class GlobalRiskConfig(Strict):
    """Limits across all strategies, each in one quote currency; a daily loss limit trips the kill switch.

    A limit is one number (valid while every strategy trades in one quote currency) or an object
    keyed by currency, such as {"USD": 1500, "BTC": 0.05} (null: no limit in that currency).
    """

    max_total_exposure: float | dict[str, float | None] | None = Field(
        default=None, description="open notional of the strategies trading in a currency: a number, or an object keyed by currency"
    )
    max_daily_loss: float | dict[str, float | None] | None = Field(
        default=None, description="net of fees, per UTC day, of the strategies trading in a currency: a number, or an object keyed by currency"
    )

    @field_validator("max_total_exposure", "max_daily_loss", mode="before")
    @classmethod
    def _number_or_per_currency(cls, value: Any) -> Any:
        # Validated here, arm by arm: a union would let a quoted number through its object arm.
        if value is None:
            return None
        if isinstance(value, dict):
            found = number_problems(dict[str, Amount | None], value) + [
                ((key,), "not a currency code: letters, digits, '.', '_' or '-', such as USD or BTC (at most 32 characters)", key)
                for key in value
                if not isinstance(key, str) or not CURRENCY_PATTERN.fullmatch(key)
            ]
            if found:
                raise ValidationError.from_exception_data(
                    cls.__name__, [InitErrorDetails(type=PydanticCustomError("risk_limit", r), loc=loc, input=i) for loc, r, i in found]
                )
            return _LIMIT_PER_CURRENCY.validate_python(value)
        problem = number_problems(float, value)
        if problem:
            raise PydanticCustomError("number_type", problem[0][1])
        if not isinstance(value, float | int):
            raise PydanticCustomError(
                "limit_type", 'a number, or an object with one amount per quote currency such as {"USD": 1500, "BTC": 0.05}'
            )
        return _ONE_LIMIT.validate_python(value)


@dataclass(frozen=True, slots=True)
class ParamsChecks:
    """The checks of built-in analyzers' and filters' params, whose schemas live with their code in the strategy layer.

    Given as pydantic's validation context (`StrategyConfig.model_validate(data, context=checks)`);
    each raises ValueError naming the type and the parameter. Without it a model's params are
    checked when its strategy is built.
    """

    analyzer: Callable[[str, dict[str, Any]], object]
    filter: Callable[[str, dict[str, Any]], object]


class AnalyzerConfig(Strict):
    """One weighted analyzer of a strategy; its params are validated against the analyzer's schema (see ParamsChecks)."""

    type: str
    weight: float = Field(default=1.0, gt=0)
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _params_fit_type(self, info: ValidationInfo) -> AnalyzerConfig:
        if isinstance(info.context, ParamsChecks):
            info.context.analyzer(self.type, self.params)
        return self


class FilterConfig(Strict):
    """One entry filter, such as the multi-timeframe trend gate; its params are validated as an analyzer's are."""

    type: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _params_fit_type(self, info: ValidationInfo) -> FilterConfig:
        if isinstance(info.context, ParamsChecks):
            info.context.filter(self.type, self.params)
        return self


class TakeProfitStep(Strict):
    """One rung of the take-profit ladder: at +pct from entry, close close_pct of the initial size."""

    pct: float = Field(gt=0, description="distance from entry, percent")
    close_pct: float = Field(gt=0, le=100, description="percent of the initial quantity to close")


class TrailingConfig(Strict):
    """Trailing stop: activates once price is activation_pct above entry, trails distance_pct below the high."""

    activation_pct: float = Field(default=0.0, ge=0)
    distance_pct: float = Field(gt=0, lt=100)


class ExitConfig(Strict):
    """Exit rules applied to every position of the strategy."""

    stop_loss_pct: float | None = Field(default=None, gt=0, lt=100)
    take_profit: tuple[TakeProfitStep, ...] = ()
    trailing: TrailingConfig | None = None
    break_even_after_first_take_profit: bool = False

    @field_validator("take_profit")
    @classmethod
    def _ladder_ascending(cls, steps: tuple[TakeProfitStep, ...]) -> tuple[TakeProfitStep, ...]:
        pcts = [step.pct for step in steps]
        if pcts != sorted(pcts) or len(set(pcts)) != len(pcts):
            raise ValueError("take_profit steps must have strictly ascending pct")
        if sum(step.close_pct for step in steps) > 100 + 1e-9:
            raise ValueError("take_profit close_pct values add up to more than 100")
        return steps


# `module` values meaning the built-in declarative strategy (omitted, or named as the catalog lists it).
_DECLARATIVE_MODULES: tuple[str | None, ...] = (None, "builtin")


class StrategyConfig(Strict):
    """A strategy's full, merged configuration (built-in defaults < config.json < strategy file)."""

    model_config = ConfigDict(populate_by_name=True)

    id: str
    enabled: bool = True
    description: str = ""
    module: str | None = Field(default=None, description="strategy module (file stem) found by discovery; omit for the declarative strategy")
    class_name: str | None = Field(default=None, alias="class", description="strategy class in the module, when it has several")
    params: dict[str, Any] = Field(default_factory=dict, description="the strategy's parameters, validated by its Params model")
    symbol: str = Field(min_length=1)
    timeframe: Timeframe = "1m"
    quantity: Amount = Field(description="fixed order quantity in base units")
    starting_balance: Amount = Field(default=10_000.0, description="quote currency the strategy starts with")
    analyzers: tuple[AnalyzerConfig, ...] = Field(default=(), validate_default=True)
    entry_threshold: float = Field(default=1.0, gt=0, le=1)
    exit_threshold: float | None = Field(default=1.0, gt=0, le=1, description="exit when score <= -exit_threshold")
    filters: tuple[FilterConfig, ...] = ()
    exits: ExitConfig = ExitConfig()
    fees: FeesConfig = FeesConfig()
    fill: FillConfig = FillConfig()
    risk: StrategyRiskConfig = StrategyRiskConfig()

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not _ID_PATTERN.match(value):
            raise ValueError("id must be 1-64 characters of letters, digits, '_', '.', '-', starting with a letter or digit")
        return value

    @field_validator("timeframe")
    @classmethod
    def _timeframe_known(cls, value: str) -> str:
        return _check_timeframe(value)

    @field_validator("analyzers", mode="after", check_fields=True)
    @classmethod
    def _analyzers_fit_kind(cls, value: tuple[AnalyzerConfig, ...], info: ValidationInfo) -> tuple[AnalyzerConfig, ...]:
        module = info.data.get("module")
        if module in _DECLARATIVE_MODULES and not value:
            raise ValueError("the declarative strategy needs at least one analyzer (or name a strategy module)")
        if module not in _DECLARATIVE_MODULES and value:
            raise ValueError(f"only the declarative strategy reads analyzers; module {module!r} takes params")
        return value

    @field_validator("filters", "entry_threshold", "exit_threshold", mode="after")
    @classmethod
    def _declarative_only(cls, value: Any, info: ValidationInfo) -> Any:
        module = info.data.get("module")
        if module not in _DECLARATIVE_MODULES:
            raise ValueError(f"only the declarative strategy reads {info.field_name}; module {module!r} takes params")
        return value

    @field_validator("params", mode="after")
    @classmethod
    def _params_need_module(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if value and info.data.get("module") in _DECLARATIVE_MODULES:
            raise ValueError("params are for strategy modules; the declarative strategy takes analyzers, filters and thresholds")
        return value


# Fields a running strategy can take a new value for without losing positions or indicator
# state (reload, set). New exits, fees and fill settings apply to orders and positions opened
# from then on; open positions keep the levels they were opened with.
RUNTIME_FIELDS: frozenset[str] = frozenset(
    {"description", "enabled", "quantity", "entry_threshold", "exit_threshold", "exits", "fees", "fill", "risk"}
)


class CandleSourceConfig(Strict):
    """A recorded candle file for one symbol; the timeframe is inferred from the file when omitted."""

    path: str
    timeframe: str | None = None
    shift_days: int = Field(
        default=0, ge=-36_500, le=36_500, description="move the recording in time by whole days, so files of different years play side by side"
    )
    latest_ts_ms: int | None = Field(
        default=None,
        ge=0,
        le=253_402_300_799_999,
        description="latest candle open time accepted (UTC epoch ms, after shift_days); default now + one timeframe",
    )
    close_jump_factor: float = Field(
        default=10.0, gt=1, le=1e6, description="bot validate warns about a close more than this factor above or below the previous close"
    )

    @field_validator("timeframe")
    @classmethod
    def _timeframe_known(cls, value: str | None) -> str | None:
        return None if value is None else _check_timeframe(value)


class StrategyRef(Strict):
    """A strategy file named by config.json, relative to config.json's folder."""

    file: str
    enabled: bool = True


class ReplayConfig(Strict):
    """Settings of `bot replay`."""

    candles: dict[str, CandleSourceConfig] = Field(default_factory=dict)
    history_size: int = Field(default=1_000, ge=1, le=1_000_000, description="candles kept per symbol and timeframe")
    log_candles: bool = Field(default=True, description="write market candle events to events.jsonl")


class FeedConfig(Strict):
    """The daemon's candle feed: recorded candles published clock-driven, or live candles from the exchange.

    With `source` ccxt the exchange section is required and its `feed` says what to stream
    (symbols, timeframe, backfill); speed, loop and backfill here are for recorded candles only.
    """

    source: Literal["recorded", "ccxt"] = Field(default="recorded", description="ccxt: live candles of exchange.feed.symbols from the exchange section")
    speed: float = Field(default=60.0, gt=0, le=1_000_000, description="multiple of real time")
    loop: bool = Field(default=False, description="start the recording again, shifted in time, when it ends")
    backfill: int = Field(default=3_000, ge=0, description="candles published at once before trading starts (warm-up)")


class TcpControlConfig(Strict):
    """Optional TCP control listener: loopback only, token required."""

    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65_535)
    token_env: str = Field(default="BOT_CONTROL_TOKEN", min_length=1, description="environment variable holding the token")

    @field_validator("host")
    @classmethod
    def _loopback_only(cls, value: str) -> str:
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            if value != "localhost":
                raise ValueError(f"{value!r} is not a loopback address (use 127.0.0.1, ::1 or localhost)") from None
            return value
        if not address.is_loopback:
            raise ValueError(f"{value} is not a loopback address: the control port never listens on a network")
        return value


class ControlConfig(Strict):
    """The control socket: a Unix socket (mode 0600), optionally also loopback TCP with a token."""

    socket: str = DEFAULT_CONTROL_SOCKET
    tcp: TcpControlConfig | None = None
    max_message_bytes: int = Field(default=65_536, ge=1_024, le=16 * 1024 * 1024)
    event_buffer: int = Field(default=10_000, ge=10, description="events buffered per `events` reader before it is dropped")
    allowed_paths: tuple[str, ...] = Field(
        default=(),
        max_length=64,
        description="folders (relative to config.json's) whose files control clients may name, besides config.json's folder and strategy_paths",
    )


class DaemonConfig(Strict):
    """Settings of `bot run`."""

    inbox_size: int = Field(default=1_000, ge=1, description="candles queued per strategy before coalescing")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class JournalConfig(Strict):
    """The SQLite journal of the daemon."""

    path: str = "run/journal.sqlite"


class BotConfig(Strict):
    """The base configuration from config.json."""

    mode: Literal["replay", "paper", "live"] = Field(
        default="replay", description="paper: orders filled by the bot's paper exchange; live: sent to the exchange section's account"
    )
    replay: ReplayConfig = ReplayConfig()
    feed: FeedConfig = FeedConfig()
    exchange: ExchangeConfig | None = Field(default=None, description="the ccxt exchange: live candles, recording")
    control: ControlConfig = ControlConfig()
    daemon: DaemonConfig = DaemonConfig()
    journal: JournalConfig = JournalConfig()
    risk: GlobalRiskConfig = GlobalRiskConfig()
    cluster: ClusterConfig | None = Field(
        default=None, description="run strategies on worker processes through this NATS JetStream server (without it: all in one process)"
    )
    http: HttpConfig | None = Field(default=None, description="the daemon's HTTP API, web view and /metrics (off without it)")
    strategy_defaults: dict[str, Any] = Field(default_factory=dict)
    strategy_paths: tuple[str, ...] = Field(default=(), description="extra folders searched for strategy modules, besides strategies/")
    strategies: tuple[StrategyRef, ...] = ()
