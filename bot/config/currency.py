"""The money a strategy counts in: its symbol's quote currency, and global limits written per currency.

Money is never added across currencies: a strategy's balance, PnL and exposure are in the quote
currency of its symbol, totals are grouped by it, and the global risk limits hold per currency.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Final

from bot.errors import ConfigProblem

# Per-currency global limits: a currency code such as USD, BTC or USDT.
CURRENCY_PATTERN: Final[re.Pattern[str]] = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
RISK_LIMITS: Final[tuple[str, ...]] = ("max_total_exposure", "max_daily_loss")

PerCurrency = Mapping[str, float | None]
Limit = float | PerCurrency | None
"""A global limit as written: none, one number (every strategy trades one currency), or one per currency."""


def quote_currency(symbol: str) -> str:
    """The currency a symbol's prices are in: QUOTE of BASE/QUOTE or BASE/QUOTE:SETTLE (the settle part is not the quote).

    A name that is not a ccxt unified symbol (no '/') counts as its own currency, so its money
    is never added to another symbol's.
    """
    base, slash, rest = symbol.partition("/")
    if not slash:
        return symbol
    return rest.partition(":")[0]


def limit_in(limit: Limit, currency: str) -> float | None:
    """The limit that holds in `currency`: the plain number, the currency's entry, or None for no limit."""
    if limit is None or isinstance(limit, float | int):
        return None if limit is None else float(limit)
    return limit.get(currency)


def limit_problem(name: str, limit: Limit, currency: str, currencies: Sequence[str]) -> str | None:
    """Why global limit `name` cannot hold for a strategy trading in `currency` beside strategies trading
    in `currencies` (which may include it), or None when it can."""
    if limit is None:
        return None
    if isinstance(limit, float | int):
        spanned = list(dict.fromkeys([*currencies, currency]))
        if len(spanned) < 2:
            return None
        example = ", ".join(f'"{c}": <amount>' for c in spanned)
        return (
            f"a plain number holds for one currency, but the strategies trade in {', '.join(spanned)}: "
            f"money is never added across currencies, so write the limit per currency: {{{example}}}"
        )
    if currency not in limit:
        return f'no limit for {currency}: add "{currency}": <amount> (or "{currency}": null for no limit in {currency})'
    return None


def risk_problems(limits: Mapping[str, Limit], label: str, strategies: Sequence[tuple[str, str, str]]) -> list[ConfigProblem]:
    """Problems of the global risk limits (name -> limit) for the strategies given as (id, symbol, file label)."""
    currencies = list(dict.fromkeys(quote_currency(symbol) for _, symbol, _ in strategies))
    problems: list[ConfigProblem] = []
    for name in RISK_LIMITS:
        limit = limits.get(name)
        if limit is None:
            continue
        if isinstance(limit, float | int):
            reason = limit_problem(name, limit, currencies[0], currencies) if currencies else None
            if reason is not None:
                problems.append(ConfigProblem(label, f"risk.{name}", reason))
            continue
        for currency in currencies:
            users = [f"{sid!r} ({symbol}, {file})" for sid, symbol, file in strategies if quote_currency(symbol) == currency]
            reason = limit_problem(name, limit, currency, currencies)
            if reason is not None:
                problems.append(ConfigProblem(label, f"risk.{name}", f"{reason}; strategies trading in {currency}: {', '.join(users)}"))
    return problems


def money_decimals(balance: float) -> int:
    """Decimals that show amounts of an account of this size to about a hundred-thousandth of it, at
    least 2: 2 for 10,000 USD, 4 for 10 BTC."""
    return max(2, 6 - len(f"{abs(balance):.0f}"))
