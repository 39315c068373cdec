"""The CSV reader's block parser gives exactly what reading line by line gives: the same candles, of the
same types, and the same error on the same line, whatever the rows and wherever the blocks are cut."""
from __future__ import annotations

import io
from collections.abc import Generator
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.candles.reader import HEADER, _parse_lines, _read_csv, read_candles
from bot.candles.window import TimeWindow
from bot.errors import CandleFileError
from bot.ohlcv import Candle

WINDOW = TimeWindow(1_000, 10**13, "the test's window")

# Fields as recorded files really have them, and as they go wrong.
_PRICE_TEXT = st.sampled_from(
    ["100.5", "101", "99.25", "100.5e0", "1.005E2", " 100.5", "100.5 ", "+100.5", ".5", "5.", "nan", "inf", "-1", "0",
     "1e400", '"100.5"', "true", "null", "", "1_00.5", "100.5\r"]
)
_TS_TEXT = st.sampled_from(["{ts}", "{ts}", "{ts}", "{ts}.0", "{ts}.5", " {ts}", "{ts}e0", "-{ts}", "{ts}_0"])


@st.composite
def _rows(draw: st.DrawFn) -> list[str]:
    rows = []
    ts = 60_000
    for _ in range(draw(st.integers(0, 40))):
        kind = draw(st.sampled_from(["good", "good", "good", "good", "good", "odd", "same", "blank", "fields", "back"]))
        ts += draw(st.sampled_from([60_000, 60_000, 120_000, 0]))
        if kind == "good":
            low = draw(st.integers(90, 100))
            high = low + draw(st.integers(0, 20))
            rows.append(f"{ts},{low + (high - low) / 2},{high},{low},{high},{draw(st.integers(0, 500)) / 4}")
        elif kind == "odd":
            fields = [draw(_TS_TEXT).format(ts=ts)] + [draw(_PRICE_TEXT) for _ in range(5)]
            rows.append(",".join(fields))
        elif kind == "same":
            # Every price the same text: odd forms a JSON reader takes (true, "100.5") pass the price checks.
            rows.append(",".join([str(ts)] + [draw(_PRICE_TEXT)] * 5))
        elif kind == "blank":
            rows.append(draw(st.sampled_from(["", " ", "\r"])))
        elif kind == "fields":
            rows.append(",".join([str(ts)] + ["100.0"] * draw(st.sampled_from([3, 4, 6]))))
        else:
            rows.append(f"{ts - 180_000},100.0,100.0,100.0,100.0,1.0")
    return rows


Outcome = tuple[list[tuple[tuple[type, object], ...]], str | None]


def _outcome(candles: list[Candle], error: CandleFileError | None) -> Outcome:
    """Each candle's values with their types (a price 101 must be read as the float 101.0), and the error's text."""
    typed: list[tuple[tuple[type, object], ...]] = [tuple((type(value), value) for value in candle) for candle in candles]
    return typed, None if error is None else str(error)


def _read_blocks(data: bytes, block_size: int) -> Outcome:
    candles: list[Candle] = []
    try:
        for candle in _read_csv("f.csv", io.BytesIO(data), WINDOW, block_size):
            candles.append(candle)  # noqa: PERF402  the candles before an error count too
    except CandleFileError as exc:
        return _outcome(candles, exc)
    return _outcome(candles, None)


def _read_line_by_line(data: bytes) -> Outcome:
    """The reference: every line through the line reader, as one block."""
    body = data.split(b"\n", 1)[1]
    lines = body.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the newline ending the last line
    candles: list[Candle] = []
    try:
        prev, _ = _drain(_parse_lines("f.csv", lines, 2, WINDOW.earliest - 1, WINDOW, b"", io.BytesIO(b"")), candles)
        if prev == WINDOW.earliest - 1:
            raise CandleFileError("f.csv", None, "no candles")
    except CandleFileError as exc:
        return _outcome(candles, exc)
    return _outcome(candles, None)


def _drain(lines: Generator[Candle, None, tuple[int, bool]], out: list[Candle]) -> tuple[int, bool]:
    """Collect what a line reader yields into `out` (kept when it raises) and return what it returns."""
    while True:
        try:
            out.append(next(lines))
        except StopIteration as stop:
            result: tuple[int, bool] = stop.value
            return result


@settings(max_examples=400, deadline=None)
@given(rows=_rows(), block_size=st.integers(1, 300), crlf=st.booleans(), final_newline=st.booleans())
def test_blocks_read_as_lines_do(rows: list[str], block_size: int, crlf: bool, final_newline: bool) -> None:
    end = "\r\n" if crlf else "\n"
    text = HEADER.decode() + end + end.join(rows) + (end if final_newline and rows else "")
    data = text.encode()
    assert _read_blocks(data, block_size) == _read_line_by_line(data)


def test_a_bad_line_is_named_after_the_good_ones_before_it_were_delivered(tmp_path: Path) -> None:
    rows = [f"{60_000 * (i + 1)},100.0,101.0,99.0,100.5,1.0" for i in range(5_000)]
    rows[3_000] = f"{60_000 * 3_001},100.0,101.0,99.0,nan,1.0"
    path = tmp_path / "bad.csv"
    path.write_text(HEADER.decode() + "\n" + "\n".join(rows) + "\n")
    delivered = []
    reader = read_candles(path, WINDOW)
    try:
        for candle in reader:
            delivered.append(candle)  # noqa: PERF402  the candles before the error count too
    except CandleFileError as exc:
        assert exc.line == 3_002 and "non-finite number in field close" in str(exc)
    else:
        raise AssertionError("the nan was read")
    assert len(delivered) == 3_000 and delivered[-1].ts == 60_000 * 3_000


def test_a_recorded_file_reads_to_floats_and_ints_as_before() -> None:
    path = Path(__file__).resolve().parents[3] / "shared" / "data"
    csv_file = next(p for p in sorted(path.rglob("*.csv")) if p.stat().st_size > 200_000)
    candles = list(read_candles(csv_file))
    lines = csv_file.read_bytes().split(b"\n", 1)[1].split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    reference = list(_parse_lines(str(csv_file), lines, 2, -(2**63), TimeWindow(-(2**63), 2**63 - 1, "all"), b"", io.BytesIO(b"")))
    assert candles == reference and len(candles) > 1_000
    assert all(type(c.ts) is int and all(type(x) is float for x in c[1:]) for c in candles)
