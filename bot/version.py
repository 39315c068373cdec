"""The bot's version, as installed (pyproject.toml's version)."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def bot_version() -> str:
    """The installed distribution's version, or "unknown" when run from a tree that was never installed."""
    try:
        return version("bot")
    except PackageNotFoundError:
        return "unknown"
