"""The bot's error hierarchy, grouped by what the operator must do about each."""
from __future__ import annotations


class BotError(Exception):
    """Base of every error the bot raises on purpose."""


class ConfigError(BotError):
    """The configuration is invalid; the operator must fix a file. Carries every problem found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ConfigProblem:
    """One configuration problem: the file, the field path and the reason."""

    __slots__ = ("file", "field", "reason")

    def __init__(self, file: str, field: str, reason: str) -> None:
        self.file = file
        self.field = field
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.file}: {self.field or '<file>'}: {self.reason}"

    def __repr__(self) -> str:
        return f"ConfigProblem({self.file!r}, {self.field!r}, {self.reason!r})"


class CandleFileError(BotError):
    """A recorded candle file is unreadable or inconsistent; names the file, line and reason."""

    def __init__(self, path: str, line: int | None, reason: str, unit: str = "line") -> None:
        self.path = path
        self.line = line
        self.reason = reason
        self.unit = unit
        where = f"{path}: {unit} {line}" if line is not None else path
        super().__init__(f"{where}: {reason}")


class StrategyError(BotError):
    """A strategy's own code raised; fails that strategy only."""

    def __init__(self, strategy_id: str, cause: BaseException) -> None:
        self.strategy_id = strategy_id
        self.cause = cause
        super().__init__(f"strategy {strategy_id!r} failed: {type(cause).__name__}: {cause}")


class UnknownStrategyError(BotError):
    """A strategy id that is not loaded was named."""


class StrategyStateError(BotError):
    """A lifecycle call that the strategy's current state does not allow."""


class ChangeRefused(BotError):
    """A configuration change a running strategy cannot take in place: the operator changes its file, or unloads and loads it."""


class MoveRefused(BotError):
    """A strategy that cannot move to the worker asked (no workers here, a worker not taken in, already there): the message says why."""


class FeedStateError(BotError):
    """A feed change that the feed's kind or state does not allow (a symbol it already has, one not added at runtime)."""


class EventTaggingError(BotError):
    """A strategy-scoped event was published without a strategy id (or a market event with one)."""


class ActionError(BotError):
    """An action could not be carried out (unknown kind, no position to close, bad percent)."""


class RunFileError(BotError):
    """A replay output file is missing or malformed; names the file, the line or field, and the reason."""

    def __init__(self, path: str, where: str | None, reason: str) -> None:
        self.path = path
        self.where = where
        self.reason = reason
        super().__init__(f"{path}: {where}: {reason}" if where else f"{path}: {reason}")
