"""Crash safety with a real process: kill -9 while journalling (and while checkpointing) loses nothing acknowledged and corrupts nothing."""
from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from bot.events import Event
from bot.journal import Journal
from tests.journal.builders import JournalledRun, dump_tables, integrity
from tests.journal.queries import strategy_ids
from tests.support import REPO

# The child journals the events one by one and acknowledges each only once record() returned,
# that is once its transaction committed.
_CHILD = """
import pickle
import sys
from pathlib import Path

from bot.journal import Journal

events = pickle.loads(Path(sys.argv[2]).read_bytes())
journal = Journal(Path(sys.argv[1]))
for index, event in enumerate(events):
    journal.record(event)
    print(index, flush=True)
print("done", flush=True)
"""
# As _CHILD, with checkpoints as often as they can be: the thread's every millisecond and the
# writer's every 100 frames, so the kill lands amid them. Each ack also says how many
# checkpoints the thread and the writer ran so far (which of the two does them depends on
# scheduling; that some happen does not: the interpreter hands the thread the GIL every few ms).
_CHECKPOINTING_CHILD = """
import pickle
import sys
from pathlib import Path

from bot.journal import Journal
from bot.journal.checkpoint import CheckpointPolicy

events = pickle.loads(Path(sys.argv[2]).read_bytes())
policy = CheckpointPolicy(interval_s=0.001, busy_interval_s=0.001, writer_frames=100, wal_size_limit=0)
journal = Journal(Path(sys.argv[1]), checkpoints=policy)
for index, event in enumerate(events):
    journal.record(event)
    print(index, journal.writer_checkpoints + journal._checkpointer.checkpoints, flush=True)
print("done", flush=True)
"""
# Strategy turns (a strategy's events of one candle) handed over without waiting, up to 32 in
# flight, so the writer thread finds several queued and commits them together; each turn is
# acknowledged once its completion is done, that is once the commit holding it returned.
_GROUPING_CHILD = """
import pickle
import sys
from collections import deque
from pathlib import Path

from bot.journal import Journal

turns = pickle.loads(Path(sys.argv[2]).read_bytes())
journal = Journal(Path(sys.argv[1]))
in_flight = deque()
for index, turn in enumerate(turns):
    journal.begin_turn()
    for event in turn:
        journal.record(event)
    in_flight.append((index, journal.commit_turn()))
    while in_flight and (len(in_flight) >= 32 or in_flight[0][1].done):
        done, completion = in_flight.popleft()
        completion.result()
        print(done, journal.group_commits, flush=True)
print("done", flush=True)
"""
_TIMEOUT_S = 60.0


def test_kill_9_mid_run_keeps_every_acknowledged_record(tmp_path: Path, journalled_run: JournalledRun) -> None:
    events: list[Event] = [e for e in journalled_run.rig.events if e.strategy_id is not None]
    assert len(events) > 4 * 2_000
    path, acked = _kill_mid_run(tmp_path, events, _CHILD, acks_before_kill=2_000)
    _assert_holds_exactly_the_acknowledged(tmp_path, path, events, len(acked))


def test_kill_9_amid_checkpoints_keeps_every_acknowledged_record(tmp_path: Path, journalled_run: JournalledRun) -> None:
    events: list[Event] = [e for e in journalled_run.rig.events if e.strategy_id is not None]
    assert len(events) > 2 * 3_000
    path, acked = _kill_mid_run(tmp_path, events, _CHECKPOINTING_CHILD, acks_before_kill=3_000)
    # Checkpoints did run while the child wrote, so the kill landed amid them.
    assert int(acked[-1][1]) > 0
    _assert_holds_exactly_the_acknowledged(tmp_path, path, events, len(acked))


def test_kill_9_amid_group_commits_keeps_every_acknowledged_turn_whole(tmp_path: Path, journalled_run: JournalledRun) -> None:
    turns: list[list[Event]] = []
    for event in journalled_run.rig.events:
        if event.strategy_id is None:
            continue
        if turns and (turns[-1][0].strategy_id, turns[-1][0].ts) == (event.strategy_id, event.ts):
            turns[-1].append(event)
        else:
            turns.append([event])
    assert len(turns) > 2 * 1_500 and max(map(len, turns)) > 1
    path, acked = _kill_mid_run(tmp_path, turns, _GROUPING_CHILD, acks_before_kill=1_500)
    assert int(acked[-1][1]) > 0  # turns were committed in groups before the kill
    # The journal holds the acknowledged turns, or those and turns committed before the kill landed but not yet
    # acknowledged (a group, and what was in flight): always whole turns, in order.
    assert integrity(path) == "ok"
    Journal(path).close()  # opening replays the WAL
    crashed = dump_tables(path)
    reference_path = tmp_path / "reference.sqlite"
    with Journal(reference_path) as reference:
        for turn in turns[: len(acked)]:
            for event in turn:
                reference.record(event)
        kept = len(acked)
        while dump_tables(reference_path) != crashed:
            assert kept < min(len(acked) + 64, len(turns)), (
                f"the journal is not the first N whole turns for any N from the {len(acked)} acknowledged on: an acknowledged turn is missing,"
                " or a turn is kept in part"
            )
            for event in turns[kept]:
                reference.record(event)
            kept += 1


def _kill_mid_run(tmp_path: Path, events: Sequence[object], child: str, acks_before_kill: int) -> tuple[Path, list[list[str]]]:
    """Run `child` journalling `events` (events or turns of them), kill -9 it after `acks_before_kill` acks; return the journal and every ack, split."""
    events_file = tmp_path / "events.pickle"
    events_file.write_bytes(pickle.dumps(events))
    script = tmp_path / "child.py"
    script.write_text(child)
    path = tmp_path / "crashed" / "journal.sqlite"
    stderr_file = tmp_path / "child.stderr"

    acked: list[list[str]] = []
    with stderr_file.open("wb") as stderr:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen(
            [sys.executable, str(script), str(path), str(events_file)], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
        # If the child stalls, the watchdog kills it and the blocked readline below sees EOF.
        watchdog = threading.Timer(_TIMEOUT_S, proc.kill)
        watchdog.start()
        try:
            assert proc.stdout is not None
            while len(acked) < acks_before_kill:
                line = proc.stdout.readline()
                if not line:
                    break
                acked.append(line.split())
            # Mid-run: the child is still writing (it blocks on a full pipe at worst, far from its end).
            still_running = proc.poll() is None
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=_TIMEOUT_S)
            # Lines already in the pipe were acknowledged before the kill; a line the kill cut
            # short (no newline: "3012" without its count) is not an acknowledgement.
            complete, _, _cut = proc.stdout.read().rpartition("\n")
            acked.extend(line.split() for line in complete.splitlines())
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
    assert len(acked) >= acks_before_kill, stderr_file.read_text()
    assert still_running and proc.returncode == -signal.SIGKILL
    # Acks in order, and never "done": the kill landed mid-run.
    assert [a[0] for a in acked] == [str(i) for i in range(len(acked))]
    assert len(acked) < len(events)
    return path, acked


def _assert_holds_exactly_the_acknowledged(tmp_path: Path, path: Path, events: list[Event], count: int) -> None:
    """Opening replays the WAL; then the file must be sound and hold exactly the acknowledged
    records, or those plus the one committed just before the kill landed (before its ack)."""
    with Journal(path) as journal:
        assert strategy_ids(journal.path) == ["a", "b"]
    assert integrity(path) == "ok"
    crashed = dump_tables(path)

    reference_path = tmp_path / "reference.sqlite"
    with Journal(reference_path) as reference:
        for event in events[:count]:
            reference.record(event)
    expected = dump_tables(reference_path)
    if crashed != expected:
        with Journal(reference_path) as reference:
            reference.record(events[count])
        expected = dump_tables(reference_path)
    assert crashed == expected
