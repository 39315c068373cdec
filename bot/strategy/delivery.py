"""How the manager hands a candle to an orchestrator: a direct call (replay) or its own inbox (live)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from bot.ohlcv import Candle

CandleHandler = Callable[[str, str, Candle, int], None]
# The manager's guarded seam, for a queued handler's exception: (owner, handler, exception).
HandlerErrorHook = Callable[[Any, CandleHandler, Exception], None]


class TurnNotJournalled(Exception):
    """A strategy's turn on a candle could not be journalled (bot.daemon.delivery): nothing of it was kept or announced."""


class CandleOwner(Protocol):
    """What a delivery queues candles for (an orchestrator): its id names its task; `catch_up` shows it candles it skipped, `on_history` ones it had handled."""

    @property
    def strategy_id(self) -> str:
        """The strategy it runs."""
        ...

    def catch_up(self, symbol: str, timeframe: str, candle: Candle, ts: int) -> None:
        """Let its positions see a candle its decisions skipped (stops, take-profits, trailing)."""
        ...

    def on_history(self, symbol: str, timeframe: str, candle: Candle, ts: int) -> None:
        """Feed a candle to its indicators and its strategy's state only: nothing is decided, filled or enforced."""
        ...

    def protect(self, symbol: str, timeframe: str, candle: Candle, ts: int) -> None:
        """Its positions only (dormant or failed): the handler of its protecting routes."""
        ...


class Delivery(Protocol):
    """Turns an orchestrator's handler into what the router calls for each candle."""

    def wrap(self, owner: CandleOwner, handler: CandleHandler) -> CandleHandler:
        """The callable the router invokes for `owner`'s candles."""
        ...

    def reset(self, owner: CandleOwner) -> list[tuple[str, str, Candle, int]]:
        """Take out candles queued for `owner` (its routing changed): (symbol, timeframe, candle, ts)."""
        ...

    def detach(self, owner: CandleOwner) -> None:
        """Forget `owner` for good (unload): no task, no queue left behind."""
        ...


class DirectDelivery:
    """Data-driven replay: the router calls the orchestrator itself, so a candle is finished by
    every orchestrator before the next is published."""

    def wrap(self, owner: CandleOwner, handler: CandleHandler) -> CandleHandler:
        """The handler itself."""
        return handler

    def reset(self, owner: CandleOwner) -> list[tuple[str, str, Candle, int]]:
        """Nothing is ever queued."""
        return []

    def detach(self, owner: CandleOwner) -> None:
        """Nothing to release."""
