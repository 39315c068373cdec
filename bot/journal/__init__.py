"""The SQLite journal of strategy state: written before events are delivered, read back on restart."""
from __future__ import annotations

from bot.journal.lock import JournalInUse
from bot.journal.records import JOURNAL_EXTRAS
from bot.journal.schema import SCHEMA_VERSION, JournalError
from bot.journal.sqlite import STRATEGY_EVENT_LIMIT, Journal

__all__ = ["JOURNAL_EXTRAS", "SCHEMA_VERSION", "STRATEGY_EVENT_LIMIT", "Journal", "JournalError", "JournalInUse"]
