"""Every JSON column is written by the event codec, byte for byte as the journal's own encoder wrote it before
(`writer.dumps`, orjson with msgspec's asdict), so a column of an older journal and one written now read back alike."""
from __future__ import annotations

import sqlite3
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import msgspec
import orjson

from bot.event_codec import encode_record, payload_json, payload_of, record_json
from bot.events import PositionClosed, PositionOpened, PositionReduced, StopUpdated, TrailingActivated
from bot.journal import Journal
from bot.journal.records import JournalledTrade, stored_position, stored_position_text, trade_record
from bot.trading.actions import OpenPosition, UpdateStopLoss
from tests.journal.builders import JournalledRun
from tests.trading.helpers import SYMBOL, Session, flat, quiet


def _former(value: Any) -> str:
    """A value as the journal wrote its JSON columns before the codec did."""

    def default(item: Any) -> Any:
        if isinstance(item, tuple):
            return list(item)
        if isinstance(item, msgspec.Struct):
            return msgspec.structs.asdict(item)
        raise TypeError(type(item).__name__)

    return orjson.dumps(value, default=default).decode()


def _former_patch(text: str, patch: dict[str, Any]) -> str:
    """A stop or trailing change patched into a stored state as the journal did it before: by key."""
    state = orjson.loads(text)
    state.update(patch)
    return _former(state)


def _rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(query).fetchall()


def test_the_codec_writes_each_column_of_a_real_run_as_the_former_encoder_did(journalled_run: JournalledRun) -> None:
    seen: Counter[str] = Counter()
    for event in journalled_run.rig.events:
        if event.strategy_id is None:
            continue
        assert payload_json(event).decode() == _former(payload_of(event))  # the strategy event log
        if isinstance(event, (PositionOpened, PositionReduced)):
            assert record_json(event.position).decode() == _former(event.position)
        if isinstance(event, (PositionOpened, PositionReduced, PositionClosed)):
            assert record_json(event.portfolio).decode() == _former(event.portfolio)
        if isinstance(event, PositionClosed):
            former = _former({**encode_record(event.trade), "fill": encode_record(event.fill)})
            assert record_json(JournalledTrade(event.trade, event.fill)).decode() == former
        seen[event.type] += 1
    assert seen["position_closed"] > 100 and seen["stop_updated"] > 100 and seen["trailing_activated"] > 10 and seen["signal"] > 100


def test_the_positions_of_a_real_run_hold_what_the_former_patching_wrote(journalled_run: JournalledRun) -> None:
    """Replays the run's position events through the former writer's logic: every state column is that, byte for byte."""
    expected: dict[tuple[str, str], str] = {}
    patched = 0
    with closing(sqlite3.connect(":memory:")) as sql:
        for event in journalled_run.rig.events:
            sid = event.strategy_id
            if isinstance(event, (PositionOpened, PositionReduced)):
                expected[sid, event.position.position_id] = _former(event.position)  # type: ignore[index]
            elif isinstance(event, (StopUpdated, TrailingActivated)) and (sid, event.position_id) in expected:
                if isinstance(event, StopUpdated):
                    patch = {name: value for name, value in (("stop_loss", event.stop_loss), ("trailing_stop", event.trailing_stop)) if value is not None}
                else:
                    patch = {"trailing_distance_pct": event.distance_pct, "trailing_stop": event.trailing_stop, "trailing_active": True}
                expected[sid, event.position_id] = _former_patch(expected[sid, event.position_id], patch)  # type: ignore[index]
                patched += 1
            elif isinstance(event, PositionClosed):
                key = (sid, event.trade.position_id)
                (expected[key],) = sql.execute("SELECT json_set(?, '$.status', 'closed', '$.quantity', 0.0)", (expected[key],)).fetchone()  # type: ignore[index]
    stored = {(sid, pid): state for sid, pid, state in _rows(journalled_run.path, "SELECT strategy_id, position_id, state FROM positions")}
    assert stored == expected and patched > 100


def test_the_columns_of_a_real_run_read_back_and_write_again_unchanged(journalled_run: JournalledRun) -> None:
    path = journalled_run.path
    trades = _rows(path, "SELECT record FROM trades")
    assert len(trades) > 100
    for (text,) in trades:
        assert record_json(trade_record(text, "trades")).decode() == text
    positions = _rows(path, "SELECT state FROM positions")  # closed ones as json_set left them
    assert positions
    for (text,) in positions:
        assert stored_position_text(stored_position(orjson.loads(text), "positions")) == text


def test_a_stop_moved_on_an_older_row_keeps_its_shape_and_its_strategys_rules(tmp_path: Path) -> None:
    """A position journalled before positions kept their own exit rules (no ladder_closes_all, break_even, group): a stop
    patched into it is written as the former journal did, so after a restart the strategy's rules still apply to it."""
    session = Session(quiet(exits={"stop_loss_pct": 3}))
    path = tmp_path / "journal.sqlite"
    with Journal(path) as journal:
        session.rig.services.bus.subscribe(journal.record)
        session.bars(flat(100))
        session.act(OpenPosition(SYMBOL, "long", 1.0))
        session.bars(flat(100))
        with closing(sqlite3.connect(path)) as conn, conn:
            conn.execute("UPDATE positions SET state = json_remove(state, '$.ladder_closes_all', '$.break_even', '$.group')")
        ((older,),) = _rows(path, "SELECT state FROM positions")
        (before,) = journal.position_records("s1")
        assert not before.rules_kept
        session.act(UpdateStopLoss(session.position().id, 98.5, "manual"))
        ((after,),) = _rows(path, "SELECT state FROM positions")
        assert after == _former_patch(older, {"stop_loss": 98.5})
        (restored,) = journal.position_records("s1")
        assert not restored.rules_kept and restored.state == msgspec.structs.replace(before.state, stop_loss=98.5)
