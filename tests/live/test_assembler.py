"""CandleAssembler and Backoff: the decisions, one update at a time."""
from __future__ import annotations

import pytest

from bot.live.assembler import CandleAssembler, Fill, Publish
from bot.live.backoff import Backoff
from bot.ohlcv import Candle

M = 60_000


def c(minute: int, close: float = 1.0) -> Candle:
    return Candle(minute * M, 1.0, 2.0, 0.5, close, 1.0)


def run(assembler: CandleAssembler, *updates: tuple[Candle, bool | None]) -> list[object]:
    steps: list[object] = []
    for candle, closed in updates:
        for step in assembler.update(candle, closed):
            steps.append(step)
            if isinstance(step, Publish):
                assembler.published(step.candle.ts)
            else:
                assembler.filled(step.until)
    return steps


def test_with_close_flags_only_the_flagged_update_is_published() -> None:
    a = CandleAssembler(M, 0, flags_closes=True)
    assert run(a, (c(1, 1.1), False), (c(1, 1.2), False), (c(1, 1.3), True), (c(2), False)) == [Publish(c(1, 1.3))]


def test_duplicates_and_late_updates_are_ignored() -> None:
    a = CandleAssembler(M, 0, flags_closes=True)
    assert run(a, (c(1), True), (c(1), True), (c(2), False), (c(1, 9.0), True), (c(0), True)) == [Publish(c(1))]
    assert a.ignored == 3


def test_a_hole_is_filled_before_the_newer_candle() -> None:
    a = CandleAssembler(M, 0, flags_closes=True)
    assert run(a, (c(4), False), (c(4), True)) == [Fill(4 * M, f"candles missing before {4 * M}"), Publish(c(4))]


def test_with_flags_a_candle_ending_unflagged_comes_from_rest() -> None:
    a = CandleAssembler(M, 0, flags_closes=True)
    steps = run(a, (c(1, 1.1), False), (c(2), False))
    assert steps == [Fill(2 * M, f"candle {M} ended without its closing update")]


def test_without_flags_the_next_candle_closes_the_forming_one() -> None:
    a = CandleAssembler(M, 0, flags_closes=False)
    assert run(a, (c(1, 1.1), None), (c(1, 1.2), None), (c(2), None)) == [Publish(c(1, 1.2))]


def test_after_a_disconnect_the_forming_candle_is_not_trusted() -> None:
    a = CandleAssembler(M, 0, flags_closes=False)
    run(a, (c(1, 1.1), None))
    a.disconnected()
    assert run(a, (c(3), None)) == [Fill(3 * M, f"candles missing before {3 * M}")]


def test_backoff_doubles_to_the_cap_with_jitter_and_honours_a_floor() -> None:
    b = Backoff(0.5, 4.0, jitter=0.5, random=lambda: 1.0)
    assert [b.next_delay() for _ in range(5)] == [0.25, 0.5, 1.0, 2.0, 2.0]
    b.reset()
    assert b.next_delay(floor_s=3.0) == 3.0
    with pytest.raises(ValueError):
        Backoff(0, 1)
