"""Helpers that write config.json and strategy files into a temporary folder."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from bot.errors import ConfigError, ConfigProblem
from bot.strategy.config_load import load_config


def valid_strategy(**overrides: Any) -> dict[str, Any]:
    """A minimal valid strategy file body (ema_cross on BTC/USD 1m), with top-level `overrides`."""
    body: dict[str, Any] = {
        "id": "s1",
        "symbol": "BTC/USD",
        "timeframe": "1m",
        "quantity": 0.1,
        "analyzers": [{"type": "ema_cross", "params": {"fast": 3, "slow": 6}}],
    }
    body.update(copy.deepcopy(overrides))
    return body


def write_setup(
    root: Path,
    strategies: dict[str, Any],
    config: dict[str, Any] | None = None,
    refs: list[dict[str, Any]] | None = None,
) -> Path:
    """Write `strategies/<name>` files and a config.json listing them (or `refs`); return config.json's path.

    A strategy value that is a str or bytes is written verbatim, anything else as JSON.
    """
    (root / "strategies").mkdir(parents=True, exist_ok=True)
    for name, body in strategies.items():
        target = root / "strategies" / name
        if isinstance(body, bytes):
            target.write_bytes(body)
        elif isinstance(body, str):
            target.write_text(body)
        else:
            target.write_text(json.dumps(body))
    data = dict(config or {})
    data["strategies"] = refs if refs is not None else [{"file": f"strategies/{name}"} for name in strategies]
    path = root / "config.json"
    path.write_text(json.dumps(data))
    return path


def problems_of(path: Path) -> list[ConfigProblem]:
    """Load `path`, expecting a ConfigError, and return its problems."""
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems
