"""ErrorLines: one warning per kind of error per interval, the ones held back counted into the next line."""
from __future__ import annotations

import logging

import pytest

from bot.cluster.error_lines import ErrorLines


class FakeClock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_each_kind_is_logged_at_once_then_at_most_once_per_interval_with_the_count_held_back(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    lines = ErrorLines(logging.getLogger("bot.test.error_lines"), clock, interval=60.0)
    assert lines("refused", "cannot connect (refused)") is True
    assert lines("eof", "unexpected EOF") is True
    clock.now += 30
    assert [lines("refused", "cannot connect (refused)") for _ in range(3)] == [False, False, False]
    assert lines.held() == 3
    clock.now += 29.9
    assert lines("refused", "cannot connect (refused)") is False
    clock.now += 0.1
    assert lines("refused", "cannot connect (refused again)") is True
    assert lines.held() == 0
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "cannot connect (refused)"),
        (logging.WARNING, "unexpected EOF"),
        (logging.WARNING, "cannot connect (refused again) (4 more like it since the last line)"),
    ]
