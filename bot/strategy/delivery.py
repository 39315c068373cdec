"""How the manager hands a candle to an orchestrator: a direct call (replay) or its own inbox (live)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from bot.ohlcv import Candle

CandleHandler = Callable[[str, str, Candle, int], None]
# The manager's guarded seam, for a queued handler's exception: (owner, handler, exception).
HandlerErrorHook = Callable[[Any, CandleHandler, Exception], None]


class Delivery(Protocol):
    """Turns an orchestrator's handler into what the router calls for each candle."""

    def wrap(self, owner: object, handler: CandleHandler) -> CandleHandler:
        """The callable the router invokes for `owner`'s candles."""
        ...

    def reset(self, owner: object) -> list[tuple[str, str, Candle, int]]:
        """Take out candles queued for `owner` (its routing changed): (symbol, timeframe, candle, ts)."""
        ...

    def detach(self, owner: object) -> None:
        """Forget `owner` for good (unload): no task, no queue left behind."""
        ...


class DirectDelivery:
    """Data-driven replay: the router calls the orchestrator itself, so a candle is finished by
    every orchestrator before the next is published."""

    def wrap(self, owner: object, handler: CandleHandler) -> CandleHandler:
        """The handler itself."""
        return handler

    def reset(self, owner: object) -> list[tuple[str, str, Candle, int]]:
        """Nothing is ever queued."""
        return []

    def detach(self, owner: object) -> None:
        """Nothing to release."""
