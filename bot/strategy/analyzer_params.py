"""Parameter schemas of the built-in analyzers and filters, validated once at config load."""
from __future__ import annotations

from typing import Any, Final

from pydantic import Field, ValidationError, model_validator

from bot.config.numbers import StrictNumbers, Volume
from bot.ohlcv import timeframe_ms


class _Params(StrictNumbers):
    pass


class EmaCrossParams(_Params):
    """ema_cross: +1 when the fast EMA crosses above the slow one, -1 when it crosses below, else 0."""

    fast: int = Field(default=12, ge=1)
    slow: int = Field(default=26, ge=2)

    @model_validator(mode="after")
    def _fast_below_slow(self) -> EmaCrossParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be smaller than slow ({self.slow})")
        return self


class RsiParams(_Params):
    """rsi: +1 at or below oversold, -1 at or above overbought, linear through 0 at 50."""

    period: int = Field(default=14, ge=2)
    oversold: float = Field(default=30.0, gt=0, lt=50)
    overbought: float = Field(default=70.0, gt=50, lt=100)


class BollingerParams(_Params):
    """bollinger: +1 at or below the lower band, -1 at or above the upper band, 0 at the middle."""

    period: int = Field(default=20, ge=2)
    k: float = Field(default=2.0, gt=0)


class EmaTrendParams(_Params):
    """ema_trend: +1 while the close is above the EMA, -1 while below."""

    period: int = Field(default=50, ge=1)


class MtfTrendParams(_Params):
    """mtf_trend filter: allow long entries only while the higher timeframe closes above its EMA."""

    timeframe: str = "1h"
    period: int = Field(default=50, ge=1)

    @model_validator(mode="after")
    def _timeframe_known(self) -> MtfTrendParams:
        timeframe_ms(self.timeframe)
        return self


class MinVolumeParams(_Params):
    """min_volume filter: allow entries only when the candle's volume is at least min_volume."""

    min_volume: Volume


ANALYZER_PARAMS: Final[dict[str, type[_Params]]] = {
    "ema_cross": EmaCrossParams,
    "rsi": RsiParams,
    "bollinger": BollingerParams,
    "ema_trend": EmaTrendParams,
}

FILTER_PARAMS: Final[dict[str, type[_Params]]] = {
    "mtf_trend": MtfTrendParams,
    "min_volume": MinVolumeParams,
}


def _validate(kind: str, table: dict[str, type[_Params]], name: str, params: dict[str, Any]) -> _Params:
    model = table.get(name)
    if model is None:
        raise ValueError(f"unknown {kind} type {name!r} (known: {', '.join(sorted(table))})")
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        # Re-raised as a plain ValueError so the enclosing config model reports it at its own
        # location, with the parameter's name kept in the message.
        parts = []
        for err in exc.errors():
            field = ".".join(str(x) for x in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            parts.append(f"params.{field}: {msg}" if field else f"params: {msg}")
        raise ValueError(f"{kind} {name!r}: " + "; ".join(parts)) from None


def validate_analyzer_params(name: str, params: dict[str, Any]) -> _Params:
    """Validate and return the typed params of analyzer `name`."""
    return _validate("analyzer", ANALYZER_PARAMS, name, params)


def validate_filter_params(name: str, params: dict[str, Any]) -> _Params:
    """Validate and return the typed params of filter `name`."""
    return _validate("filter", FILTER_PARAMS, name, params)
