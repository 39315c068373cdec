"""Bad run folders are refused with the file, the line or field, and the reason."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.errors import RunFileError
from bot.report.rundata import load_run


@pytest.fixture()
def run_copy(replay_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(replay_dir, target, ignore=shutil.ignore_patterns("events.jsonl", "report.html"))
    return target


def _error(run: Path) -> str:
    with pytest.raises(RunFileError) as caught:
        load_run(run)
    return str(caught.value)


def _replace_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")


def test_a_good_run_loads_every_strategy(run_copy: Path) -> None:
    data = load_run(run_copy)
    assert list(data.strategies) == ["ema_cross", "rsi_reversion", "trail"]
    assert all(run.equity.ts and run.trades for run in data.strategies.values())


@pytest.mark.parametrize("name", ["report.json", "equity.csv", "trades.csv"])
def test_a_missing_file_is_named(run_copy: Path, name: str) -> None:
    (run_copy / name).unlink()
    assert _error(run_copy).startswith(f"{run_copy / name}: file not found")


def test_not_a_folder(tmp_path: Path) -> None:
    assert _error(tmp_path / "nope").startswith(f"{tmp_path / 'nope'}: not a folder")


def test_corrupt_report_json_names_the_line(run_copy: Path) -> None:
    path = run_copy / "report.json"
    path.write_text(path.read_text().replace('"status": "complete"', '"status": complete', 1))
    assert _error(run_copy).startswith(f"{path}: line 3: not valid JSON")


def test_a_bad_report_field_is_named(run_copy: Path) -> None:
    path = run_copy / "report.json"
    path.write_text(path.read_text().replace('"final_equity": ', '"final_equity": "lots", "x": ', 1))
    assert _error(run_copy).startswith(f"{path}: field strategies.ema_cross.final_equity: Input should be a valid number")


def test_a_bad_equity_value_names_line_and_column(run_copy: Path) -> None:
    path = run_copy / "equity.csv"
    row = path.read_text().splitlines()[6].split(",")
    row[2] = "abc"
    _replace_line(path, 7, ",".join(row))
    assert _error(run_copy) == f"{path}: line 7: equity: not a number: 'abc'"


def test_a_bad_equity_header_is_refused(run_copy: Path) -> None:
    path = run_copy / "equity.csv"
    _replace_line(path, 1, "ts,strategy,equity")
    assert _error(run_copy).startswith(f"{path}: line 1: header must be ts_ms,strategy_id,equity,cash,unrealised,open_positions")


def test_a_short_trades_row_and_a_bad_time_name_their_line(run_copy: Path) -> None:
    path = run_copy / "trades.csv"
    original = path.read_text()
    _replace_line(path, 3, "ema_cross,BTC/USD,long")
    assert _error(run_copy) == f"{path}: line 3: 3 fields, expected 12"
    path.write_text(original)
    row = original.splitlines()[1].split(",")
    row[4] = "yesterday"
    _replace_line(path, 2, ",".join(row))
    assert _error(run_copy).startswith(f"{path}: line 2: entry_time: not a UTC time")


def test_a_row_of_an_unknown_strategy_is_refused(run_copy: Path) -> None:
    path = run_copy / "trades.csv"
    row = path.read_text().splitlines()[1].split(",")
    row[0] = "ghost"
    _replace_line(path, 2, ",".join(row))
    assert _error(run_copy) == f"{path}: line 2: strategy_id: 'ghost' is not in report.json"
