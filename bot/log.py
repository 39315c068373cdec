"""Logging: one logger for the process, and adapters that stamp a strategy id on every line."""
from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

from bot.errors import BotError
from bot.events import Event

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


class LogFileError(BotError):
    """The --log-file cannot be created or opened for appending."""


class UtcFormatter(logging.Formatter):
    """Log lines stamped in UTC ISO-8601 with milliseconds (2022-01-04 12:30:15.123Z), whatever the machine's zone."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """The record's wall-clock time in UTC."""
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def open_log_file(path: Path) -> logging.FileHandler:
    """A handler appending to `path` (folders created; a new file is the user's alone, 0600), or LogFileError."""
    if path.parent.exists() and not path.parent.is_dir():
        raise LogFileError(f"--log-file {path}: {path.parent} is not a folder")
    previous = os.umask(0o077)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created here with 0600: FileHandler would take the umask's mode.
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
        handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    except OSError as exc:
        raise LogFileError(f"--log-file {path}: cannot open it for appending: {exc.strerror or exc}") from None
    finally:
        os.umask(previous)
    handler.setFormatter(UtcFormatter(LOG_FORMAT))
    return handler


class StrategyLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger bound to one strategy id; every line carries it."""

    def __init__(self, logger: logging.Logger, strategy_id: str) -> None:
        super().__init__(logger, {"strategy_id": strategy_id})
        self.strategy_id = strategy_id

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        """Prefix the message with the strategy id."""
        return f"[{self.strategy_id}] {msg}", kwargs


class BotLogger:
    """The process logger service; hands out strategy-bound adapters."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self.first_subscriber_error: str | None = None

    @classmethod
    def to_stderr(cls, level: int = logging.INFO, name: str = "bot", log_file: Path | None = None) -> BotLogger:
        """A logger writing one line per record to stderr, and appending it to `log_file` too when given.

        A log file of an earlier call on the same logger is closed and replaced (None: no file).
        """
        logger = logging.getLogger(name)
        if not any(type(handler) is logging.StreamHandler for handler in logger.handlers):
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(UtcFormatter(LOG_FORMAT))
            logger.addHandler(handler)
        new_file = open_log_file(log_file) if log_file is not None else None
        for old in [h for h in logger.handlers if isinstance(h, logging.FileHandler)]:
            logger.removeHandler(old)
            old.close()
        if new_file is not None:
            logger.addHandler(new_file)
        logger.setLevel(level)
        logger.propagate = False
        return cls(logger)

    def close(self) -> None:
        """Close the log file, if any (stderr stays): the command is over."""
        for handler in [h for h in self.logger.handlers if isinstance(h, logging.FileHandler)]:
            self.logger.removeHandler(handler)
            handler.close()

    def for_strategy(self, strategy_id: str) -> StrategyLogger:
        """A logger whose lines carry `strategy_id`."""
        return StrategyLogger(self.logger, strategy_id)

    def subscriber_failed(self, event: Event, handler: Callable[[Event], None], exc: Exception) -> None:
        """Log an event subscriber's exception (the bus goes on delivering) and keep the first."""
        name = getattr(handler, "__qualname__", repr(handler))
        text = f"event subscriber {name} failed on {event.type} #{event.seq}: {type(exc).__name__}: {exc}"
        if self.first_subscriber_error is None:
            self.first_subscriber_error = text
        self.logger.error("%s", text)
