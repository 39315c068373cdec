"""The replay's equity series: the sampling grid, the state each row holds, and a real replay's equity.csv."""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import anyio
import orjson

from bot.events import PortfolioSnapshot
from bot.kernel.replay import build_replay
from bot.ohlcv import Candle
from bot.replay.equity import (
    EQUITY_COLUMNS,
    HOUR_MS,
    EquitySampler,
    sampling_interval_ms,
)
from bot.replay.sources import resolve_sources
from bot.strategy.config_load import load_config
from tests.report.builders import write_replay_config

T0 = 1_640_995_200_000  # 2022-01-01T00:00Z, on the hour
MIN = 60_000


@dataclass
class _Portfolio:
    equity: float = 100.0

    def record(self) -> PortfolioSnapshot:
        # A flat book: all of the equity is cash.
        return PortfolioSnapshot(100.0, self.equity, self.equity, 0.0, 0.0, 0.0, 0.0, self.equity, 0.0, 0.0)


@dataclass
class _Positions:
    positions: dict[str, object] = field(default_factory=dict)


@dataclass
class _Strategy:
    strategy_id: str
    portfolio: _Portfolio = field(default_factory=_Portfolio)
    positions: _Positions = field(default_factory=_Positions)


def _rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


def _candle(ts: int, close: float) -> Candle:
    return Candle(ts, close, close, close, close, 1.0)


def test_rows_at_start_every_boundary_crossed_and_end(tmp_path: Path) -> None:
    a, b = _Strategy("a"), _Strategy("b")
    sampler = EquitySampler(tmp_path / "equity.csv", {"X": MIN}, HOUR_MS)
    sampler.start([a, b], T0 + 30 * MIN)
    # Minute candles up to the 1h close, then a gap of more than two hours.
    stream = [("X", _candle(T0 + i * MIN, 100.0 + i)) for i in range(30, 60)] + [("X", _candle(T0 + 190 * MIN, 500.0))]
    for symbol, candle in sampler.sampled(iter(stream)):
        a.portfolio.equity = candle.close  # what an orchestrator would have marked on this candle
        b.positions.positions = {"p": object()}
    sampler.finish(T0 + 191 * MIN)
    sampler.close()
    rows = _rows(tmp_path / "equity.csv")
    assert tuple(rows[0]) == EQUITY_COLUMNS
    got = [(int(r[0]), r[1], float(r[2]), int(r[5])) for r in rows[1:]]
    assert got == [
        (T0 + 30 * MIN, "a", 100.0, 0),
        (T0 + 30 * MIN, "b", 100.0, 0),
        # At 01:00 the candle closing then (open 00:59, close 159) has been seen, the later one not.
        (T0 + HOUR_MS, "a", 159.0, 0),
        (T0 + HOUR_MS, "b", 100.0, 1),
        # The gap: nothing happened, each skipped boundary repeats the state.
        (T0 + 2 * HOUR_MS, "a", 159.0, 0),
        (T0 + 2 * HOUR_MS, "b", 100.0, 1),
        (T0 + 3 * HOUR_MS, "a", 159.0, 0),
        (T0 + 3 * HOUR_MS, "b", 100.0, 1),
        (T0 + 191 * MIN, "a", 500.0, 0),
        (T0 + 191 * MIN, "b", 100.0, 1),
    ]


def test_a_boundary_row_follows_every_symbol_closing_at_that_boundary(tmp_path: Path) -> None:
    a = _Strategy("a")
    sampler = EquitySampler(tmp_path / "equity.csv", {"X": MIN, "Y": 5 * MIN}, HOUR_MS)
    sampler.start([a], T0)
    # Both close at 01:00: X's 00:59 minute and Y's 00:55 five-minute candle; then X's next minute.
    stream = [("X", _candle(T0 + 59 * MIN, 1.0)), ("Y", _candle(T0 + 55 * MIN, 2.0)), ("X", _candle(T0 + 60 * MIN, 3.0))]
    for _, candle in sampler.sampled(iter(stream)):
        a.portfolio.equity = candle.close
    sampler.finish(T0 + 61 * MIN)
    sampler.close()
    got = [(int(r[0]), float(r[2])) for r in _rows(tmp_path / "equity.csv")[1:]]
    assert got == [(T0, 100.0), (T0 + HOUR_MS, 2.0), (T0 + 61 * MIN, 3.0)]


def test_final_row_is_not_repeated_on_a_boundary(tmp_path: Path) -> None:
    a = _Strategy("a")
    sampler = EquitySampler(tmp_path / "equity.csv", {"X": MIN}, HOUR_MS)
    sampler.start([a], T0)
    list(sampler.sampled(iter([("X", _candle(T0 + i * MIN, 1.0)) for i in range(61)])))
    sampler.finish(T0 + HOUR_MS + MIN)
    sampler.close()
    assert [int(r[0]) for r in _rows(tmp_path / "equity.csv")[1:]] == [T0, T0 + HOUR_MS, T0 + HOUR_MS + MIN]


def test_interval_is_an_hour_or_the_coarsest_timeframe() -> None:
    assert sampling_interval_ms([MIN, 5 * MIN]) == HOUR_MS
    assert sampling_interval_ms([86_400_000]) == 86_400_000


def test_a_real_replay_writes_a_grid_series_ending_at_the_reported_equity(tmp_path: Path, btc_slice_file: Path) -> None:
    config = write_replay_config(tmp_path, btc_slice_file)
    loaded = load_config(config)
    sources, problems = resolve_sources(loaded)
    assert not problems
    report = anyio.run(build_replay(loaded, sources, tmp_path / "out").run).report
    assert report["replay"]["equity_interval_ms"] == HOUR_MS
    rows = _rows(tmp_path / "out" / "equity.csv")[1:]
    ids = list(report["strategies"])
    assert len(ids) >= 3
    by_ts: dict[int, list[str]] = {}
    for row in rows:
        by_ts.setdefault(int(row[0]), []).append(row[1])
    assert all(sids == ids for sids in by_ts.values()), "every sample time has one row per strategy, in load order"
    stamps = sorted(by_ts)
    assert stamps[0] == 1_640_991_600_000  # the first candle's open time
    # This slice starts and ends on the hour, so every row is on the grid.
    assert all(b - a == HOUR_MS for a, b in pairwise(stamps))
    assert stamps[-1] == 1_640_991_600_000 + 12_000 * MIN  # the last candle's close
    assert len(stamps) == 12_000 // 60 + 1
    last = {row[1]: row for row in rows if int(row[0]) == stamps[-1]}
    for sid, facts in report["strategies"].items():
        assert float(last[sid][2]) == facts["final_equity"]
        assert float(last[sid][4]) == facts["unrealised_pnl"]
        assert int(last[sid][5]) == facts["open_positions"]
    assert any(int(row[5]) > 0 for row in rows)
    # Exposure needs to see positions open and closed: some samples hold positions, some not.
    assert any(int(row[5]) == 0 for row in rows[len(ids):])
    assert orjson.loads((tmp_path / "out" / "report.json").read_bytes())["replay"]["equity_interval_ms"] == HOUR_MS


def test_a_gap_of_more_than_seven_days_writes_its_two_ends_only(tmp_path: Path) -> None:
    a = _Strategy("a")
    sampler = EquitySampler(tmp_path / "equity.csv", {"X": MIN}, HOUR_MS)
    sampler.start([a], T0)
    far = T0 + 3_000 * 365 * 24 * HOUR_MS  # three thousand years on, on the hour
    stream = [("X", _candle(T0 + i * MIN, 1.0 + i)) for i in range(90)] + [("X", _candle(far + 30 * MIN, 7.0))]
    for _, candle in sampler.sampled(iter(stream)):
        a.portfolio.equity = candle.close
    sampler.finish(far + 31 * MIN)
    sampler.close()
    got = [(int(r[0]), float(r[2])) for r in _rows(tmp_path / "equity.csv")[1:]]
    assert got == [
        (T0, 100.0),
        (T0 + HOUR_MS, 60.0),
        # The gap: its first boundary and its last one, both with the state before it.
        (T0 + 2 * HOUR_MS, 90.0),
        (far, 90.0),
        (far + 31 * MIN, 7.0),
    ]
    assert sampler.rows == 5
    # Seven days of boundaries exactly is not a long gap: every one of them keeps its row.
    week = EquitySampler(tmp_path / "week.csv", {"X": MIN}, HOUR_MS)
    week.start([a], T0)
    # Last close at 00:01; the next candle closes at 7 days + 01:01: boundaries 01:00 .. 7 days + 01:00.
    list(week.sampled(iter([("X", _candle(T0, 1.0)), ("X", _candle(T0 + 7 * 24 * HOUR_MS + HOUR_MS, 2.0))])))
    week.finish(T0 + 7 * 24 * HOUR_MS + HOUR_MS + MIN)
    week.close()
    stamps = [int(r[0]) for r in _rows(tmp_path / "week.csv")[1:]]
    assert stamps == [T0, *(T0 + h * HOUR_MS for h in range(1, 7 * 24 + 2)), T0 + 7 * 24 * HOUR_MS + HOUR_MS + MIN]
