"""Which files a control client may name: only those inside the folders the config allows."""
from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

from bot.config.loader import LoadedConfig
from bot.control.protocol import ControlError
from bot.errors import ConfigProblem

# Longer names are refused before the file system sees them (Linux: 4096 per path, 255 per name).
MAX_FILE_ARG: Final[int] = 1024
_MAX_COMPONENT: Final[int] = 255
# A reason quoting the file's content: 'text' or "text" (our validators use {value!r}).
_QUOTED: Final[re.Pattern[str]] = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*\"""")
_REASON_LIMIT: Final[int] = 160


class FileAccess:
    """Resolves file names sent by control clients; anything outside the allowed folders is bad_args.

    The allowed folders are config.json's folder, its `strategy_paths` and `control.allowed_paths`,
    each taken after symlinks are resolved, and so is every name asked for: a link inside that
    points outside is refused too.
    """

    def __init__(self, base_dir: Path, extra_folders: Iterable[str] = ()) -> None:
        self._base = base_dir
        roots = [base_dir, *(base_dir / extra for extra in extra_folders)]
        self.roots: tuple[Path, ...] = tuple(dict.fromkeys(Path(os.path.realpath(root)) for root in roots))

    @classmethod
    def of(cls, loaded: LoadedConfig) -> "FileAccess":
        """The folders `loaded`'s config allows."""
        return cls(loaded.base_dir, [*loaded.bot.strategy_paths, *loaded.bot.control.allowed_paths])

    def resolve(self, name: str, field: str = "file") -> Path:
        """The real path of `name` (relative to config.json's folder); ControlError(bad_args) naming only the path."""
        if len(name) > MAX_FILE_ARG or any(len(part) > _MAX_COMPONENT for part in name.split("/")):
            raise ControlError("bad_args", f"{field}: file name too long (at most {MAX_FILE_ARG} characters, {_MAX_COMPONENT} per folder or file name)")
        if "\x00" in name or not name.isprintable():
            raise ControlError("bad_args", f"{field}: not a usable file name (control characters)")
        try:
            real = Path(os.path.realpath(self._base / name))
        except (OSError, ValueError):
            raise ControlError("bad_args", f"{field}: not a usable file name: {name}") from None
        if not any(real == root or real.is_relative_to(root) for root in self.roots):
            raise ControlError(
                "bad_args",
                f"{field}: {name} is outside the folders control clients may name (config.json's folder, strategy_paths, control.allowed_paths)",
            )
        return real

    def check(self, path: Path, field: str) -> None:
        """Refuse a path that a file named by a client names in turn (a config's strategy files)."""
        self.resolve(str(path), field)


def redact_reason(reason: str) -> str:
    """A problem's reason fit for a control reply: quoted values from the file replaced, length bounded."""
    text = _QUOTED.sub("<value>", reason)
    return text if len(text) <= _REASON_LIMIT else text[: _REASON_LIMIT - 3] + "..."


def redacted(problems: Sequence[ConfigProblem]) -> list[dict[str, str]]:
    """Problems as reply dicts that name file, field and a short reason, never the file's raw text."""
    out = []
    for problem in problems:
        field = problem.field
        reason = redact_reason(problem.reason)
        if "Extra inputs are not permitted" in problem.reason:
            # The key itself is the file's text: say where, not what.
            field, _, _ = field.rpartition(".")
            reason = "a field that is not allowed here"
        out.append({"file": problem.file, "field": redact_reason(field), "reason": reason})
    return out
