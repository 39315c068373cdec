"""What `strategies` and `strategy` show of configs, each made once: a dump per running spec, a reading per strategy file version."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.config.models import StrategyConfig


class ConfigViews:
    """Dumps of configs kept while their source is unchanged: 1,000 strategies listed every second cost the loop a dump each, each time, else.

    A running strategy's dump is kept while it runs the same spec (a `set` or `reload` gives it a new
    one); a strategy file's reading while the file keeps its inode, size and modification time.
    The dicts handed out are shared between replies: callers only encode them.
    """

    def __init__(self) -> None:
        self._running: dict[str, tuple[StrategyConfig, dict[str, Any]]] = {}
        self._files: dict[Path, tuple[tuple[int, int, int], dict[str, Any]]] = {}

    def running(self, strategy_id: str, spec: StrategyConfig) -> dict[str, Any]:
        """The spec as JSON (with its runtime changes)."""
        kept = self._running.get(strategy_id)
        if kept is not None and kept[0] is spec:
            return kept[1]
        dump = spec.model_dump(mode="json")
        self._running[strategy_id] = (spec, dump)
        return dump

    def file(self, path: Path, read: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
        """`read(path)`, again only once the file changed."""
        try:
            stat = os.stat(path)
        except OSError:
            self._files.pop(path, None)
            return read(path)  # its own error for a file that went
        version = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        kept = self._files.get(path)
        if kept is not None and kept[0] == version:
            return kept[1]
        result = read(path)
        self._files[path] = (version, result)
        return result

    def forget_except(self, strategy_ids: set[str], paths: set[Path]) -> None:
        """Drop what belongs to strategies no longer loaded and files no longer listed."""
        for sid in [sid for sid in self._running if sid not in strategy_ids]:
            del self._running[sid]
        for path in [path for path in self._files if path not in paths]:
            del self._files[path]
