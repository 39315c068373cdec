"""A crash between a strategy's journalled turn and the feed position's write: the restart does not apply that decision twice.

The feed position is journalled only once every strategy has processed what was published, a
strategy's turn as soon as it is committed: a kill -9 between the two leaves the journal with
the turn's orders and positions but the feed position one candle earlier, so the restarted feed
plays that candle again. Real stepped daemons on a real journal; the crash window is made by
moving the journalled feed position back, as such a kill -9 leaves it (the window itself is
microseconds wide, too narrow to hit with a signal).
"""
from __future__ import annotations

from pathlib import Path

from bot.daemon.recovery import FEED_POSITION
from bot.journal import Journal
from tests.daemon.process import DaemonProcess, journal_rows
from tests.daemon.test_recovery import _config

MINUTE = 60_000


def _orders(folder: Path) -> list[tuple[str, str, int, str, int | None]]:
    return journal_rows(folder, "SELECT strategy_id, client_id, submitted_ts, status, done_ts FROM orders ORDER BY strategy_id, client_id")


def test_a_candle_played_again_after_the_crash_window_is_history_for_the_strategies_that_decided_on_it(short_tmp: Path) -> None:
    config = _config(short_tmp)
    first = DaemonProcess(config, stepped=True)
    try:
        first.wait_ready()
        # Until a candle's turn sends an entry that is still pending (it fills at the next open).
        decided = first.step_until(
            lambda: [row for row in _orders(short_tmp) if row[3] == "submitted"] or None, "an order decided on the last candle"
        )
    finally:
        assert first.stop() == 0
    close = int(decided[0][2])
    before = _orders(short_tmp)
    with Journal(short_tmp / "journal.sqlite") as journal:
        assert journal.get_meta(FEED_POSITION) == str(close)
        journal.set_meta(FEED_POSITION, str(close - MINUTE))  # the turn committed, the feed position not yet

    second = DaemonProcess(config, stepped=True)
    try:
        second.wait_ready()
        second.step(1)  # the candle closing at `close` again
        # No strategy decided on it a second time, and the entry it sent is still waiting for the next open.
        assert _orders(short_tmp) == before
        second.step(1)
        after = {row[1]: row for row in _orders(short_tmp)}
        for sid, client_id, submitted, status, done in decided:
            assert after[client_id][3] == "filled", after[client_id]
            # Filled at the open of the candle after the one it was decided on, not at that candle's own open.
            assert after[client_id][4] == close + MINUTE, (after[client_id], close)
        assert len(after) >= len(before)
        assert not [row for row in after.values() if row[2] == close and row not in decided and row[1] not in {r[1] for r in before}]
    finally:
        assert second.stop() == 0
