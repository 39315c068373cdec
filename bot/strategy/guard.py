"""The one seam through which the bot calls a strategy's code: what that code raises fails that strategy alone.

Every call into a strategy's code, and into the bookkeeping that runs on its behalf (construction,
warm-up, candles, catch-up, protection of its positions, exchange fills, settling), goes through
`attempt` or `build`. Only `Exception` counts as the strategy's failure: cancellation,
KeyboardInterrupt and SystemExit always propagate. What the caller does with a failure depends on
the `Stage` it was called for, and is decided in one place (StrategyManager's fault table).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Literal, ParamSpec, TypeVar

from bot.errors import BotError, StrategyError
from bot.ohlcv import Candle
from bot.strategy.delivery import CandleHandler

# What the bot was calling a strategy's code for when it raised.
Stage = Literal["trade", "warm_up", "protect", "catch_up", "booking", "settle"]

_P = ParamSpec("_P")
_R = TypeVar("_R")
_Owner = TypeVar("_Owner")


def attempt(fn: Callable[_P, object], /, *args: _P.args, **kwargs: _P.kwargs) -> Exception | None:
    """Call `fn`; return the Exception it raised (the strategy's failure, for the caller to hand on), None when it returned."""
    try:
        fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001  the seam: anything a strategy raises is its failure
        return exc
    return None


def deliver(
    routes: tuple[tuple[_Owner, CandleHandler], ...], symbol: str, timeframe: str, candle: Candle, ts: int, on_error: Callable[[_Owner, Exception], None]
) -> None:
    """Hand one candle to every route's handler; what one raises goes to `on_error` with its owner, and the rest still get it.

    `attempt` for a whole route table: one call per candle, not one per strategy (the replay hot path).
    """
    for owner, handler in routes:
        try:
            handler(symbol, timeframe, candle, ts)
        except Exception as exc:  # noqa: BLE001  the seam: anything a strategy raises is its failure
            on_error(owner, exc)


def build(strategy_id: str, fn: Callable[_P, _R], /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
    """Call `fn`, which builds a strategy's objects: what its code raises comes out as StrategyError, a refusal of that one strategy.

    A BotError is the bot's own refusal (a config it cannot use) and propagates as it is.
    """
    try:
        return fn(*args, **kwargs)
    except BotError:
        raise
    except Exception as exc:
        raise StrategyError(strategy_id, exc) from exc
