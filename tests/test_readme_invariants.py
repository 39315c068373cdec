"""The README's invariants table points at modules and tests that exist, so it cannot drift from the code."""
from __future__ import annotations

import re

from tests.support import REPO

ROW = re.compile(r"^\| (\d)\. [^|]+\| `(bot/[^`]+)`[^|]*\| `(tests/[^`:]+)::(\w+)` \|$")


def test_every_invariant_names_a_module_and_a_test_that_exist() -> None:
    rows = [m.groups() for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines() if (m := ROW.match(line))]
    assert [number for number, *_ in rows] == [str(n) for n in range(1, 8)], "one row per invariant of the architecture guide"
    for _, module, test_file, test_name in rows:
        assert (REPO / module).is_file(), module
        assert re.search(rf"^(async )?def {test_name}\(", (REPO / test_file).read_text(encoding="utf-8"), re.MULTILINE), f"{test_file}::{test_name}"
