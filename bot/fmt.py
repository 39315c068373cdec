"""Numbers and times for people: UTC ISO-8601 times, prices and quantities without float noise, key=value fields.

Only for what a person reads (log lines, `bot ctl events`, tables). Machine files (trades.csv,
equity.csv, report.json, events.jsonl) keep every digit and never go through here.
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import orjson

# Significant digits of a price or quantity: a BTC pair's 0.02845046 and a dollar price's
# 47479.011 both keep what the market quotes, and 47479.01099999999 loses its float noise.
SIGNIFICANT: Final[int] = 8
# Below this a value is float noise (a pnl of 1e-17 after fees cancel out): shown as 0.
_SMALLEST: Final[float] = 0.5e-12
# Field names (or name endings) whose integers are epoch milliseconds.
TIME_FIELDS: Final[frozenset[str]] = frozenset({"ts", "after", "next", "until", "since", "last_close"})
_TIME_SUFFIX: Final[str] = "_ts"
# Candles travel as [ts, open, high, low, close, volume] arrays.
_CANDLE_FIELDS: Final[tuple[str, ...]] = ("ts", "open", "high", "low", "close", "volume")
# A value written without quotes: no space, quote, equals sign or control character.
_BARE: Final[re.Pattern[str]] = re.compile(r"[^\s\"'=\\\x00-\x1f\x7f]+")


def format_time(ms: int) -> str:
    """UTC ISO-8601 of epoch milliseconds: `2022-01-04 12:30Z`, with seconds and milliseconds only when not zero.

    An integer no date can hold (past the year 9999, or beyond the platform's time_t) is shown
    as the integer itself: a time-named field may carry any number, and its line must not be lost.
    """
    try:
        moment = datetime.fromtimestamp(ms // 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return str(ms)
    text = moment.strftime("%Y-%m-%d %H:%M")
    millis = ms % 1000
    if moment.second or millis:
        text += f":{moment.second:02d}"
    if millis:
        text += f".{millis:03d}"
    return text + "Z"


def format_number(value: float, significant: int = SIGNIFICANT, group: bool = False) -> str:
    """`value` rounded to `significant` digits, in plain decimals (never an exponent), trailing zeros dropped.

    47479.01099999999 is 47479.011, 0.0123 stays 0.0123, -4.849783e-05 is -0.00004849783;
    `group` separates thousands (47,479.011).
    """
    if isinstance(value, bool) or not math.isfinite(value):
        return str(value)
    if abs(value) < _SMALLEST:
        return "0"
    text = format(Decimal(f"{value:.{significant}g}"), ",f" if group else "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def format_price(price: float, group: bool = False) -> str:
    """A price as a person reads it (significant digits, never an exponent; the market's own precision is not known offline).

    `group` separates thousands (38,525.5), for tables.
    """
    return format_number(price, group=group)


def format_qty(quantity: float) -> str:
    """A quantity (base units) as a person reads it: 0.0123 BTC is never 0.01."""
    return format_number(quantity)


def format_fields(fields: Mapping[str, Any]) -> str:
    """`key=value` pairs of a payload: nested mappings as dotted keys, times in UTC, numbers without float noise."""
    return " ".join(f"{key}={value}" for key, value in _pairs(fields, ""))


def format_value(key: str, value: Any) -> str:
    """One field's value as `format_fields` writes it (quoted when it holds a space, a quote or an equals sign)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return _quoted(format_time(value)) if _is_time(key) and value >= 0 else str(value)
    if isinstance(value, float):
        return format_number(value)
    if isinstance(value, (list, tuple)):
        return _json(value)
    return _quoted(str(value))


def _json(value: Any) -> str:
    """A list (or a mapping inside one) as compact JSON: numbers without float noise, anything else as its text.

    Never a Python repr: a list of sources reads `[{"symbol":"BTC/USD","file":"x.csv"}]`.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_number(value)
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{_json_string(str(key))}:{_json(item)}" for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_json(item) for item in value) + "]"
    return _json_string(str(value))


def _json_string(text: str) -> str:
    # orjson escapes quotes, backslashes and control characters: the value stays on its line.
    return orjson.dumps(text).decode()


def _pairs(fields: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, str]]:
    for key, value in fields.items():
        name = f"{prefix}{key}"
        if key == "candle" and isinstance(value, (list, tuple)) and len(value) == len(_CANDLE_FIELDS):
            value = dict(zip(_CANDLE_FIELDS, value))
        if isinstance(value, Mapping):
            yield from _pairs(value, name + ".")
        else:
            yield name, format_value(str(key), value)


def _is_time(key: str) -> bool:
    return key in TIME_FIELDS or key.endswith(_TIME_SUFFIX)


def _quoted(text: str) -> str:
    # JSON quoting escapes quotes, backslashes and control characters: one field stays one field.
    return text if _BARE.fullmatch(text) else orjson.dumps(text).decode()


def format_path(path: Path, base: Path | None = None) -> str:
    """`path` relative to `base` (default: the working folder) when it lies inside it, else absolute."""
    absolute = Path(os.path.abspath(path))
    try:
        return str(absolute.relative_to(base if base is not None else Path.cwd()))
    except ValueError:
        return str(absolute)
