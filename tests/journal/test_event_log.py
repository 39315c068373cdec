"""The generic strategy_events log is bounded: at most N rows per strategy, the newest, never mixed."""
from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from bot.event_codec import payload_of
from bot.events import ActionFailed, Event, RiskRejected, Signal, StopUpdated
from bot.journal import STRATEGY_EVENT_LIMIT, Journal
from tests.journal.builders import JournalledRun

# Event types with a table of their own; everything else a strategy emits goes to the log.
_TABLED = {
    "order_submitted",
    "order_filled",
    "order_cancelled",
    "position_opened",
    "position_reduced",
    "position_closed",
    "stop_updated",
    "trailing_activated",
    "strategy_state",
}


def _signal(sid: str, seq: int) -> Event:
    return Signal(seq, seq * 60_000, seq * 60_000, sid, "entry", seq / 10, "BTC/USD", 100.0, {})


def _rows_per_strategy(path: Path) -> dict[str, int]:
    with closing(sqlite3.connect(path)) as conn:
        return dict(conn.execute("SELECT strategy_id, count(*) FROM strategy_events GROUP BY strategy_id").fetchall())


def test_a_real_run_keeps_the_last_n_events_of_each_strategy(journalled_run: JournalledRun) -> None:
    rig = journalled_run.rig
    counts = {}
    with Journal(journalled_run.path) as journal:
        for sid in ("a", "b"):
            logged = [
                {"type": e.type, "ts": e.ts, "seq": e.seq, "payload": payload_of(e)} for e in rig.events if e.strategy_id == sid and e.type not in _TABLED
            ]
            counts[sid] = len(logged)
            assert journal.strategy_events(sid) == logged[-STRATEGY_EVENT_LIMIT:]
    # One strategy overflowed the window, the other did not: each is bounded on its own.
    assert counts["b"] < STRATEGY_EVENT_LIMIT < counts["a"]
    assert _rows_per_strategy(journalled_run.path) == {"a": STRATEGY_EVENT_LIMIT, "b": counts["b"]}


def test_the_window_is_per_strategy_and_survives_reopening_with_a_smaller_limit(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path, strategy_event_limit=3) as journal:
        for seq in range(1, 21):
            journal.record(_signal("a" if seq % 5 else "b", seq))
            assert all(n <= 3 for n in _rows_per_strategy(path).values())
        assert [e["seq"] for e in journal.strategy_events("a")] == [17, 18, 19]
        assert [e["seq"] for e in journal.strategy_events("b")] == [10, 15, 20]
    with Journal(path, strategy_event_limit=3) as journal:
        journal.record(_signal("b", 21))
        assert [e["seq"] for e in journal.strategy_events("b")] == [15, 20, 21]
        journal.record(_signal("b", 22))
        assert [e["seq"] for e in journal.strategy_events("b")] == [20, 21, 22]
    with Journal(path, strategy_event_limit=2) as journal:
        assert _rows_per_strategy(path) == {"a": 2, "b": 2}
        assert [e["seq"] for e in journal.strategy_events("a")] == [18, 19]


def test_untabled_and_unknown_strategy_events_are_logged_not_lost(tmp_path: Path) -> None:
    with Journal(tmp_path / "journal.sqlite") as journal:
        journal.record(RiskRejected(1, 1, 1, "a", "max_open_positions", "1 open", "BTC/USD", "long", 1.0, 100.0))
        journal.record(ActionFailed(2, 2, 2, "a", "close_percent", "no open position"))
        # A stop update for a position the journal never saw open is kept in the log.
        journal.record(StopUpdated(3, 3, 3, "a", "a-p9", stop_loss=1.0, reason="manual"))
        assert [e["type"] for e in journal.strategy_events("a")] == ["risk_rejected", "action_failed", "stop_updated"]
        assert journal.open_positions("a") == []
