"""The one seam through which the bot calls a strategy's code: what that code raises fails that strategy alone.

Every call into a strategy's code, and into the bookkeeping that runs on its behalf (construction,
warm-up, candles, catch-up, protection of its positions, exchange fills, settling), goes through
`attempt` or `build`. Only `Exception` counts as the strategy's failure: cancellation,
KeyboardInterrupt and SystemExit always propagate. What the caller does with a failure depends on
the `Stage` it was called for, and is decided in one place (StrategyManager's fault table).
"""
from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Mapping
from typing import Literal, ParamSpec, TypeVar

from bot.errors import BotError, StrategyError
from bot.ohlcv import Candle
from bot.strategy.delivery import CandleHandler

# What the bot was calling a strategy's code for when it raised.
Stage = Literal["trade", "warm_up", "protect", "catch_up", "booking", "settle"]

_P = ParamSpec("_P")
_R = TypeVar("_R")
_Owner = TypeVar("_Owner")


class RemoteStrategyError(Exception):
    """A strategy's failure in another process (a cluster worker): its exception's type name, message and file:line there."""

    def __init__(self, type_name: str, message: str, where: str) -> None:
        super().__init__(message)
        self.type_name = type_name
        self.where = where


def described(exc: BaseException) -> tuple[str, str]:
    """`Type: message` and the file:line (file name only) a strategy's failure was raised at, wherever its code ran."""
    if isinstance(exc, RemoteStrategyError):
        return f"{exc.type_name}: {exc}", exc.where
    frames = traceback.extract_tb(exc.__traceback__)
    # The file's name only: an absolute path would make event logs differ between checkouts.
    return f"{type(exc).__name__}: {exc}", f"{os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else ""


def attempt(fn: Callable[_P, object], /, *args: _P.args, **kwargs: _P.kwargs) -> Exception | None:
    """Call `fn`; return the Exception it raised (the strategy's failure, for the caller to hand on), None when it returned."""
    try:
        fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001  the seam: anything a strategy raises is its failure
        return exc
    return None


Routes = Mapping[tuple[str, str], tuple[tuple[_Owner, CandleHandler], ...]]


def deliver_stream(
    active: Routes[_Owner],
    protect: Routes[_Owner],
    key: tuple[str, str],
    on_trade_error: Callable[[_Owner, Exception], None],
    on_protect_error: Callable[[_Owner, Exception], None],
    protected: Callable[[tuple[tuple[_Owner, CandleHandler], ...]], None],
    symbol: str,
    timeframe: str,
    candle: Candle,
    ts: int,
) -> None:
    """Hand one candle of stream `key` to the strategies trading on it, then to those protecting positions on it.

    What one handler raises goes to that route's error callback with its owner, and the rest
    still get the candle; `protected` then sees the protect routes it went to. The candle hub
    calls this through a partial bound per stream (the replay hot path: one frame per candle).
    """
    routes = active.get(key)
    # Read before the active loop: a strategy that fails on this candle joins the protect
    # route for the next candle, not again for this one.
    guarding = protect.get(key)
    if routes:
        for owner, handler in routes:
            try:
                handler(symbol, timeframe, candle, ts)
            except Exception as exc:  # noqa: BLE001  the seam: anything a strategy raises is its failure
                on_trade_error(owner, exc)
    if guarding:
        for owner, handler in guarding:
            try:
                handler(symbol, timeframe, candle, ts)
            except Exception as exc:  # noqa: BLE001  the seam: anything a strategy raises is its failure
                on_protect_error(owner, exc)
        protected(guarding)


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
