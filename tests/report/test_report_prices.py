"""Prices in the report's trades table: eight significant digits in plain decimals, never an exponent."""
from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

from tests.cli.test_cli import run_bot


def test_prices_below_a_ten_thousandth_read_as_plain_decimals(replay_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(replay_dir, run, ignore=shutil.ignore_patterns("events.jsonl", "report.html"))
    with (run / "trades.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    entry, exit_ = header.index("entry_price"), header.index("exit_price")
    # A coin quoted in BTC at a few hundred satoshis, as the exchange writes it.
    rows[1][entry], rows[1][exit_] = "0.0000025", "0.00000311"
    big = float(rows[2][entry])
    with (run / "trades.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    done = run_bot("report", run, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    html = (run / "report.html").read_text(encoding="utf-8")
    cells = re.findall(r"<td>([^<]*)</td>", html)
    assert "0.0000025" in cells and "0.00000311" in cells
    assert not [cell for cell in cells if re.fullmatch(r"[-\d.,]+e[-+]\d+", cell)], "a price with an exponent"
    assert f"{big:,.8g}" in cells  # 47,312: thousands still grouped
