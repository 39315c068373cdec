"""The base of every config model, in a module of its own so the models of each section can build on it."""
from __future__ import annotations

from bot.config.numbers import StrictNumbers


class Strict(StrictNumbers):
    """Base for every config model: frozen, rejecting unknown fields, numbers only as finite JSON numbers."""
