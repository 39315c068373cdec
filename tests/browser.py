"""Headless Debian Chromium driven by Playwright, shared by the browser tests: one launch, its flags, and what a missing browser means."""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import pytest

CHROMIUM = Path(os.environ.get("BOT_CHROMIUM", "/usr/bin/chromium"))
# Without the background-networking flags Chromium keeps trying hosts this machine cannot reach.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def unavailable(reason: str) -> NoReturn:
    """Fail under CI (a missing browser there is a broken set-up, scripts/setup.sh installs it), else skip."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the browser test (scripts/setup.sh installs Debian's chromium)")
    pytest.skip(reason)


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (a Playwright Browser) with its own throw-away profile; closed after."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[test]')")
    if not CHROMIUM.exists():
        unavailable(f"no Chromium at {CHROMIUM}")
    profile = tempfile.mkdtemp(prefix="bot-chromium-")
    try:
        with sync_playwright() as playwright:
            instance = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS, env={**os.environ, "HOME": profile})
            try:
                yield instance
            finally:
                instance.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
