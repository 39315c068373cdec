"""Fixtures of the tests here: a real daemon process on a temporary config (tests/daemon/process.py)."""
from tests.daemon.process import daemon, short_tmp, stepped

__all__ = ["daemon", "short_tmp", "stepped"]
