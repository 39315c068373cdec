"""Per-timeframe registry that creates each indicator a strategy needs once and shares it."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final, Literal, NamedTuple, overload

from bot.indicators.averages import EMA, SMA
from bot.indicators.bands import BollingerBands, Donchian
from bot.indicators.base import Indicator, check_period, check_positive_float, check_source
from bot.indicators.momentum import ROC, RSI
from bot.indicators.trend import ADX
from bot.indicators.volatility import ATR
from bot.ohlcv import Candle

ParamValue = float | int | str

_REQUIRED: Final = object()  # sentinel default: the parameter has no default


class _Param(NamedTuple):
    name: str
    check: Callable[[str, object, str], ParamValue]
    default: object


class _Spec(NamedTuple):
    factory: Callable[..., Indicator]
    params: tuple[_Param, ...]
    # The attributes an instance gives its values in: `value`, and the other lines of one that draws several.
    outputs: tuple[str, ...] = ("value",)


def _source(owner: str, value: object, name: str) -> str:
    return check_source(owner, value)


_period = check_period
_positive = check_positive_float


# Parameter order here is the order of the constructor and of the readable key.
_SPECS: Final[Mapping[str, _Spec]] = MappingProxyType({
    "sma": _Spec(SMA, (_Param("period", _period, _REQUIRED), _Param("source", _source, "close"))),
    "ema": _Spec(EMA, (_Param("period", _period, _REQUIRED), _Param("source", _source, "close"))),
    "rsi": _Spec(RSI, (_Param("period", _period, 14), _Param("source", _source, "close"))),
    "atr": _Spec(ATR, (_Param("period", _period, 14),)),
    "bollinger": _Spec(
        BollingerBands,
        (_Param("period", _period, 20), _Param("k", _positive, 2.0), _Param("source", _source, "close")),
        ("value", "upper", "lower"),
    ),
    "roc": _Spec(ROC, (_Param("period", _period, 10), _Param("source", _source, "close"))),
    "donchian": _Spec(Donchian, (_Param("period", _period, 20),), ("value", "upper", "lower")),
    "adx": _Spec(ADX, (_Param("period", _period, 14),), ("value", "plus_di", "minus_di")),
})

INDICATOR_NAMES: Final[tuple[str, ...]] = tuple(_SPECS)


class IndicatorRegistry:
    """Creates only the indicators its strategy uses, shared between its analyzers.

    One registry per orchestrator and timeframe; it holds all its state on the instance, so two
    registries never share an indicator. Asking twice for the same name and parameters (defaults
    filled in, ``k=2`` same as ``k=2.0``) returns the same instance. Indicators required after
    candles have started flowing start unwarmed.
    """

    __slots__ = ("_by_key", "_requests", "_updates")

    _by_key: dict[str, Indicator]
    _requests: dict[str, tuple[str, dict[str, ParamValue]]]
    _updates: list[Callable[[Candle], None]]

    def __init__(self) -> None:
        self._by_key = {}
        # What each key was made from (name, checked parameters), so `fresh` can make it again.
        self._requests = {}
        # Bound methods kept aside so update() is one tight loop of calls.
        self._updates = []

    @overload
    def require(self, name: Literal["sma"], **params: ParamValue) -> SMA: ...
    @overload
    def require(self, name: Literal["ema"], **params: ParamValue) -> EMA: ...
    @overload
    def require(self, name: Literal["rsi"], **params: ParamValue) -> RSI: ...
    @overload
    def require(self, name: Literal["atr"], **params: ParamValue) -> ATR: ...
    @overload
    def require(self, name: Literal["bollinger"], **params: ParamValue) -> BollingerBands: ...
    @overload
    def require(self, name: Literal["roc"], **params: ParamValue) -> ROC: ...
    @overload
    def require(self, name: Literal["donchian"], **params: ParamValue) -> Donchian: ...
    @overload
    def require(self, name: Literal["adx"], **params: ParamValue) -> ADX: ...
    @overload
    def require(self, name: str, **params: ParamValue) -> Indicator: ...

    def require(self, name: str, **params: ParamValue) -> Indicator:
        """Return the shared indicator `name` with `params`, creating it on first request.

        Raises ValueError naming the indicator and the parameter for an unknown name, an unknown
        or missing parameter, or a bad value.
        """
        spec = _SPECS.get(name)
        if spec is None:
            raise ValueError(f"unknown indicator {name!r} (known: {', '.join(INDICATOR_NAMES)})")
        known = {p.name for p in spec.params}
        for key in params:
            if key not in known:
                raise ValueError(
                    f"{name}: unknown parameter {key!r} (known: {', '.join(p.name for p in spec.params)})"
                )
        values: dict[str, ParamValue] = {}
        for p in spec.params:
            if p.name in params:
                raw: object = params[p.name]
            elif p.default is _REQUIRED:
                raise ValueError(f"{name}: parameter {p.name!r} is required")
            else:
                raw = p.default
            values[p.name] = p.check(name, raw, p.name)
        key = name + "(" + ",".join(f"{k}={v}" for k, v in values.items()) + ")"
        indicator = self._by_key.get(key)
        if indicator is None:
            indicator = spec.factory(**values)
            self._by_key[key] = indicator
            self._requests[key] = (name, values)
            self._updates.append(indicator.update)
        return indicator

    def update(self, candle: Candle) -> None:
        """Feed `candle` to every registered indicator once, in creation order."""
        for update in self._updates:
            update(candle)

    def reset(self) -> None:
        """Return every registered indicator to its unwarmed state (they stay registered)."""
        for indicator in self._by_key.values():
            indicator.reset()

    def clear(self) -> None:
        """Drop every registered indicator."""
        self._by_key.clear()
        self._requests.clear()
        self._updates.clear()

    def fresh(self) -> IndicatorRegistry:
        """A new registry with the same indicators, unwarmed, in the same order (to compute them again over other candles)."""
        copy = IndicatorRegistry()
        for name, values in self._requests.values():
            copy.require(name, **values)
        return copy

    def items(self) -> list[tuple[str, str, Indicator, tuple[str, ...]]]:
        """(key, indicator name, indicator, the attributes holding its values) of each registered indicator, in creation order."""
        return [(key, self._requests[key][0], indicator, _SPECS[self._requests[key][0]].outputs) for key, indicator in self._by_key.items()]

    def ready(self) -> bool:
        """True when every registered indicator has warmed up."""
        return all(indicator.ready for indicator in self._by_key.values())

    def keys(self) -> list[str]:
        """Readable keys of the registered indicators in creation order, e.g. 'ema(period=12,source=close)'."""
        return list(self._by_key)

    def __len__(self) -> int:
        return len(self._by_key)

    def __repr__(self) -> str:
        return f"IndicatorRegistry({self.keys()!r})"
