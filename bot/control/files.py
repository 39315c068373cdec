"""Which files a control client may name: only those inside the folders the config allows."""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from bot.control.protocol import ControlError
from bot.strategy.config_load import LoadedConfig

# Longer names are refused before the file system sees them (Linux: 4096 per path, 255 per name).
MAX_FILE_ARG: Final[int] = 1024
_MAX_COMPONENT: Final[int] = 255


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
    def of(cls, loaded: LoadedConfig) -> FileAccess:
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
        if not self.allows(real):
            raise ControlError(
                "bad_args",
                f"{field}: {name} is outside the folders control clients may name (config.json's folder, strategy_paths, control.allowed_paths)",
            )
        return real

    def allows(self, path: Path) -> bool:
        """Whether `path` (after symlinks) lies inside the allowed folders."""
        try:
            real = Path(os.path.realpath(path))
        except (OSError, ValueError):
            return False
        return any(real == root or real.is_relative_to(root) for root in self.roots)
