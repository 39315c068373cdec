"""The `Indicator` protocol and the parameter checks shared by every indicator."""
from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Protocol, runtime_checkable

from bot.ohlcv import Candle

# Indicators read their input as `candle[index]`: on a NamedTuple that is measurably faster
# than getattr(candle, name) on the replay hot path.
SOURCE_INDEX: Final[Mapping[str, int]] = MappingProxyType(
    {"open": 1, "high": 2, "low": 3, "close": 4, "volume": 5}
)
SOURCES: Final[tuple[str, ...]] = tuple(SOURCE_INDEX)


@runtime_checkable
class Indicator(Protocol):
    """An incremental indicator fed one closed candle at a time; `value` is None until warmed up."""

    value: float | None
    ready: bool

    def update(self, candle: Candle) -> None:
        """Consume the next closed candle."""
        ...

    def reset(self) -> None:
        """Return to the unwarmed state, as if freshly constructed."""
        ...


def check_period(owner: str, value: object, name: str = "period") -> int:
    """Return `value` if it is an int >= 1, else raise ValueError naming `owner` and `name`."""
    # bool is an int subclass, but period=True is always a mistake.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: parameter {name!r} must be an int >= 1 (got {value!r})")
    return value


def check_positive_float(owner: str, value: object, name: str) -> float:
    """Return `value` as a float if it is a finite number > 0, else raise ValueError."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{owner}: parameter {name!r} must be a finite number > 0 (got {value!r})")
    return float(value)


def check_source(owner: str, value: object) -> str:
    """Return `value` if it names a candle field usable as input, else raise ValueError."""
    if not isinstance(value, str) or value not in SOURCE_INDEX:
        raise ValueError(
            f"{owner}: parameter 'source' must be one of {', '.join(SOURCES)} (got {value!r})"
        )
    return value
