"""What ties the strategies of a replay together so that they cannot run in separate processes."""
from __future__ import annotations

from bot.config.currency import RISK_LIMITS, limit_in, quote_currency
from bot.strategy.config_load import LoadedConfig


def coupling(loaded: LoadedConfig) -> str | None:
    """Why the enabled strategies must run in one process, as a sentence; None when each can run apart.

    Only the global risk limits couple them in a replay: the exposure cap adds up the open
    notional of every strategy in a currency group, and a group's daily loss engages the kill
    switch, which stops new entries of every strategy. Everything else a replay shares is
    read-only (candle history) or per strategy (paper account, portfolio, risk view, metrics);
    a pairs strategy reading two symbols is one strategy and runs in one process whole.
    """
    limits = loaded.bot.risk
    currencies = list(dict.fromkeys(quote_currency(spec.symbol) for spec in loaded.enabled_strategies()))
    for name in RISK_LIMITS:
        held = [currency for currency in currencies if limit_in(getattr(limits, name), currency) is not None]
        if held:
            return (
                f"the global limit risk.{name} ({', '.join(held)}) couples the strategies "
                "(coupled strategies run apart only in the cluster's lockstep replay)"
            )
    return None
