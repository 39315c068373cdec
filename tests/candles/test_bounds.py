"""The reader's bounds on hostile files: prices and volumes capped, timestamps in a window, the last row read from the tail."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from bot.candles.reader import last_timestamp, read_candles
from bot.candles.window import TimeWindow
from bot.errors import CandleFileError
from bot.ohlcv import Candle

HEADER = "ts_ms,open,high,low,close,volume\n"
T0 = 1_640_995_200_000
MIN = 60_000


def _rows(count: int, start: int = T0) -> str:
    return "".join(f"{start + i * MIN},10,12,9,11,5\n" for i in range(count))


def _error(path: Path, window: TimeWindow | None = None) -> CandleFileError:
    with pytest.raises(CandleFileError) as info:
        list(read_candles(path, window))
    return info.value


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (f"{T0 + 2 * MIN},1e300,1e300,1e300,1e300,1\n", "price above 1e+12 in field open: 1e+300"),
        (f"{T0 + 2 * MIN},10,2e12,9,11,1\n", "price above 1e+12 in field high: 2000000000000.0"),
        (f"{T0 + 2 * MIN},10,12,9,11,1e13\n", "volume above 1e+12: 10000000000000.0"),
    ],
    ids=["1e300", "high", "volume"],
)
def test_values_above_1e12_are_refused_naming_the_line(tmp_path: Path, row: str, reason: str) -> None:
    path = tmp_path / "big.csv"
    path.write_text(HEADER + _rows(2) + row)
    err = _error(path)
    assert (err.line, err.reason) == (4, reason)


def test_values_of_1e12_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "edge.csv"
    path.write_text(HEADER + f"{T0},1e12,1e12,1e12,1e12,1e12\n")
    assert list(read_candles(path)) == [Candle(T0, 1e12, 1e12, 1e12, 1e12, 1e12)]


def test_a_json_price_of_1e300_is_refused_naming_the_row(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text(json.dumps([[T0, 10, 12, 9, 11, 5], [T0 + MIN, 1e300, 1e300, 1e300, 1e300, 5]]))
    err = _error(path)
    assert (err.line, err.reason) == (2, "price above 1e+12 in field open: 1e+300")
    assert str(err).startswith(f"{path}: row 2: ")


def test_a_timestamp_after_the_window_is_refused_before_it_is_yielded(tmp_path: Path) -> None:
    path = tmp_path / "late.csv.gz"
    path.write_bytes(gzip.compress((HEADER + _rows(3) + f"{T0 + 10 * MIN},10,12,9,11,5\n").encode()))
    window = TimeWindow(0, T0 + 9 * MIN, "test bound")
    rows = read_candles(path, window)
    assert [next(rows).ts for _ in range(3)] == [T0, T0 + MIN, T0 + 2 * MIN]
    with pytest.raises(CandleFileError) as info:
        next(rows)
    assert info.value.line == 5
    assert info.value.reason == (
        f"timestamp {T0 + 10 * MIN} (2022-01-01T00:10:00Z) is after the latest allowed open time, 2022-01-01T00:09:00Z (test bound)"
    )
    # The bound itself is inside.
    path.write_bytes(gzip.compress((HEADER + _rows(3) + f"{T0 + 9 * MIN},10,12,9,11,5\n").encode()))
    assert len(list(read_candles(path, window))) == 4


def test_a_first_row_before_the_window_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.csv"
    path.write_text(HEADER + "-60000,10,12,9,11,5\n" + _rows(2))
    err = _error(path, TimeWindow(0, T0, "test bound"))
    assert (err.line, err.reason) == (2, "timestamp -60000 (before 1970) is before the earliest allowed open time, 1970-01-01T00:00:00Z")
    # Without a window the reader takes any 64-bit time, as before.
    assert next(c.ts for c in read_candles(path)) == -60000


def test_a_shifted_window_names_the_time_the_candle_would_play_at(tmp_path: Path) -> None:
    path = tmp_path / "shifted.csv"
    path.write_text(HEADER + _rows(2))
    day = 86_400_000
    # The file's second row, moved a day on, plays after the bound: the window is in file time.
    window = TimeWindow(-day, T0 + MIN - 1, "test bound", shift_ms=day)
    err = _error(path, window)
    assert err.line == 3
    assert err.reason == (
        f"timestamp {T0 + MIN} (played at 2022-01-02T00:01:00Z after shift_days) is after the latest allowed open time, "
        "2022-01-02T00:00:59Z (test bound)"
    )


def test_a_json_file_with_a_late_last_row_is_refused_before_its_first_candle(tmp_path: Path) -> None:
    path = tmp_path / "late.json"
    path.write_text(json.dumps([[T0, 10, 12, 9, 11, 5], [T0 + MIN, 10, 12, 9, 11, 5], [T0 + 99 * MIN, 10, 12, 9, 11, 5]]))
    rows = read_candles(path, TimeWindow(0, T0 + 10 * MIN, "test bound"))
    with pytest.raises(CandleFileError) as info:
        next(rows)
    assert info.value.line == 3
    assert "is after the latest allowed open time" in info.value.reason


@pytest.mark.parametrize(
    ("late", "after"),
    [
        ([float(T0 + 99 * MIN), 10, 12, 9, 11, 5], []),
        ([T0 + 99 * MIN, 10, 12, 9, 11, 5], ["garbage", [], [True, 10, 12, 9, 11, 5], ["x"]]),
    ],
    ids=["integral-float", "garbage-after"],
)
def test_a_late_json_row_is_refused_before_the_first_candle_however_it_is_written(tmp_path: Path, late: list[object], after: list[object]) -> None:
    path = tmp_path / "late.json"
    path.write_text(json.dumps([[T0, 10, 12, 9, 11, 5], [T0 + MIN, 10, 12, 9, 11, 5], late, *after]))
    rows = read_candles(path, TimeWindow(0, T0 + 10 * MIN, "test bound"))
    with pytest.raises(CandleFileError) as info:
        next(rows)
    assert info.value.line == 3
    assert info.value.reason.startswith(f"timestamp {T0 + 99 * MIN} (2022-01-01T01:39:00Z) is after the latest allowed open time")


def test_last_timestamp_reads_a_plain_csv_from_its_end(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    # CRLF endings and 100 KB of trailing blank lines: the tail is read further back until a row shows.
    path.write_bytes((HEADER + _rows(5000)).replace("\n", "\r\n").encode() + b"\n" * 100_000)
    assert last_timestamp(path) == T0 + 4999 * MIN


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("header.csv", HEADER.encode()),
        ("garbage.csv", (HEADER + "not,a,row\n" * 2).encode()),
        ("far_garbage.csv", (HEADER + _rows(2) + "not,a,row\n" * 1000).encode()),
        ("zipped.csv.gz", gzip.compress((HEADER + _rows(2)).encode(), mtime=0)),
        ("rows.json", json.dumps([[T0, 10, 12, 9, 11, 5]]).encode()),
        ("empty.csv", b""),
    ],
    # Named by file: a test id holding the gzip bytes (their header's time) differed between two xdist workers collecting a second apart.
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_last_timestamp_is_none_when_the_tail_does_not_tell(tmp_path: Path, name: str, content: bytes) -> None:
    # The full read checks these files as it streams (and reports a bad row with its line).
    path = tmp_path / name
    path.write_bytes(content)
    assert last_timestamp(path) is None


def test_last_timestamp_steps_back_over_lines_that_do_not_start_with_a_timestamp(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    # A torn row, a line of garbage and blank space after the last row that starts with a time.
    path.write_bytes((HEADER + _rows(500) + f"{T0 + 600 * MIN}.0,10,12\n" + "x,1,2\r\nnot a row\n\n").encode())
    assert last_timestamp(path) == T0 + 600 * MIN
    # The rows of a file too short to cut, read back to the header.
    path.write_bytes((HEADER + _rows(1) + "garbage\n").encode())
    assert last_timestamp(path) == T0


def test_last_timestamp_of_a_missing_file_is_none(tmp_path: Path) -> None:
    assert last_timestamp(tmp_path / "nope.csv") is None


def test_a_timestamp_beyond_any_date_is_refused_from_the_tail_and_in_the_stream(tmp_path: Path) -> None:
    path = tmp_path / "absurd.csv"
    absurd = 10**20 // MIN * MIN
    path.write_text(HEADER + _rows(2) + f"{absurd},10,12,9,11,5\n")
    assert last_timestamp(path) == absurd
    window = TimeWindow(0, T0 + 9 * MIN, "test bound")
    err = _error(path, window)
    assert (err.line, err.reason) == (
        4,
        f"timestamp {absurd} (beyond the year 9999) is after the latest allowed open time, 2022-01-01T00:09:00Z (test bound)",
    )
