"""Fixtures for candle tests: the shared recorded candle data beside the repository."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of recorded candle files; fails (never skips) when it is missing."""
    if not (SHARED_DATA / "manifest.json").is_file():
        pytest.fail(f"recorded candle data not found: expected {SHARED_DATA}/manifest.json")
    return SHARED_DATA


@pytest.fixture(scope="session")
def manifest(shared_data: Path) -> list[dict[str, Any]]:
    """The parsed manifest.json describing every normalized candle file."""
    entries: list[dict[str, Any]] = json.loads((shared_data / "manifest.json").read_text())
    return entries
