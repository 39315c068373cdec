"""Logging: one logger for the process, and adapters that stamp a strategy id on every line."""
from __future__ import annotations

import logging
import sys
from collections.abc import Callable, MutableMapping
from typing import Any

from bot.events import Event


class StrategyLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger bound to one strategy id; every line carries it."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        """Prefix the message with the strategy id."""
        return f"[{self.extra['strategy_id']}] {msg}", kwargs  # type: ignore[index]


class BotLogger:
    """The process logger service; hands out strategy-bound adapters."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self.first_subscriber_error: str | None = None

    @classmethod
    def to_stderr(cls, level: int = logging.INFO, name: str = "bot") -> "BotLogger":
        """A logger writing one line per record to stderr."""
        logger = logging.getLogger(name)
        if not logger.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
        return cls(logger)

    def for_strategy(self, strategy_id: str) -> StrategyLogger:
        """A logger whose lines carry `strategy_id`."""
        return StrategyLogger(self.logger, {"strategy_id": strategy_id})

    def subscriber_failed(self, event: Event, handler: Callable[[Event], None], exc: Exception) -> None:
        """Log an event subscriber's exception (the bus goes on delivering) and keep the first."""
        name = getattr(handler, "__qualname__", repr(handler))
        text = f"event subscriber {name} failed on {event.type} #{event.seq}: {type(exc).__name__}: {exc}"
        if self.first_subscriber_error is None:
            self.first_subscriber_error = text
        self.logger.error("%s", text)
