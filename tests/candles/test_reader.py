"""Tests for the recorded candle file reader, on the real shared data and on hand-made bad files."""
from __future__ import annotations

import gzip
import itertools
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bot.candles.reader import count_candles, infer_timeframe, read_candles
from bot.errors import CandleFileError
from bot.ohlcv import Candle, timeframe_ms

CSV_FILES = [
    "ETH-BTC_1m.csv",
    "XMR-BTC_1m.csv",
    "BTC-USD-PERP_1m.csv",
    "ETH-BTC_5m.csv",
    "XRP-USDT-PERP_5m.csv",
    "BTC-USD_1h.csv",
    "ORCL-USD_1d.csv",
]
HEADER = "ts_ms,open,high,low,close,volume\n"
ROW1 = "1640995200000,10,12,9,11,5\n"
ROW2 = "1640995260000,11,13,10,12,6\n"
ROW3 = "1640995320000,12,12.5,11.5,12,0\n"


def _ms(iso: str) -> int:
    """UTC epoch milliseconds of an ISO-8601 time such as 2018-01-20T04:53:00Z."""
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def _entry(manifest: list[dict[str, Any]], file: str) -> dict[str, Any]:
    """The manifest entry of one normalized file."""
    return next(e for e in manifest if e["file"] == file)


def _error(path: Path) -> CandleFileError:
    """Read a file to the end and return the CandleFileError it must raise."""
    with pytest.raises(CandleFileError) as info:
        list(read_candles(path))
    return info.value


def test_manifest_lists_exactly_the_csv_files(shared_data: Path, manifest: list[dict[str, Any]]) -> None:
    """The parametrized file list below covers every recorded CSV."""
    on_disk = sorted(p.name for p in shared_data.glob("*.csv"))
    assert sorted(e["file"] for e in manifest) == on_disk == sorted(CSV_FILES)


@pytest.mark.parametrize("file", CSV_FILES)
def test_shared_csv_matches_manifest(shared_data: Path, manifest: list[dict[str, Any]], file: str) -> None:
    """Every recorded CSV reads fully, with the manifest's count, first/last time and gap total."""
    entry = _entry(manifest, file)
    candles = list(read_candles(shared_data / file))
    assert len(candles) == entry["count"]
    assert candles[0].ts == _ms(entry["first"])
    assert candles[-1].ts == _ms(entry["last"])
    assert all(type(c) is Candle for c in candles[:10])
    assert all(type(x) is float for c in candles for x in c[1:])
    assert count_candles(shared_data / file) == entry["count"]
    if entry["timeframe"] != "1d":  # the daily file counts gaps on a weekday calendar
        step = timeframe_ms(entry["timeframe"])
        missing = sum((b.ts - a.ts) // step - 1 for a, b in itertools.pairwise(candles))
        assert missing == entry["missing_candles"]


def test_raw_json_equals_normalized_csv(shared_data: Path) -> None:
    """The raw ccxt JSON gives exactly the candles of its normalized CSV."""
    from_json = list(read_candles(shared_data / "raw" / "ETH_BTC-1m.json"))
    from_csv = list(read_candles(shared_data / "ETH-BTC_1m.csv"))
    assert len(from_json) == 14_397
    assert from_json == from_csv
    assert all(type(x) is float for c in from_json for x in c[1:])
    assert count_candles(shared_data / "raw" / "ETH_BTC-1m.json") == 14_397


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("ETH-BTC_1m.csv", "copy.csv.gz"),
        ("ETH-BTC_1m.csv", "copy.csv"),  # gzip found by magic bytes despite the suffix
        ("ETH-BTC_1m.csv", "copy.data"),  # no suffix: sniffed after decompression
        ("raw/ETH_BTC-1m.json", "copy.json.gz"),
        ("raw/ETH_BTC-1m.json", "copy.data"),
    ],
)
def test_gzipped_copy_reads_identically(shared_data: Path, tmp_path: Path, source: str, name: str) -> None:
    """A gzipped copy yields the same candles as the plain file."""
    original = shared_data / source
    copy = tmp_path / name
    copy.write_bytes(gzip.compress(original.read_bytes()))
    assert list(read_candles(copy)) == list(read_candles(original))
    assert count_candles(copy) == count_candles(original)


def test_json_sniffed_without_suffix(shared_data: Path, tmp_path: Path) -> None:
    """A JSON file with an unknown suffix is recognised by its leading '['."""
    copy = tmp_path / "candles.txt"
    copy.write_bytes(b"\n  " + (shared_data / "raw" / "ETH_BTC-5m.json").read_bytes())
    assert list(read_candles(copy)) == list(read_candles(shared_data / "ETH-BTC_5m.csv"))


def test_streams_lazily(tmp_path: Path) -> None:
    """Rows before a bad line are yielded before the error is raised."""
    path = tmp_path / "c.csv"
    path.write_text(HEADER + ROW1 + ROW2 + "garbage\n")
    rows = read_candles(path)
    assert next(rows) == Candle(1640995200000, 10.0, 12.0, 9.0, 11.0, 5.0)
    assert next(rows).ts == 1640995260000
    with pytest.raises(CandleFileError):
        next(rows)


def test_tolerated_variants(tmp_path: Path) -> None:
    """CRLF endings, trailing blank lines, a missing final newline and integral float ts all read."""
    path = tmp_path / "c.csv"
    body = HEADER + ROW1 + "1640995260000.0,11,13,10,12,6\n" + ROW3.rstrip("\n")
    path.write_bytes((body.replace("\n", "\r\n") + "\r\n\r\n\n").encode())
    candles = list(read_candles(path))
    assert [c.ts for c in candles] == [1640995200000, 1640995260000, 1640995320000]
    assert type(candles[1].ts) is int
    assert candles[2] == Candle(1640995320000, 12.0, 12.5, 11.5, 12.0, 0.0)
    assert count_candles(path) == 3


BAD_CSV = [
    ("wrong header", "ts,open,high,low,close,volume\n" + ROW1, 1, "wrong header"),
    ("missing header", ROW1 + ROW2, 1, "missing header"),
    ("too few fields", HEADER + ROW1 + "1640995260000,11,13,10,12\n", 3, "expected 6 fields, got 5"),
    ("too many fields", HEADER + ROW1 + ROW2 + ROW3.rstrip() + ",1\n", 4, "expected 6 fields, got 7"),
    ("unparsable", HEADER + ROW1 + "1640995260000,11,1x3,10,12,6\n", 3, "unparsable number in field high: '1x3'"),
    ("unparsable ts", HEADER + "abc,10,12,9,11,5\n", 2, "unparsable number in field ts_ms: 'abc'"),
    ("empty field", HEADER + ROW1 + "1640995260000,11,13,,12,6\n", 3, "unparsable number in field low: ''"),
    ("float ts", HEADER + ROW1 + "1640995260000.5,11,13,10,12,6\n", 3, "timestamp not an integer: 1640995260000.5"),
    ("nan", HEADER + ROW1 + "1640995260000,11,13,10,nan,6\n", 3, "non-finite number in field close: nan"),
    ("inf", HEADER + "1640995200000,10,inf,9,11,5\n", 2, "non-finite number in field high: inf"),
    ("inf volume", HEADER + ROW1 + ROW2 + "1640995320000,12,12.5,11.5,12,inf\n", 4, "non-finite number in field volume"),
    ("zero price", HEADER + "1640995200000,0,12,0,11,5\n", 2, "price <= 0 in field open: 0.0"),
    ("negative price", HEADER + ROW1 + "1640995260000,11,13,-10,12,6\n", 3, "price <= 0 in field low: -10.0"),
    ("negative volume", HEADER + ROW1 + "1640995260000,11,13,10,12,-6\n", 3, "negative volume: -6.0"),
    ("high below low", HEADER + ROW1 + "1640995260000,11,9,13,12,6\n", 3, "high 9.0 below low 13.0"),
    ("open outside", HEADER + ROW1 + "1640995260000,14,13,10,12,6\n", 3, "open 14.0 outside [low 10.0, high 13.0]"),
    ("close outside", HEADER + ROW1 + "1640995260000,11,13,10,9.5,6\n", 3, "close 9.5 outside [low 10.0, high 13.0]"),
    ("duplicate", HEADER + ROW1 + ROW2 + ROW2, 4, "duplicate timestamp 1640995260000"),
    (
        "not ascending",
        HEADER + ROW1 + ROW3 + ROW2,
        4,
        "timestamp not ascending: previous 1640995320000, current 1640995260000",
    ),
    ("blank line inside", HEADER + ROW1 + "\n" + ROW2, 3, "blank line between candles"),
]


@pytest.mark.parametrize(("content", "line", "reason"), [c[1:] for c in BAD_CSV], ids=[c[0] for c in BAD_CSV])
def test_bad_csv(tmp_path: Path, content: str, line: int, reason: str) -> None:
    """Each kind of bad CSV raises CandleFileError naming the file, the physical line and the reason."""
    path = tmp_path / "bad.csv"
    path.write_text(content)
    err = _error(path)
    assert err.path == str(path)
    assert err.line == line
    assert reason in err.reason
    assert str(err).startswith(f"{path}: line {line}: ")


@pytest.mark.parametrize("content", ["", HEADER, HEADER + "\n\n", "\n \n"], ids=["empty", "header", "header+blank", "blank"])
def test_no_candles(tmp_path: Path, content: str) -> None:
    """Empty, blank and header-only files raise "no candles"."""
    path = tmp_path / "empty.csv"
    path.write_text(content)
    err = _error(path)
    assert (err.path, err.line, err.reason) == (str(path), None, "no candles")


def test_empty_json_array(tmp_path: Path) -> None:
    """An empty JSON array has no candles."""
    path = tmp_path / "empty.json"
    path.write_text("[]")
    assert _error(path).reason == "no candles"


def test_missing_file(tmp_path: Path) -> None:
    """A missing file raises CandleFileError "file not found", for reading and for counting."""
    path = tmp_path / "nope_1m.csv"
    err = _error(path)
    assert (err.path, err.line, err.reason) == (str(path), None, "file not found")
    with pytest.raises(CandleFileError, match="file not found"):
        count_candles(path)


@pytest.mark.parametrize("name", ["junk.csv", "junk.json", "junk.bin", "junk.csv.gz"])
def test_garbage_binary(tmp_path: Path, name: str) -> None:
    """Random non-UTF-8 bytes raise CandleFileError, never a raw decode or value error."""
    path = tmp_path / name
    path.write_bytes(bytes(range(256)) * 4 + b"\xff\xfe\n\x00\x81")
    err = _error(path)
    assert err.path == str(path)


def test_non_utf8_in_row(tmp_path: Path) -> None:
    """An undecodable byte inside a row is reported as an unparsable number on that line."""
    path = tmp_path / "bad.csv"
    path.write_bytes((HEADER + ROW1).encode() + b"1640995260000,11,13,1\xff0,12,6\n")
    err = _error(path)
    assert err.line == 3
    assert err.reason == "unparsable number in field low: '1\\xff0'"


def test_truncated_gzip(shared_data: Path, tmp_path: Path) -> None:
    """A truncated gzip stream raises CandleFileError, not EOFError."""
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(gzip.compress((shared_data / "ETH-BTC_5m.csv").read_bytes())[:50_000])
    with pytest.raises(CandleFileError, match="corrupt or unreadable"):
        for _ in read_candles(path):
            pass


GOOD_JSON_ROW = "[1640995200000, 10, 12, 9, 11, 5]"
BAD_JSON = [
    ("invalid json", "[[1640995200000, 10, 12, 9, 11, 5]", None, "invalid JSON"),
    ("not an array", '{"ts": 1}', None, "JSON top level is dict, not an array"),
    ("short row", f"[{GOOD_JSON_ROW}, [1640995260000, 11, 13, 10, 12]]", 2, "expected an array of 6 numbers"),
    ("row not array", f'[{GOOD_JSON_ROW}, "abcdef"]', 2, "expected an array of 6 numbers, got 'abcdef'"),
    ("string number", f'[{GOOD_JSON_ROW}, [1640995260000, "11", 13, 10, 12, 6]]', 2, "field open is not a number: '11'"),
    ("bool", f"[{GOOD_JSON_ROW}, [1640995260000, 11, 13, 10, 12, true]]", 2, "field volume is not a number: True"),
    ("null", "[[null, 11, 13, 10, 12, 6]]", 1, "field ts_ms is not a number: None"),
    ("float ts", f"[{GOOD_JSON_ROW}, [1640995260000.5, 11, 13, 10, 12, 6]]", 2, "timestamp not an integer"),
    ("high below low", f"[{GOOD_JSON_ROW}, [1640995260000, 11, 9, 13, 12, 6]]", 2, "high 9.0 below low 13.0"),
    ("duplicate", f"[{GOOD_JSON_ROW}, {GOOD_JSON_ROW}]", 2, "duplicate timestamp 1640995200000"),
    ("descending", f"[{GOOD_JSON_ROW}, [1640995140000, 11, 13, 10, 12, 6]]", 2, "previous 1640995200000, current 1640995140000"),
]


@pytest.mark.parametrize(("content", "row", "reason"), [c[1:] for c in BAD_JSON], ids=[c[0] for c in BAD_JSON])
def test_bad_json(tmp_path: Path, content: str, row: int | None, reason: str) -> None:
    """Each kind of bad JSON raises CandleFileError naming the file, the 1-based row and the reason."""
    path = tmp_path / "bad.json"
    path.write_text(content)
    err = _error(path)
    assert (err.path, err.line) == (str(path), row)
    assert reason in err.reason
    if row is not None:
        assert str(err).startswith(f"{path}: row {row}: ")


def test_json_integral_float_ts(tmp_path: Path) -> None:
    """A JSON timestamp written as an integral float is accepted as an int."""
    path = tmp_path / "ok.json"
    path.write_text("[[1640995200000.0, 10, 12, 9, 11, 5]]")
    (candle,) = read_candles(path)
    assert candle == Candle(1640995200000, 10.0, 12.0, 9.0, 11.0, 5.0)
    assert type(candle.ts) is int and type(candle.open) is float


@pytest.mark.parametrize(
    ("file", "expected"),
    [(f, f.rsplit("_", 1)[1].split(".")[0]) for f in CSV_FILES]
    + [
        ("raw/ETH_BTC-1m.json", "1m"),
        ("raw/ETH_BTC-5m.json", "5m"),
        ("raw/XRP_USDT_USDT-5m-futures.json", "5m"),
        ("raw/btc-perp-20211231-20220201_1m.csv", "1m"),
    ],
)
def test_infer_timeframe_from_name(shared_data: Path, file: str, expected: str) -> None:
    """The file-name token gives the timeframe of every shared file."""
    assert infer_timeframe(shared_data / file) == expected


@pytest.mark.parametrize(
    ("file", "expected"),
    [("XMR-BTC_1m.csv", "1m"), ("ETH-BTC_5m.csv", "5m"), ("BTC-USD_1h.csv", "1h"), ("ORCL-USD_1d.csv", "1d")],
)
def test_infer_timeframe_from_data(shared_data: Path, tmp_path: Path, file: str, expected: str) -> None:
    """Without a name token, the smallest step between rows gives the timeframe (gaps do not matter)."""
    copy = tmp_path / "candles.csv"
    copy.write_bytes((shared_data / file).read_bytes())
    assert infer_timeframe(copy) == expected


def test_infer_timeframe_unknown_token_falls_back_to_data(shared_data: Path, tmp_path: Path) -> None:
    """A token that is not a known timeframe (7m) is ignored in favour of the data."""
    copy = tmp_path / "ETH-BTC_7m.csv"
    copy.write_bytes((shared_data / "ETH-BTC_5m.csv").read_bytes())
    assert infer_timeframe(copy) == "5m"


def test_infer_timeframe_last_token_wins(shared_data: Path, tmp_path: Path) -> None:
    """With several tokens, the last one names the contents (ETH-BTC_1m-to-5m: 5m)."""
    copy = tmp_path / "ETH-BTC_1m-to-5m.csv"
    copy.write_bytes((shared_data / "ETH-BTC_5m.csv").read_bytes())
    assert infer_timeframe(copy) == "5m"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (HEADER + ROW1, "fewer than 2 candles"),
        (HEADER + "1640995200000,10,12,9,11,5\n1640995270000,11,13,10,12,6\n", "70000 ms"),
    ],
    ids=["one row", "odd step"],
)
def test_infer_timeframe_fails(tmp_path: Path, content: str, reason: str) -> None:
    """No token and no usable step raises CandleFileError naming the file."""
    path = tmp_path / "candles.csv"
    path.write_text(content)
    with pytest.raises(CandleFileError, match=reason) as info:
        infer_timeframe(path)
    assert info.value.path == str(path)


def test_candle_values_exact(shared_data: Path) -> None:
    """Numbers are parsed exactly as written (first BTC-PERP row)."""
    first = next(read_candles(shared_data / "BTC-USD-PERP_1m.csv"))
    assert first == Candle(1640991600000, 46319.0, 46385.0, 46319.0, 46377.0, 2300413.7295)
