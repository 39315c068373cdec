"""Streaming reader for recorded candle files: CSV or ccxt-style JSON, either optionally gzipped."""
from __future__ import annotations

import functools
import gzip
import io
import itertools
import math
import operator
import os
import re
import zlib
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

import orjson

from bot.candles.window import TimeWindow
from bot.errors import CandleFileError
from bot.ohlcv import MAX_VALUE, TIMEFRAME_MS, Candle, timeframe_of_ms

HEADER = b"ts_ms,open,high,low,close,volume"
FIELDS = ("ts_ms", "open", "high", "low", "close", "volume")

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
_INF = math.inf
# The bounds of a read without a window: any timestamp that fits in 64 bits.
_NO_WINDOW = TimeWindow(-(2**63), 2**63 - 1, "the 64-bit range")
# How far back from the end of a file its last line is looked for before giving up.
_TAIL_LIMIT = 1 << 20
# How far back from its end a plain CSV file is read for a line that starts with a timestamp (about 100 rows).
_STEP_BACK = 1 << 13
# How many rows back from the end of a JSON array one that starts with a timestamp is looked for.
_STEP_BACK_ROWS = 100
_INFER_ROWS = 1000
# A timeframe token stands alone between separators: `_1m.csv`, `-5m.json`, `-5m-futures`.
_TF_TOKEN = re.compile(r"(?<![0-9A-Za-z])(\d+[mhd])(?![0-9A-Za-z])")
_NUMBER_TYPES = frozenset((int, float))
# Skips NamedTuple.__new__, a Python-level function, on the hot path.
_new_tuple = tuple.__new__

PathArg = str | os.PathLike[str]


def read_candles(path: PathArg, window: TimeWindow | None = None) -> Generator[Candle, None, None]:
    """Stream the candles of a recorded file, validating every row; raises CandleFileError.

    With a window, a timestamp outside it is refused like any other bad value, before the
    candle is yielded.
    """
    name = str(path)
    bounds = window or _NO_WINDOW
    with _open(path) as stream:
        if _kind(path, stream) == "json":
            yield from _read_json(name, stream, bounds)
        else:
            yield from _read_csv(name, stream, bounds)


def file_kind(path: PathArg) -> str:
    """"csv" or "json": how a file's candles are numbered in messages (CSV by line, JSON by row)."""
    with _open(path) as stream:
        return _kind(path, stream)


def last_timestamp(path: PathArg) -> int | None:
    """The timestamp of a plain CSV file's last row, found by reading back from the end.

    Lines near the end that do not start with a timestamp are stepped over (the full read
    reports them, with their line numbers), as far back as _STEP_BACK bytes: a row after the
    window is found even when garbage follows it. None when that takes more than reading the
    tail: a gzipped or JSON file, no timestamp in those last bytes, or a file without rows.
    """
    try:
        raw = open(path, "rb")  # noqa: SIM115  only open's own OSError means None; `with raw` below closes it
    except OSError:
        return None
    with raw:
        if raw.peek(2)[:2] == _GZIP_MAGIC or _kind(path, raw) != "csv":
            return None
        lines = _tail_lines(raw)
    for line in lines:
        if line.rstrip(b"\r\n") == HEADER:
            return None
        ts = _row_ts(line)
        if ts is not None:
            return ts
    return None


def _tail_lines(raw: BinaryIO) -> list[bytes]:
    """The whole lines in the last _STEP_BACK bytes before a seekable file's trailing blank
    space, last first; none when that space is longer than _TAIL_LIMIT."""
    end = raw.seek(0, os.SEEK_END)
    size = min(end, 1 << 16)
    while True:
        raw.seek(end - size)
        text = raw.read(size).rstrip()
        if len(text) > _STEP_BACK or size == end:
            break
        if size >= _TAIL_LIMIT:
            if not text:
                return []
            break
        size = min(end, size * 4)
    lines = text[-_STEP_BACK:].split(b"\n")
    if size < end or len(text) > _STEP_BACK:
        del lines[0]  # the read may have started inside it
    return lines[::-1]


def _row_ts(line: bytes) -> int | None:
    """The timestamp a CSV line starts with (an integer, or an integral float), or None."""
    text = line.split(b",", 1)[0]
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and value.is_integer() else None


def count_candles(path: PathArg) -> int:
    """Count data rows quickly for a progress bar; does not validate them."""
    with _open(path) as stream:
        if _kind(path, stream) == "json":
            return len(_load_json(str(path), stream))
        newlines = 0
        last = b""
        while chunk := stream.read(_CHUNK):
            newlines += chunk.count(b"\n")
            last = chunk
        content = last.rstrip()
        # Trailing blank lines and a missing final newline would both skew a bare newline count.
        lines = newlines - last.count(b"\n", len(content)) + (1 if content else 0)
        return max(lines - 1, 0)


def infer_timeframe(path: PathArg) -> str:
    """Return a file's timeframe from a name token like `_1m`/`-5m`, else from its first rows."""
    for token in reversed(_TF_TOKEN.findall(os.path.basename(os.fspath(path)))):
        if token in TIMEFRAME_MS:
            return str(token)
    rows = read_candles(path)
    try:
        stamps = [candle.ts for candle in itertools.islice(rows, _INFER_ROWS)]
    finally:
        rows.close()
    if len(stamps) < 2:
        raise CandleFileError(
            str(path), None, "cannot infer timeframe: no token in the file name and fewer than 2 candles"
        )
    step = min(b - a for a, b in itertools.pairwise(stamps))
    timeframe = timeframe_of_ms(step)
    if timeframe is None:
        raise CandleFileError(
            str(path), None,
            f"cannot infer timeframe: no token in the file name and the smallest step, {step} ms, "
            "is not a known timeframe",
        )
    return timeframe


@contextmanager
def _open(path: PathArg) -> Iterator[io.BufferedReader]:
    """Open a file for binary reading, decompressing gzip by magic bytes; I/O errors become CandleFileError."""
    name = str(path)
    try:
        raw = open(path, "rb")  # noqa: SIM115  open's errors are told apart from reading's; closed in the finally below
    except FileNotFoundError:
        raise CandleFileError(name, None, "file not found") from None
    except OSError as exc:
        raise CandleFileError(name, None, f"cannot open: {exc.strerror or exc}") from None
    gz: gzip.GzipFile | None = None
    try:
        if raw.peek(2)[:2] == _GZIP_MAGIC:
            gz = gzip.GzipFile(fileobj=raw, mode="rb")
            # GzipFile's own readline is Python code; a C BufferedReader on top doubles line speed.
            yield io.BufferedReader(gz, _CHUNK)
        else:
            yield raw
    except (OSError, EOFError, zlib.error) as exc:
        raise CandleFileError(name, None, f"corrupt or unreadable data: {exc}") from None
    finally:
        if gz is not None:
            gz.close()
        raw.close()


def _kind(path: PathArg, stream: io.BufferedReader) -> str:
    """Return "csv" or "json": by suffix (optionally before .gz), else by the first non-space byte."""
    name = os.fspath(path).lower()
    name = name.removesuffix(".gz")
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(".json"):
        return "json"
    head = stream.peek(4096).lstrip()
    return "json" if head[:1] == b"[" else "csv"


def _read_csv(name: str, stream: BinaryIO, window: TimeWindow, block_size: int = 1 << 16) -> Iterator[Candle]:
    """Yield validated candles from a CSV stream positioned at its header.

    Rows are parsed a block at a time, in C (`_parse_block`); a block with
    anything unusual in it (a blank line, a float timestamp, a bad value) is read again line by
    line (`_parse_lines`), which names the line at fault.
    """
    first = stream.readline()
    if first.rstrip(b"\r\n") != HEADER:
        if not first.strip() and not _rest_has_data(stream):
            raise CandleFileError(name, None, "no candles")
        raise CandleFileError(name, 1, _header_problem(first))
    # Just before the earliest allowed time: the "ascending" comparison also enforces the lower bound.
    start = prev = window.earliest - 1
    lineno = 2  # of the block's first line
    tail = b""
    while True:
        data = stream.read(block_size)
        if data:
            data = tail + data
            cut = data.rfind(b"\n") + 1
            if not cut:  # no whole line yet
                tail = data
                continue
            block = data[: cut - 1]  # b"" is one blank line
            tail = data[cut:]
            whole = True
        else:
            block, tail = tail, b""
            whole = bool(block)  # a last line without its newline
        if whole:
            candles = _parse_block(block, prev, window.latest)
            if candles is None:
                # Line by line, each candle handed on before the next line is read: one before a
                # bad line is delivered, as from a plain stream.
                prev, ended = yield from _parse_lines(name, block.split(b"\n"), lineno, prev, window, tail, stream)
                if ended:
                    break
            else:
                prev = candles[-1][0]
                yield from candles
            lineno += block.count(b"\n") + 1
        if not data:
            break
    if prev == start:
        raise CandleFileError(name, None, "no candles")


_new_candle = functools.partial(_new_tuple, Candle)


def _parse_block(lines: bytes, prev: int, latest: int) -> list[Candle] | None:
    """The candles of a block of whole lines when every one is a plain valid row after `prev`, else None (nothing raised).

    The block is read as a JSON array of rows, which parses numbers in C; a JSON number is
    correctly rounded, as `float` is. Anything JSON or the checks below refuse (a blank line, a
    float timestamp, `nan`, a quoted field...) is left to the line by line reader.
    """
    try:
        rows = orjson.loads(b"[[" + lines.replace(b"\n", b"],[") + b"]]")
    except orjson.JSONDecodeError:
        return None
    if set(map(len, rows)) != {6}:
        return None
    ts, o, h, lo, cl, v = zip(*rows)
    if set(map(type, ts)) != {int}:
        return None
    # Numbers only: float() would also take a quoted "100.5" or true, which the line reader refuses.
    if not all(set(map(type, column)) <= _NUMBER_TYPES for column in (o, h, lo, cl, v)):
        return None
    # As float() of the text would: an integral price such as 30000 is a float too.
    o, h, lo, cl, v = (tuple(map(float, column)) for column in (o, h, lo, cl, v))
    n = len(ts)
    zero, top = itertools.repeat(0.0, n), itertools.repeat(MAX_VALUE, n)
    # The row checks of the line reader, a column at a time; a nan fails every comparison.
    if not (
        prev < ts[0] and ts[-1] <= latest and all(map(operator.lt, ts, itertools.islice(ts, 1, None)))
        and all(map(operator.lt, zero, lo)) and all(map(operator.le, lo, o)) and all(map(operator.le, o, h))
        and all(map(operator.le, h, top)) and all(map(operator.le, lo, cl)) and all(map(operator.le, cl, h))
        and all(map(operator.le, itertools.repeat(0.0, n), v)) and all(map(operator.le, v, itertools.repeat(MAX_VALUE, n)))
    ):
        return None
    return list(map(_new_candle, zip(ts, o, h, lo, cl, v)))


def _parse_lines(
    name: str, lines: list[bytes], lineno: int, prev: int, window: TimeWindow, tail: bytes, stream: BinaryIO
) -> Generator[Candle, None, tuple[int, bool]]:
    """Yield a block's candles line by line, raising CandleFileError at the first bad line.

    Returns the last timestamp, and True when a blank line ended the file.
    """
    latest, top = window.latest, MAX_VALUE
    for index, line in enumerate(lines):
        try:
            a, b, c, d, e, f = line.split(b",")
            ts = int(a)
            o = float(b)
            h = float(c)
            lo = float(d)
            cl = float(e)
            v = float(f)
        except ValueError:
            if not line.strip():
                if any(rest.strip() for rest in lines[index + 1 :]) or tail.strip() or _rest_has_data(stream):
                    raise CandleFileError(name, lineno + index, "blank line between candles") from None
                return prev, True
            # Rare path: an integral float timestamp such as 1640991600000.0, or a real error.
            candle = _parse_csv_row(name, lineno + index, line, prev, window)
            prev = candle[0]
            yield candle
            continue
        # One chained comparison rejects nan (every comparison is false), inf, values above the
        # cap, bad OHLC, order and times past the window.
        if prev < ts <= latest and 0.0 < lo <= o <= h <= top and lo <= cl <= h and 0.0 <= v <= top:
            prev = ts
            yield _new_tuple(Candle, (ts, o, h, lo, cl, v))
        else:
            candle = _check(name, lineno + index, "line", ts, (o, h, lo, cl, v), prev, window)
            prev = ts
            yield candle
    return prev, False


def _rest_has_data(stream: BinaryIO) -> bool:
    """Consume the rest of the stream and say whether any non-blank line remains."""
    return any(line.strip() for line in stream)


def _header_problem(first: bytes) -> str:
    """Describe why the first line is not the expected header."""
    text = first.rstrip(b"\r\n").decode("utf-8", "backslashreplace")
    expected = HEADER.decode()
    if first[:1].isdigit():
        return f"missing header: expected {expected!r}, line 1 looks like data: {text[:80]!r}"
    return f"wrong header: expected {expected!r}, got {text[:80]!r}"


def _parse_csv_row(name: str, lineno: int, line: bytes, prev: int, window: TimeWindow) -> Candle:
    """Parse one CSV row carefully, raising CandleFileError with the exact problem."""
    fields = line.rstrip(b"\r\n").split(b",")
    if len(fields) != len(FIELDS):
        raise CandleFileError(name, lineno, f"expected {len(FIELDS)} fields, got {len(fields)}")
    values: list[float] = []
    for field, raw in zip(FIELDS, fields):
        try:
            values.append(float(raw))
        except ValueError:
            text = raw.decode("utf-8", "backslashreplace").strip()
            raise CandleFileError(name, lineno, f"unparsable number in field {field}: '{text}'") from None
    try:
        ts = int(fields[0])
    except ValueError:
        text = fields[0].decode("utf-8", "backslashreplace").strip()
        ts = _integral_ts(name, lineno, "line", values[0], text)
    return _check(name, lineno, "line", ts, tuple(values[1:]), prev, window)


def _integral_ts(name: str, where: int, unit: str, value: float, text: str) -> int:
    """Accept a float timestamp only if it is finite and integral."""
    if not math.isfinite(value):
        raise CandleFileError(name, where, f"non-finite number in field ts_ms: {text}", unit)
    if not value.is_integer():
        raise CandleFileError(name, where, f"timestamp not an integer: {text}", unit)
    return int(value)


def _check(
    name: str, where: int, unit: str, ts: int, ohlcv: tuple[float, ...], prev: int, window: TimeWindow
) -> Candle:
    """Validate parsed values, raising CandleFileError naming the first problem; return the candle."""
    floats: list[float] = []
    for field, value in zip(FIELDS[1:], ohlcv):
        try:
            number = float(value)
        except OverflowError:  # a JSON integer too large for a float
            number = _INF
        if not math.isfinite(number):
            raise CandleFileError(name, where, f"non-finite number in field {field}: {_short(value)}", unit)
        floats.append(number)
    o, h, lo, cl, v = floats
    for field, value in zip(FIELDS[1:5], floats):
        if value <= 0:
            raise CandleFileError(name, where, f"price <= 0 in field {field}: {value}", unit)
        if value > MAX_VALUE:
            raise CandleFileError(name, where, f"price above {MAX_VALUE:g} in field {field}: {value}", unit)
    if v < 0:
        raise CandleFileError(name, where, f"negative volume: {v}", unit)
    if v > MAX_VALUE:
        raise CandleFileError(name, where, f"volume above {MAX_VALUE:g}: {v}", unit)
    if h < lo:
        raise CandleFileError(name, where, f"high {h} below low {lo}", unit)
    if not lo <= o <= h:
        raise CandleFileError(name, where, f"open {o} outside [low {lo}, high {h}]", unit)
    if not lo <= cl <= h:
        raise CandleFileError(name, where, f"close {cl} outside [low {lo}, high {h}]", unit)
    outside = window.problem(ts)
    if outside is not None:
        raise CandleFileError(name, where, outside, unit)
    if ts == prev:
        raise CandleFileError(name, where, f"duplicate timestamp {ts}", unit)
    if ts < prev:
        raise CandleFileError(
            name, where, f"timestamp not ascending: previous {prev}, current {ts}", unit
        )
    return _new_tuple(Candle, (ts, o, h, lo, cl, v))


def _load_json(name: str, stream: BinaryIO) -> list[Any]:
    """Load a whole JSON candle array."""
    try:
        rows = orjson.loads(stream.read())
    except orjson.JSONDecodeError as exc:
        raise CandleFileError(name, None, f"invalid JSON: {exc}") from None
    if not isinstance(rows, list):
        raise CandleFileError(name, None, f"JSON top level is {type(rows).__name__}, not an array")
    return rows


def _read_json(name: str, stream: BinaryIO, window: TimeWindow) -> Iterator[Candle]:
    """Yield validated candles from a ccxt-style `[[ts, o, h, l, c, v], ...]` stream."""
    rows = _load_json(name, stream)
    if not rows:
        raise CandleFileError(name, None, "no candles")
    # The whole array is in memory already: a last row past the window is refused before the
    # first candle goes out, as the tail of a plain CSV file is.
    for index in range(len(rows), max(len(rows) - _STEP_BACK_ROWS, 0), -1):
        last = _json_row_ts(rows[index - 1])
        if last is not None:
            if last > window.latest:
                raise CandleFileError(name, index, window.problem(last) or "", "row")
            break
    prev = window.earliest - 1
    for index, row in enumerate(rows, 1):
        if type(row) is not list or len(row) != len(FIELDS):
            raise CandleFileError(
                name, index, f"expected an array of {len(FIELDS)} numbers, got {_short(row)}", "row"
            )
        ts = row[0]
        if type(ts) is not int or not _NUMBER_TYPES.issuperset(map(type, row)):
            # type() checks, not isinstance: JSON true/false would otherwise pass as 1/0.
            ts = _json_ts(name, index, row)
        candle = _check(name, index, "row", ts, tuple(row[1:]), prev, window)
        prev = ts
        yield candle


def _json_row_ts(row: Any) -> int | None:
    """The timestamp a JSON row starts with (an integer, or an integral float; never a bool), or None."""
    if type(row) is not list or not row:
        return None
    ts = row[0]
    if type(ts) is int:
        return ts
    if type(ts) is float and math.isfinite(ts) and ts.is_integer():
        return int(ts)
    return None


def _json_ts(name: str, index: int, row: list[Any]) -> int:
    """Check the value types of a JSON row and return its integer timestamp."""
    for field, value in zip(FIELDS, row):
        if type(value) not in _NUMBER_TYPES:
            raise CandleFileError(name, index, f"field {field} is not a number: {_short(value)}", "row")
    ts = row[0]
    return ts if type(ts) is int else _integral_ts(name, index, "row", ts, repr(ts))


def _short(value: Any) -> str:
    """A repr clipped for error messages."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
