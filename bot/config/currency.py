"""The money a strategy counts in: its symbol's currency group, and global limits written per group.

Money is never added across currencies: a strategy's balance, PnL and exposure are in the quote
currency of its symbol, totals are grouped by it, and the global risk limits hold per currency.
A symbol not written BASE/QUOTE (BTCUSD) has no known quote currency, so its money is added to
no other symbol's: it is a currency group of its own, named after the symbol.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Final

from bot.errors import ConfigProblem

# Per-currency global limits: a currency code such as USD, BTC or USDT (or a symbol not written BASE/QUOTE, such as BTCUSD).
CURRENCY_PATTERN: Final[re.Pattern[str]] = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
RISK_LIMITS: Final[tuple[str, ...]] = ("max_total_exposure", "max_daily_loss")

PerCurrency = Mapping[str, float | None]
Limit = float | PerCurrency | None
"""A global limit as written: none, one number (every strategy trades in one currency group), or one per group."""


def quote_known(symbol: str) -> bool:
    """Whether a symbol is written BASE/QUOTE (or BASE/QUOTE:SETTLE), so its quote currency is known."""
    return "/" in symbol


def quote_currency(symbol: str) -> str:
    """The currency group a symbol's money counts in: QUOTE of BASE/QUOTE or BASE/QUOTE:SETTLE (the settle part is not the quote).

    A name that is not a ccxt unified symbol (no '/', such as BTCUSD) has no known quote: it is
    its own group, named after the symbol, so its money is never added to another symbol's
    (BTCUSD's dollars to ETHBTC's bitcoins).
    """
    _base, slash, rest = symbol.partition("/")
    if not slash:
        return symbol
    return rest.partition(":")[0]


def currency_label(symbol: str) -> str:
    """The currency group of a symbol as tables and chart titles show it: its quote (USD), or 'BTCUSD (quote unknown)'."""
    return quote_currency(symbol) if quote_known(symbol) else f"{symbol} (quote unknown)"


def group_label(currency: str, symbols: Sequence[str]) -> str:
    """The label of currency group `currency` (a key of totals or tallies) among the symbols traded (see currency_label)."""
    # A currency code never holds '/', so only a symbol not written BASE/QUOTE can be named like its group.
    return f"{currency} (quote unknown)" if currency in symbols else currency


def in_currency(amount: str, symbol: str) -> str:
    """An amount followed by the currency code of `symbol`'s quote (a symbol without a known quote has none to show)."""
    return f"{amount} {quote_currency(symbol)}" if quote_known(symbol) else amount


def limit_in(limit: Limit, currency: str) -> float | None:
    """The limit that holds in currency group `currency`: the plain number, the group's entry, or None for no limit."""
    if limit is None or isinstance(limit, float | int):
        return None if limit is None else float(limit)
    return limit.get(currency)


def _listed(names: Sequence[str]) -> str:
    quoted = [repr(name) for name in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} and {quoted[-1]}"


def _keyable(currency: str) -> bool:
    """Whether a limit object can name this currency group (a symbol may hold characters a key may not)."""
    return CURRENCY_PATTERN.fullmatch(currency) is not None


def mixed_currency_problem(traded: str, other: str) -> str | None:
    """Why a strategy trading `traded` may not read `other` as well (its money would span two currencies), or None."""
    if other == traded or (quote_known(other) and quote_known(traded) and quote_currency(other) == quote_currency(traded)):
        return None
    why = "a strategy's symbols must share one quote currency, since its balance, PnL and risk are counted in it"
    if quote_known(other) and quote_known(traded):
        return f"{other!r} is quoted in {quote_currency(other)}, but the strategy trades {traded!r}, quoted in {quote_currency(traded)}: {why}"
    if quote_known(traded):
        return (
            f"{other!r} is not written BASE/QUOTE, so its quote currency is unknown, but the strategy trades {traded!r}, "
            f"quoted in {quote_currency(traded)}: {why}; write {other!r} as BASE/QUOTE"
        )
    if quote_known(other):
        return (
            f"{other!r} is quoted in {quote_currency(other)}, but the strategy trades {traded!r}, which is not written "
            f"BASE/QUOTE, so its quote currency is unknown: {why}; write {traded!r} as BASE/QUOTE"
        )
    return (
        f"{other!r} and {traded!r}, which the strategy trades, are not written BASE/QUOTE, so their quote currencies are "
        f"unknown and may differ: {why}; write both as BASE/QUOTE"
    )


def group_collision(symbol: str, symbols: Sequence[str]) -> str | None:
    """Why `symbol` cannot count beside `symbols`: one not written BASE/QUOTE named like the quote currency of another
    (USD beside BTC/USD), whose money would be added to it; None when there is no such clash."""
    for other in symbols:
        unquoted, quoted = (symbol, other) if not quote_known(symbol) else (other, symbol)
        if not quote_known(unquoted) and quote_known(quoted) and quote_currency(quoted) == unquoted:
            return (
                f"{unquoted!r} is not written BASE/QUOTE, so it is a currency group of its own, named {unquoted}, "
                f"which is also the quote currency of {quoted!r}: their money would be added; write {unquoted!r} as BASE/QUOTE"
            )
    return None


def _groups(symbols: Sequence[str]) -> dict[str, str]:
    """Each currency group the symbols span, in first-use order, with the first symbol in it."""
    groups: dict[str, str] = {}
    for symbol in symbols:
        groups.setdefault(quote_currency(symbol), symbol)
    return groups


def _plain_problem(groups: Mapping[str, str]) -> str:
    example = "{" + ", ".join(f'"{currency}": <amount>' for currency in groups) + "}"
    unknown = [symbol for symbol in groups.values() if not quote_known(symbol)]
    if not unknown:
        return (
            f"a plain number holds for one currency, but the strategies trade in {', '.join(groups)}: "
            f"money is never added across currencies, so write the limit per currency: {example}"
        )
    problem = (
        f"a plain number holds for one currency, but the strategies trade in {', '.join(currency_label(s) for s in groups.values())}: "
        "money is never added across currencies, and a symbol not written BASE/QUOTE has no known quote currency, so it "
        f"counts on its own; write {_listed(unknown)} as BASE/QUOTE (preferred: a plain number then holds while every "
        "strategy trades in one quote currency)"
    )
    if all(_keyable(currency) for currency in groups):
        problem += f", or give the limit per currency group: {example}"
    return problem


def limit_problem(limit: Limit, symbol: str, symbols: Sequence[str]) -> str | None:
    """Why a global limit cannot hold for a strategy trading `symbol` beside strategies trading `symbols`
    (which may include it), or None when it can."""
    if limit is None:
        return None
    if isinstance(limit, float | int):
        groups = _groups([*symbols, symbol])
        return _plain_problem(groups) if len(groups) > 1 else None
    currency = quote_currency(symbol)
    if currency in limit:
        return None
    if quote_known(symbol):
        problem = f'no limit for {currency}: add "{currency}": <amount> (or "{currency}": null for no limit in {currency})'
    else:
        problem = (
            f"no limit for {symbol!r}, which is not written BASE/QUOTE, so its quote currency is unknown: write it as "
            "BASE/QUOTE (preferred), then give the limit of its quote currency"
        )
        if not _keyable(currency):
            return problem
        problem += f'; or add "{currency}": <amount>, a limit of its own (or "{currency}": null for none)'
    near = [key for key in limit if key.upper() == currency.upper()]
    if near:
        problem += f'; currency codes are case-sensitive, as the symbols write them (USD, BTC): "{near[0]}" is not "{currency}"'
    return problem


def risk_problems(limits: Mapping[str, Limit], label: str, strategies: Sequence[tuple[str, str, str]]) -> list[ConfigProblem]:
    """Problems of the global risk limits (name -> limit) for the strategies given as (id, symbol, file label)."""
    groups = _groups([symbol for _, symbol, _ in strategies])
    symbols = list(groups.values())
    problems: list[ConfigProblem] = []
    for name in RISK_LIMITS:
        limit = limits.get(name)
        if limit is None:
            continue
        if isinstance(limit, float | int):
            reason = limit_problem(limit, symbols[0], symbols) if symbols else None
            if reason is not None:
                problems.append(ConfigProblem(label, f"risk.{name}", reason))
            continue
        for currency, symbol in groups.items():
            users = [f"{sid!r} ({s}, {file})" for sid, s, file in strategies if quote_currency(s) == currency]
            reason = limit_problem(limit, symbol, symbols)
            if reason is not None:
                which = f"trading in {currency}" if quote_known(symbol) else f"on {symbol}"
                problems.append(ConfigProblem(label, f"risk.{name}", f"{reason}; strategies {which}: {', '.join(users)}"))
    return problems


def collision_problems(strategies: Sequence[tuple[str, str, str]]) -> list[ConfigProblem]:
    """Strategies (id, symbol, file label) on a symbol not written BASE/QUOTE that is named like another's quote currency."""
    symbols = list(dict.fromkeys(symbol for _, symbol, _ in strategies))
    problems = []
    for _, symbol, file in strategies:
        if not quote_known(symbol):
            reason = group_collision(symbol, symbols)
            if reason is not None:
                problems.append(ConfigProblem(file, "symbol", reason))
    return problems


def money_decimals(balance: float) -> int:
    """Decimals that show amounts of an account of this size to about a hundred-thousandth of it, at
    least 2: 2 for 10,000 USD, 4 for 10 BTC."""
    return max(2, 6 - len(f"{abs(balance):.0f}"))
