"""Which files a control client may name: only those inside the folders the config allows."""
from __future__ import annotations

import fnmatch
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
        _check_name(name, field)
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

    def listed(self, folder: Path, pattern: str) -> list[Path]:
        """The entries of `folder` matching `pattern`, by name, that lie in an allowed folder once links are resolved.

        The folder is resolved once: only a link among its entries needs resolving on its own (a
        thousand strategy files are a thousand lstat calls fewer per folder component).
        """
        try:
            entries = sorted((entry for entry in os.scandir(folder) if fnmatch.fnmatchcase(entry.name, pattern)), key=lambda entry: entry.name)
        except OSError:
            return []
        inside = self.allows(folder)
        found = []
        for entry in entries:
            path = folder / entry.name
            try:
                _check_name(str(path), "file")
            except ControlError:
                continue
            # An entry of an allowed folder that is no link is inside; anything else is resolved (a root may lie below the folder).
            if (inside and not entry.is_symlink()) or self.allows(path):
                found.append(path)
        return found

    def allows(self, path: Path) -> bool:
        """Whether `path` (after symlinks) lies inside the allowed folders."""
        try:
            real = Path(os.path.realpath(path))
        except (OSError, ValueError):
            return False
        return any(real == root or real.is_relative_to(root) for root in self.roots)


def _check_name(name: str, field: str) -> None:
    """ControlError(bad_args) for a name too long or with control characters, before the file system sees it."""
    if len(name) > MAX_FILE_ARG or any(len(part) > _MAX_COMPONENT for part in name.split("/")):
        raise ControlError("bad_args", f"{field}: file name too long (at most {MAX_FILE_ARG} characters, {_MAX_COMPONENT} per folder or file name)")
    if "\x00" in name or not name.isprintable():
        raise ControlError("bad_args", f"{field}: not a usable file name (control characters)")
