"""Hostile candle files through the real `bot validate` and `bot replay`: absurd times and prices, runaway gaps."""
from __future__ import annotations

import csv
import gzip
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_cli import error_lines, flat, run_bot
from tests.config.builders import valid_strategy, write_setup
from tests.support import BTC_1M

MIN = 60_000
HOUR = 3_600_000
HEADER = "ts_ms,open,high,low,close,volume"
# About 3,000 years after the recording, on a minute boundary.
FAR_FUTURE = (1_640_991_600_000 + 3_000 * 365 * 86_400_000) // MIN * MIN


def _btc_rows(count: int) -> list[str]:
    """The first `count` data rows of the shared BTC 1m recording, as written there."""
    with BTC_1M.open() as handle:
        next(handle)
        return [next(handle).rstrip("\n") for _ in range(count)]


def _after_a_year() -> int:
    """A minute boundary some 400 days from now: past the default window, whenever the test runs."""
    return (time.time_ns() // 1_000_000 + 400 * 86_400_000) // MIN * MIN


def _row(ts: int, price: float = 46_000.0) -> str:
    return f"{ts},{price!r},{price!r},{price!r},{price!r},1.0"


def _setup(root: Path, data: str, source: dict[str, Any] | None = None) -> None:
    """config.json with one 1m ema_cross strategy on BTC/USD, fed by `data` (a file in `root`)."""
    entry = {"path": data, "timeframe": "1m", **(source or {})}
    write_setup(root, {"a.json": valid_strategy()}, {"replay": {"candles": {"BTC/USD": entry}}})


def _replay(root: Path) -> Any:
    return run_bot("replay", "--config", "config.json", "--out", "out", "--quiet", cwd=root)


def _equity_stamps(out: Path) -> list[int]:
    with (out / "equity.csv").open(newline="") as handle:
        return [int(row["ts_ms"]) for row in csv.DictReader(handle)]


# --- the time window ---------------------------------------------------------------------------


def test_validate_refuses_a_last_row_after_now(tmp_path: Path) -> None:
    late = _after_a_year()
    (tmp_path / "late_1m.csv").write_text("\n".join([HEADER, *_btc_rows(500), _row(late)]) + "\n")
    _setup(tmp_path, "late_1m.csv")
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2, result.stdout
    (line,) = error_lines(result.stderr)
    assert line.startswith(f"error: late_1m.csv: line 502: timestamp {late} (")
    assert "is after the latest allowed open time" in line
    assert "now + one 1m candle; replay.candles.BTC/USD.latest_ts_ms allows later ones" in line


def test_replay_refuses_a_csv_whose_last_row_is_after_now_before_writing_anything(tmp_path: Path) -> None:
    late = _after_a_year()
    (tmp_path / "late_1m.csv").write_text("\n".join([HEADER, *_btc_rows(500), _row(late)]) + "\n")
    _setup(tmp_path, "late_1m.csv")
    result = _replay(tmp_path)
    assert result.returncode == 2
    (line,) = error_lines(result.stderr)
    # Found by reading the file's tail: no line number, and no output folder at all.
    assert line.startswith(f"error: late_1m.csv: last line: timestamp {late} (")
    assert "is after the latest allowed open time" in line
    assert not (tmp_path / "out").exists()


def test_replay_refuses_a_json_file_whose_last_row_is_after_now_before_writing_anything(tmp_path: Path) -> None:
    late = _after_a_year()
    rows = [[int(f) if i == 0 else float(f) for i, f in enumerate(r.split(","))] for r in _btc_rows(300)]
    (tmp_path / "late_1m.json.gz").write_bytes(gzip.compress(json.dumps([*rows, [late, 1.0, 1.0, 1.0, 1.0, 0.0]]).encode()))
    _setup(tmp_path, "late_1m.json.gz")
    result = _replay(tmp_path)
    assert result.returncode == 2
    (line,) = error_lines(result.stderr)
    assert line.startswith(f"error: late_1m.json.gz: row 301: timestamp {late} (")
    assert not (tmp_path / "out").exists()


def test_replay_refuses_a_json_file_whose_last_time_is_an_integral_float_before_writing_anything(tmp_path: Path) -> None:
    # The reader takes 96248991600000.0 as the integer it is, so the check before the run does too.
    rows = [[int(f) if i == 0 else float(f) for i, f in enumerate(r.split(","))] for r in _btc_rows(300)]
    (tmp_path / "late_1m.json").write_text(json.dumps([*rows, [float(FAR_FUTURE), 1.0, 1.0, 1.0, 1.0, 0.0]]))
    assert f"[{FAR_FUTURE}.0, 1.0" in (tmp_path / "late_1m.json").read_text()
    _setup(tmp_path, "late_1m.json")
    result = _replay(tmp_path)
    assert result.returncode == 2
    (line,) = error_lines(result.stderr)
    assert line.startswith(f"error: late_1m.json: row 301: timestamp {FAR_FUTURE} (")
    assert "is after the latest allowed open time" in line
    assert not (tmp_path / "out").exists()


def test_replay_refuses_a_csv_whose_late_row_is_followed_by_garbage_before_writing_anything(tmp_path: Path) -> None:
    # The tail is read back past lines that do not start with a time, to the late row.
    (tmp_path / "late_1m.csv").write_text("\n".join([HEADER, *_btc_rows(500), _row(FAR_FUTURE), "garbage,,", "not a row"]) + "\n")
    _setup(tmp_path, "late_1m.csv")
    result = _replay(tmp_path)
    assert result.returncode == 2
    (line,) = error_lines(result.stderr)
    assert line.startswith(f"error: late_1m.csv: last line: timestamp {FAR_FUTURE} (")
    assert "is after the latest allowed open time" in line
    assert not (tmp_path / "out").exists()


def test_a_late_candles_file_from_the_command_line_is_told_where_a_later_bound_can_be_set(tmp_path: Path) -> None:
    # The config's latest_ts_ms describes the config's file: a --candles file takes none of its settings.
    late = _after_a_year()
    (tmp_path / "ok_1m.csv").write_text("\n".join([HEADER, *_btc_rows(10)]) + "\n")
    (tmp_path / "late_1m.csv").write_text("\n".join([HEADER, *_btc_rows(500), _row(late)]) + "\n")
    _setup(tmp_path, "ok_1m.csv", {"latest_ts_ms": FAR_FUTURE})
    result = run_bot("replay", "--config", "config.json", "--candles", "BTC/USD=late_1m.csv", "--out", "out", "--quiet", cwd=tmp_path)
    assert result.returncode == 2
    (line,) = error_lines(result.stderr)
    assert line.startswith(f"error: late_1m.csv: last line: timestamp {late} (")
    assert flat(line).endswith(
        "(now + one 1m candle; a --candles file has no latest_ts_ms: to allow later ones, "
        "name it in replay.candles.BTC/USD.path and set replay.candles.BTC/USD.latest_ts_ms)"
    )
    assert not (tmp_path / "out").exists()


def test_replay_refuses_a_first_row_before_1970_before_writing_anything(tmp_path: Path) -> None:
    (tmp_path / "old_1m.csv").write_text("\n".join([HEADER, _row(-2 * MIN), _row(-MIN), _row(0)]) + "\n")
    _setup(tmp_path, "old_1m.csv")
    result = _replay(tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        "error: old_1m.csv: line 2: timestamp -120000 (before 1970) is before the earliest allowed open time, 1970-01-01T00:00:00Z"
    ]
    assert not (tmp_path / "out").exists()
    assert run_bot("validate", "--config", "config.json", cwd=tmp_path).returncode == 2


def test_a_gzipped_csv_is_refused_when_the_stream_reaches_the_late_row(tmp_path: Path) -> None:
    # A gzip stream cannot be read from its end without decompressing all of it: its last row
    # is checked as it arrives, before it reaches the strategies or the equity series.
    late = _after_a_year()
    rows = _btc_rows(500)
    (tmp_path / "late_1m.csv.gz").write_bytes(gzip.compress(("\n".join([HEADER, *rows, _row(late)]) + "\n").encode()))
    _setup(tmp_path, "late_1m.csv.gz")
    result = _replay(tmp_path)
    assert result.returncode == 2
    (line,) = error_lines(result.stderr)
    assert line.startswith(f"error: replay aborted: late_1m.csv.gz: line 502: timestamp {late} (")
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["replay"]["status"] == "aborted"
    assert report["replay"]["candles"] == 500
    last_close = int(rows[-1].split(",")[0]) + MIN
    stamps = _equity_stamps(tmp_path / "out")
    assert max(stamps) <= last_close
    assert len(stamps) <= 500 // 60 + 3


def test_a_3000_year_gap_allowed_by_the_source_writes_its_two_ends_only(tmp_path: Path) -> None:
    rows = _btc_rows(2_000)
    (tmp_path / "far_1m.csv").write_text("\n".join([HEADER, *rows, _row(FAR_FUTURE)]) + "\n")
    _setup(tmp_path, "far_1m.csv", {"latest_ts_ms": FAR_FUTURE})
    checked = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "BTC/USD: far_1m.csv: 2,001 candles of 1m, 1 gaps" in checked.stdout
    result = _replay(tmp_path)
    assert result.returncode == 0, result.stderr
    stamps = _equity_stamps(tmp_path / "out")
    first_ts, last_ts = int(rows[0].split(",")[0]), int(rows[-1].split(",")[0])
    boundaries = (last_ts + MIN) // HOUR - first_ts // HOUR
    # The start, every hour of the recording, the two ends of the gap, the final close.
    assert len(stamps) <= 1 + boundaries + 2 + 1
    assert stamps[-1] == FAR_FUTURE + MIN
    assert stamps[-3] - stamps[-4] == HOUR and stamps[-2] - stamps[-3] > 2_999 * 365 * 86_400_000
    assert (tmp_path / "out" / "equity.csv").stat().st_size < 10_000
    # The report reads the years between the gap's two rows as one return spanning them.
    page = run_bot("report", "out", cwd=tmp_path)
    assert page.returncode == 0, page.stderr
    assert (tmp_path / "out" / "report.html").is_file()


def test_latest_ts_ms_is_checked_in_the_config(tmp_path: Path) -> None:
    (tmp_path / "c_1m.csv").write_text("\n".join([HEADER, *_btc_rows(10)]) + "\n")
    _setup(tmp_path, "c_1m.csv", {"latest_ts_ms": 10**17})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr)[0].startswith("error: config.json: replay.candles.BTC/USD.latest_ts_ms: Input should be less than or equal to")


# --- prices --------------------------------------------------------------------------------------


def test_validate_and_replay_refuse_a_price_of_1e300(tmp_path: Path) -> None:
    rows = _btc_rows(200)
    last_ts = int(rows[-1].split(",")[0])
    (tmp_path / "big_1m.csv").write_text("\n".join([HEADER, *rows, _row(last_ts + MIN, 1e300)]) + "\n")
    _setup(tmp_path, "big_1m.csv")
    checked = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert checked.returncode == 2
    assert error_lines(checked.stderr) == ["error: big_1m.csv: line 202: price above 1e+12 in field open: 1e+300"]
    result = _replay(tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        "error: replay aborted: big_1m.csv: line 202: price above 1e+12 in field open: 1e+300 (partial output in out)"
    ]
    assert json.loads((tmp_path / "out" / "report.json").read_text())["replay"]["status"] == "aborted"


# --- close jumps ---------------------------------------------------------------------------------


def _jumpy_file(root: Path) -> tuple[float, float]:
    """A recording whose close jumps up 10.5x at line 102 and back down at line 103; returns both closes."""
    rows = _btc_rows(200)
    previous = float(rows[99].split(",")[4])
    high = previous * 10.5
    ts = [int(r.split(",")[0]) for r in rows]
    rows[100] = _row(ts[100], high)
    (root / "jumpy_1m.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    return previous, high


def test_validate_warns_about_a_close_jump_naming_file_line_and_both_closes(tmp_path: Path) -> None:
    previous, high = _jumpy_file(tmp_path)
    after = float(_btc_rows(200)[101].split(",")[4])
    _setup(tmp_path, "jumpy_1m.csv")
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    warnings = [flat(line) for line in result.stderr.splitlines() if line.startswith("warning: ")]
    suffix = "(replay.candles.BTC/USD.close_jump_factor)"
    assert warnings == [
        f"warning: jumpy_1m.csv: line 102: close {high!r} is more than 10x away from the previous close {previous!r} {suffix}",
        f"warning: jumpy_1m.csv: line 103: close {after!r} is more than 10x away from the previous close {high!r} {suffix}",
    ]
    assert "config.json: OK" in result.stdout


@pytest.mark.parametrize(("factor", "warned"), [(11, 0), (1.0001, None)])
def test_the_close_jump_factor_is_set_per_source(tmp_path: Path, factor: float, warned: int | None) -> None:
    _jumpy_file(tmp_path)
    _setup(tmp_path, "jumpy_1m.csv", {"close_jump_factor": factor})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    if warned is not None:
        assert len(warnings) == warned
    else:
        # Almost every minute moves by more than 0.01%: twenty listed, the rest counted.
        assert len(warnings) == 21
        assert flat(warnings[-1]).endswith("more close jumps not listed")


def test_a_close_jump_factor_of_1_or_less_is_a_config_error(tmp_path: Path) -> None:
    _jumpy_file(tmp_path)
    _setup(tmp_path, "jumpy_1m.csv", {"close_jump_factor": 1})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == ["error: config.json: replay.candles.BTC/USD.close_jump_factor: Input should be greater than 1"]
