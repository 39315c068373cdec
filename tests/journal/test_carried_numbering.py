"""`run --fresh` in mode live: the numbers a journal moved aside used go on in the new one, so no client id is reused."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.journal import Journal, JournalError
from bot.journal.aside import numbering
from tests.journal.builders import JournalledRun


def test_a_new_journal_numbers_on_from_the_old_ones_orders_and_positions_and_twice_moved_aside_too(
    tmp_path: Path, journalled_run: JournalledRun
) -> None:
    old = tmp_path / "journal.sqlite.20260101T000000Z"
    shutil.copy(journalled_run.path, old)
    with Journal(journalled_run.path) as reference:
        used = {sid: (reference.last_order_number(sid), reference.last_position_number(sid)) for sid in ("a", "b")}
    assert all(orders > 1 and positions > 1 for orders, positions in used.values())
    assert numbering(old) == used

    with Journal(tmp_path / "journal.sqlite") as new:
        assert new.last_order_number("a") == 0
        new.carry_numbering(used)
        assert {sid: (new.last_order_number(sid), new.last_position_number(sid)) for sid in ("a", "b")} == used
        assert new.last_order_number("c") == 0 and new.last_position_number("c") == 0
    # Moved aside in its turn before it placed an order: what it carried is carried on.
    assert numbering(tmp_path / "journal.sqlite") == used


def test_the_numbers_of_a_journal_that_cannot_be_read_are_refused_naming_it(tmp_path: Path) -> None:
    broken = tmp_path / "journal.sqlite.20260101T000000Z"
    broken.write_bytes(b"not a journal" * 100)
    with pytest.raises(JournalError, match="order and position numbers") as refused:
        numbering(broken)
    assert str(broken) in str(refused.value)
