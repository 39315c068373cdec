"""trades.csv writes a trade's times as UTC ISO-8601 text to the second, as datetime would."""
from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from bot.replay.event_log import iso_ms


@given(st.integers(min_value=-(10**12), max_value=253_402_300_799_999))
def test_iso_ms_is_datetimes_text_to_the_second(ts_ms: int) -> None:
    assert iso_ms(ts_ms) == datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_known_time() -> None:
    assert iso_ms(1_672_531_260_999) == "2023-01-01T00:01:00Z"
