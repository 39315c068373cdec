"""The money a strategy counts in: its symbol's quote currency, and global limits written per currency.

Money is never added across currencies: a strategy's balance, PnL and exposure are in the quote
currency of its symbol, totals are grouped by it, and the global risk limits hold per currency.
Symbols not written BASE/QUOTE have no known quote: they all share one currency, UNQUOTED.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Final

from bot.errors import ConfigProblem

# Per-currency global limits: a currency code such as USD, BTC or USDT.
CURRENCY_PATTERN: Final[re.Pattern[str]] = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
RISK_LIMITS: Final[tuple[str, ...]] = ("max_total_exposure", "max_daily_loss")
# The currency of symbols not written BASE/QUOTE: no currency code matches it, so no limit object can name it.
UNQUOTED: Final[str] = ""

PerCurrency = Mapping[str, float | None]
Limit = float | PerCurrency | None
"""A global limit as written: none, one number (every strategy trades one currency), or one per currency."""


def quote_currency(symbol: str) -> str:
    """The currency a symbol's prices are in: QUOTE of BASE/QUOTE or BASE/QUOTE:SETTLE (the settle part is not the quote).

    A name that is not a ccxt unified symbol (no '/', such as BTCUSD) has no known quote: every
    such name counts in the one currency UNQUOTED, named after nothing, as all money did before
    limits were kept per currency, so a config of such names keeps its meaning (one plain
    number still limits them all together).
    """
    base, slash, rest = symbol.partition("/")
    if not slash:
        return UNQUOTED
    return rest.partition(":")[0]


def currency_name(currency: str) -> str:
    """A currency as a message names it: its code, or what UNQUOTED stands for."""
    return currency if currency != UNQUOTED else "no known currency (symbols not written BASE/QUOTE)"


def in_currency(amount: str, currency: str) -> str:
    """An amount followed by its currency code (UNQUOTED has none to show)."""
    return f"{amount} {currency}" if currency != UNQUOTED else amount


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
        named = [c for c in spanned if c != UNQUOTED]
        example = ", ".join(f'"{c}": <amount>' for c in named)
        if UNQUOTED in spanned:
            return (
                f"a plain number holds for one currency, but the strategies trade in {', '.join(named)} and in "
                f"{currency_name(UNQUOTED)}: money is never added across currencies, so write every symbol as "
                f"BASE/QUOTE, then the limit per currency: {{{example}, ...}}"
            )
        return (
            f"a plain number holds for one currency, but the strategies trade in {', '.join(spanned)}: "
            f"money is never added across currencies, so write the limit per currency: {{{example}}}"
        )
    if currency == UNQUOTED:
        return (
            "a limit per currency cannot name the currency of a symbol not written BASE/QUOTE: write the symbol as "
            "BASE/QUOTE (or give a plain number, which holds while every strategy's symbol is written without '/')"
        )
    if currency not in limit:
        problem = f'no limit for {currency}: add "{currency}": <amount> (or "{currency}": null for no limit in {currency})'
        near = [key for key in limit if key.upper() == currency.upper()]
        if near:
            problem += f'; currency codes are case-sensitive, as the symbols write them (USD, BTC): "{near[0]}" is not "{currency}"'
        return problem
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
                which = f"trading in {currency}" if currency != UNQUOTED else "on such symbols"
                problems.append(ConfigProblem(label, f"risk.{name}", f"{reason}; strategies {which}: {', '.join(users)}"))
    return problems


def money_decimals(balance: float) -> int:
    """Decimals that show amounts of an account of this size to about a hundred-thousandth of it, at
    least 2: 2 for 10,000 USD, 4 for 10 BTC."""
    return max(2, 6 - len(f"{abs(balance):.0f}"))
