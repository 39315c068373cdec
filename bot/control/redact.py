"""Replies about a file's content that name the file, the line or field and why, never the file's own text."""
from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import orjson
from pydantic import BaseModel

from bot.config.defaults import MAX_CONFIG_BYTES
from bot.control.files import FileAccess
from bot.errors import CandleFileError, ConfigProblem

# Shorter strings of a file are left alone: they hide nothing and would garble every message.
_MIN_SECRET: Final[int] = 3
_NUMBER: Final[re.Pattern[str]] = re.compile(r"[-+]?(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_REASON_LIMIT: Final[int] = 200
HIDDEN: Final[str] = "<value>"
_WORD: Final[re.Pattern[str]] = re.compile(r"[A-Za-z0-9_]+")


def schema_words(models: Iterable[type[BaseModel]]) -> frozenset[str]:
    """Every field name of these models and the models their fields hold: words that may be shown as they are."""
    words: set[str] = set()
    seen: set[type[BaseModel]] = set()
    pending = list(models)
    while pending:
        model = pending.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            words.add(name)
            if info.alias:
                words.add(info.alias)
            pending.extend(_models_in(info.annotation))
    return frozenset(words)


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in typing.get_args(annotation):
        if arg is not types.NoneType:
            yield from _models_in(arg)


class Redactor:
    """Rewrites problems for a control reply: every string the named files hold (values and keys) is hidden,
    except the schema's own field names; numbers and quoted text of candle rows likewise."""

    def __init__(self, access: FileAccess, allowed_words: frozenset[str]) -> None:
        self._access = access
        self._allowed = allowed_words

    def problems(self, problems: Sequence[ConfigProblem]) -> list[dict[str, str]]:
        """Problems as reply dicts: file, field and reason, with the files' own text hidden."""
        secrets = self._secrets({problem.file for problem in problems})
        return [{"file": p.file, "field": self._hide(p.field, secrets), "reason": _cut(self._hide(p.reason, secrets))} for p in problems]

    def lines(self, problems: Sequence[ConfigProblem]) -> list[str]:
        """The problems as `file: field: reason` lines, as `bot validate` prints them."""
        return [str(ConfigProblem(p["file"], p["field"], p["reason"])) for p in self.problems(problems)]

    def joined(self, problems: Sequence[ConfigProblem]) -> str:
        """The problems as one line, `file: field: reason; ...`."""
        return "; ".join(self.lines(problems))

    def about_file(self, text: str, path: Path, shown: Iterable[str] = ()) -> str:
        """A message about `path` (a strategy that would not load) with the file's own text hidden, but for `shown`."""
        keep = set(shown)
        return _cut(self._hide(text, [secret for secret in self._secrets([str(path)]) if secret not in keep]))

    @staticmethod
    def numbers_hidden(text: str) -> str:
        """A message about a candle file's rows with their numbers and quoted text taken out."""
        return _cut(_NUMBER.sub("N", re.sub(r"'[^']*'?|\"[^\"]*\"?", HIDDEN, text)))

    def candle_error(self, exc: CandleFileError) -> str:
        """A candle file's problem with its location and kind, without the row's numbers or text."""
        where = f"{exc.path}: {exc.unit} {exc.line}" if exc.line is not None else exc.path
        kind = exc.reason.split(":", 1)[0]
        kind = kind.split("'", 1)[0].split('"', 1)[0]  # anything quoted is the row's own text
        return f"{where}: {_NUMBER.sub('N', kind).strip()} (bot validate on the command line shows the values)"

    def _secrets(self, files: Iterable[str]) -> list[str]:
        found: set[str] = set()
        for name in files:
            path = Path(name)
            if not name or not self._access.allows(path):
                continue
            try:
                if path.is_file() and path.stat().st_size <= MAX_CONFIG_BYTES:
                    _strings(orjson.loads(path.read_bytes()), found)
            except (OSError, ValueError):
                continue  # unreadable or not JSON: its problem says so, and it quotes nothing
        # Longest first, so a value is hidden whole before a shorter one inside it.
        return sorted((s for s in found if len(s) >= _MIN_SECRET and s not in self._allowed), key=len, reverse=True)

    def _hide(self, text: str, secrets: list[str]) -> str:
        for secret in secrets:
            if secret not in text:
                continue
            # A field name of the schema stays, even where a file's value is part of it.
            kept = [m.span() for m in _WORD.finditer(text) if m.group() in self._allowed]
            out, at = [], 0
            start = text.find(secret)
            while start != -1:
                end = start + len(secret)
                if not any(a <= start and end <= b for a, b in kept):
                    out.append(text[at:start] + HIDDEN)
                    at = end
                start = text.find(secret, end)
            text = "".join(out) + text[at:]
        return text


def _strings(data: Any, into: set[str]) -> None:
    """Every string of a JSON document, keys included (walked without recursion)."""
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            into.add(node)
        elif isinstance(node, dict):
            into.update(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _cut(text: str) -> str:
    return text if len(text) <= _REASON_LIMIT else text[: _REASON_LIMIT - 3] + "..."
