"""Reading a replay's output folder (report.json, equity.csv, trades.csv) with errors that name the file and line or field."""
from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from bot.config.currency import quote_currency
from bot.errors import RunFileError
from bot.replay.equity import EQUITY_COLUMNS
from bot.replay.event_log import TRADE_COLUMNS


class _Facts(BaseModel):
    # report.json gains fields over time: read what the page needs, ignore the rest.
    model_config = ConfigDict(extra="ignore", frozen=True)


class StrategyFacts(_Facts):
    """One strategy's entry in report.json, as far as the page uses it."""

    state: str
    last_error: str | None = None
    symbol: str
    currency: str = ""
    timeframe: str
    trades: int
    starting_balance: float
    final_equity: float
    return_pct: float
    net_pnl: float
    fees: float
    max_drawdown: float
    max_drawdown_pct: float
    open_positions: int

    @model_validator(mode="after")
    def _currency_of_symbol(self) -> StrategyFacts:
        # A report.json from before `currency` was written: the symbol's quote currency.
        if not self.currency:
            object.__setattr__(self, "currency", quote_currency(self.symbol))
        return self


class ReplayFacts(_Facts):
    """The replay section of report.json."""

    status: str
    error: str | None = None
    candles: int
    sources: list[str] = []
    equity_interval_ms: int | None = None


class ReportFile(_Facts):
    """report.json: the replay facts and every strategy's results."""

    replay: ReplayFacts
    strategies: dict[str, StrategyFacts]


@dataclass(frozen=True, slots=True)
class Trade:
    """One closed trade from trades.csv (times in epoch ms)."""

    symbol: str
    side: str
    quantity: float
    entry_ms: int
    entry_price: float
    exit_ms: int
    exit_price: float
    pnl: float
    fees: float
    exit_reason: str
    position_id: str


@dataclass(slots=True)
class EquitySeries:
    """One strategy's equity samples from equity.csv, oldest first."""

    ts: list[int] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)
    open_positions: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class StrategyRun:
    """Everything the run folder holds about one strategy."""

    strategy_id: str
    facts: StrategyFacts
    equity: EquitySeries
    trades: list[Trade]


@dataclass(frozen=True, slots=True)
class RunData:
    """A replay run folder, read and checked."""

    run_dir: Path
    replay: ReplayFacts
    strategies: dict[str, StrategyRun]


def load_run(run_dir: Path) -> RunData:
    """Read and check report.json, equity.csv and trades.csv of a replay output folder."""
    if not run_dir.is_dir():
        raise RunFileError(str(run_dir), None, "not a folder (expected a replay output folder holding report.json, equity.csv, trades.csv)")
    report = _read_report(run_dir / "report.json")
    ids = list(report.strategies)
    series = _read_equity(run_dir / "equity.csv", ids)
    trades = _read_trades(run_dir / "trades.csv", ids)
    strategies = {
        sid: StrategyRun(sid, report.strategies[sid], series[sid], trades[sid]) for sid in ids
    }
    for run in strategies.values():
        if not run.equity.ts:
            raise RunFileError(str(run_dir / "equity.csv"), None, f"no rows for strategy {run.strategy_id!r}")
    return RunData(run_dir, report.replay, strategies)


def _read_report(path: Path) -> ReportFile:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RunFileError(str(path), None, "file not found") from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RunFileError(str(path), f"line {exc.lineno}", f"not valid JSON: {exc.msg}") from None
    try:
        return ReportFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "<file>"
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise RunFileError(str(path), f"field {where}", f"{first['msg']}{more}") from None


def _rows(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, list[str]]]:
    # Yields (line number, fields); the header must be exactly the columns the replay writes.
    try:
        handle = path.open(newline="", encoding="utf-8")
    except FileNotFoundError:
        raise RunFileError(str(path), None, "file not found (a replay writes it; rerun `bot replay` to make it)") from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None or tuple(header) != columns:
                raise RunFileError(str(path), "line 1", f"header must be {','.join(columns)}")
            for fields in reader:
                if len(fields) != len(columns):
                    raise RunFileError(str(path), f"line {reader.line_num}", f"{len(fields)} fields, expected {len(columns)}")
                yield reader.line_num, fields
        except csv.Error as exc:
            raise RunFileError(str(path), f"line {reader.line_num}", f"unreadable: {exc}") from None
        except UnicodeDecodeError as exc:
            raise RunFileError(str(path), f"after line {reader.line_num}", f"not UTF-8 text: {exc.reason}") from None


def _number(path: Path, line: int, column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise RunFileError(str(path), f"line {line}", f"{column}: not a number: {text!r}") from None
    if not math.isfinite(value):
        raise RunFileError(str(path), f"line {line}", f"{column}: not a finite number: {text!r}")
    return value


def _integer(path: Path, line: int, column: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise RunFileError(str(path), f"line {line}", f"{column}: not an integer: {text!r}") from None


def _time(path: Path, line: int, column: str, text: str) -> int:
    try:
        moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise RunFileError(str(path), f"line {line}", f"{column}: not a UTC time like 2022-01-01T00:00:00Z: {text!r}") from None
    return int(moment.timestamp()) * 1000


def _known(path: Path, line: int, sid: str, ids: list[str]) -> None:
    if sid not in ids:
        raise RunFileError(str(path), f"line {line}", f"strategy_id: {sid!r} is not in report.json")


def _read_equity(path: Path, ids: list[str]) -> dict[str, EquitySeries]:
    series = {sid: EquitySeries() for sid in ids}
    for line, (ts_text, sid, equity, cash, unrealised, open_positions) in _rows(path, EQUITY_COLUMNS):
        _known(path, line, sid, ids)
        ts = _integer(path, line, "ts_ms", ts_text)
        one = series[sid]
        if one.ts and ts <= one.ts[-1]:
            raise RunFileError(str(path), f"line {line}", f"ts_ms: {ts} is not after the previous row of {sid!r} ({one.ts[-1]})")
        _number(path, line, "cash", cash)
        _number(path, line, "unrealised", unrealised)
        one.ts.append(ts)
        one.equity.append(_number(path, line, "equity", equity))
        one.open_positions.append(_integer(path, line, "open_positions", open_positions))
    return series


def _read_trades(path: Path, ids: list[str]) -> dict[str, list[Trade]]:
    trades: dict[str, list[Trade]] = {sid: [] for sid in ids}
    for line, fields in _rows(path, TRADE_COLUMNS):
        row = dict(zip(TRADE_COLUMNS, fields))
        _known(path, line, row["strategy_id"], ids)
        trade = Trade(
            symbol=row["symbol"],
            side=row["side"],
            quantity=_number(path, line, "quantity", row["quantity"]),
            entry_ms=_time(path, line, "entry_time", row["entry_time"]),
            entry_price=_number(path, line, "entry_price", row["entry_price"]),
            exit_ms=_time(path, line, "exit_time", row["exit_time"]),
            exit_price=_number(path, line, "exit_price", row["exit_price"]),
            pnl=_number(path, line, "pnl", row["pnl"]),
            fees=_number(path, line, "fees", row["fees"]),
            exit_reason=row["exit_reason"],
            position_id=row["position_id"],
        )
        if trade.exit_ms < trade.entry_ms:
            raise RunFileError(str(path), f"line {line}", "exit_time is before entry_time")
        trades[row["strategy_id"]].append(trade)
    return trades
