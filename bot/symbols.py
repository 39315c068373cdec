"""What a market symbol may look like: ccxt's unified form, bounded and printable."""
from __future__ import annotations

import re
from typing import Final

MAX_SYMBOL_LENGTH: Final[int] = 64
# ccxt unified symbols: BASE/QUOTE, or BASE/QUOTE:SETTLE for derivatives (a future's or an
# option's settle part carries its expiry, strike and type: BTC/USD:BTC-240927-60000-C).
_PART = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_SYMBOL: Final[re.Pattern[str]] = re.compile(rf"{_PART}/{_PART}(?::{_PART})?")


def symbol_problem(symbol: str) -> str | None:
    """Why `symbol` is not a usable market symbol, or None when it is one."""
    if len(symbol) > MAX_SYMBOL_LENGTH:
        return f"a symbol has at most {MAX_SYMBOL_LENGTH} characters (got {len(symbol):,})"
    if not _SYMBOL.fullmatch(symbol):
        return "not a market symbol: use ccxt's unified form BASE/QUOTE or BASE/QUOTE:SETTLE (letters, digits, '.', '_', '-')"
    return None


def shown(symbol: str, limit: int = 40) -> str:
    """A symbol safe to put in a log line or a reply: ASCII-escaped and cut to `limit` characters."""
    text = ascii(symbol)
    return text if len(text) <= limit else text[: limit - 3] + "..."
