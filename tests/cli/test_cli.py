"""The real `bot` command line run as a subprocess: validate, replay and their outputs."""
from __future__ import annotations

import csv
import itertools
import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.event_codec import event_lines
from bot.events import EVENT_TYPES
from bot.replay.event_log import TRADE_COLUMNS
from tests.config.builders import valid_strategy, write_setup
from tests.support import BTC_1M, REPO

TRADES_HEADER = "strategy_id,symbol,side,quantity,entry_time,entry_price,exit_time,exit_price,pnl,fees,exit_reason,position_id"
# Variables that would make rich's output depend on the terminal the tests run from.
_TERMINAL_VARS = ("COLUMNS", "LINES", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")


def run_bot(*args: str | Path, cwd: Path, script: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m bot ARGS` (or `script ARGS`) in `cwd` and capture its output."""
    env = {k: v for k, v in os.environ.items() if k not in _TERMINAL_VARS}
    command = [str(script)] if script else [sys.executable, "-m", "bot"]
    return subprocess.run(
        command + [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def error_lines(stderr: str) -> list[str]:
    """The `error: ...` lines of stderr (log lines are skipped)."""
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def flat(text: str) -> str:
    """Text with every run of whitespace made one space, so wrapped lines still match."""
    return " ".join(text.split())


# --- validate -------------------------------------------------------------------------------


def test_validate_repo_config_exits_0() -> None:
    result = run_bot("validate", "--config", "config.json", cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "BTC/USD: data/BTC-USD-PERP_1m.csv: 45,031 candles of 1m, 0 gaps",
        "ETH/BTC: data/ETH-BTC_1m.csv: 14,397 candles of 1m, 1 gaps",
        "XMR/BTC: data/XMR-BTC_1m.csv: 12,519 candles of 1m, 1,416 gaps",
        "config.json: OK (7 strategies, 7 enabled; candles for BTC/USD 1m, ETH/BTC 1m, XMR/BTC 1m)",
    ]
    assert error_lines(result.stderr) == []


def test_validate_reports_counts_of_strategies_and_candles(tmp_path: Path) -> None:
    path = write_setup(
        tmp_path,
        {"a.json": valid_strategy(id="a"), "b.json": valid_strategy(id="b", symbol="ETH/BTC")},
        {"replay": {"candles": {"BTC/USD": {"path": str(BTC_1M)}}}},
        refs=[{"file": "strategies/a.json"}, {"file": "strategies/b.json", "enabled": False}],
    )
    result = run_bot("validate", "--config", path.name, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "config.json: OK (2 strategies, 1 enabled; candles for BTC/USD 1m)"


def test_validate_bad_config_prints_one_line_per_problem(tmp_path: Path) -> None:
    write_setup(
        tmp_path,
        {
            "a.json": valid_strategy(id="a", quantity=0),
            "b.json": valid_strategy(id="b", symbol=""),
            "c.json": valid_strategy(id=5),
        },
    )
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: strategies/a.json: quantity: Input should be greater than 0",
        "error: strategies/b.json: symbol: String should have at least 1 character",
        "error: strategies/c.json: id: Input should be a valid string",
    ]


def test_validate_config_json_problem(tmp_path: Path) -> None:
    write_setup(tmp_path, {}, {"replay": {"history_size": "lots"}, "mood": 1})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2
    lines = error_lines(result.stderr)
    assert len(lines) == 2
    assert lines[0] == "error: config.json: replay.history_size: a string is not a number"
    assert lines[1] == "error: config.json: mood: Extra inputs are not permitted"


def test_validate_missing_config_names_the_file(tmp_path: Path) -> None:
    result = run_bot("validate", "--config", "nope.json", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: nope.json: <file>: file not found"


def test_validate_checks_candle_sources(tmp_path: Path) -> None:
    write_setup(tmp_path, {"a.json": valid_strategy(symbol="ETH/BTC")})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2
    assert flat(result.stderr).startswith("error: ")
    # Strategy files are named as config.json names them, relative to where the command ran.
    assert "strategies/a.json: symbol: no candles for 'ETH/BTC'" in flat(result.stderr)


def test_validate_long_problem_stays_on_one_line(tmp_path: Path) -> None:
    path = write_setup(
        tmp_path,
        {"a.json": valid_strategy(timeframe="7m")},
        refs=[{"file": "strategies/a.json"}, {"file": "strategies/missing.json"}],
    )
    result = run_bot("validate", "--config", path, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"error: {tmp_path / 'strategies' / 'a.json'}: timeframe: unknown timeframe '7m'")
    assert lines[1].startswith(f"error: {tmp_path / 'strategies' / 'missing.json'}: <file>: file not found")


# --- replay ---------------------------------------------------------------------------------

STRATEGY_IDS = ("fast_cross", "slow_cross")


@dataclass(frozen=True)
class ReplayRun:
    """A finished quiet replay: the process result and its output folder."""

    result: subprocess.CompletedProcess[str]
    out: Path


def write_replay_setup(root: Path) -> Path:
    """Two strategies on BTC/USD: a 5m cross with a stop and a take-profit ladder, and a 15m cross."""
    fast = valid_strategy(
        id="fast_cross",
        timeframe="5m",
        analyzers=[{"type": "ema_cross", "params": {"fast": 3, "slow": 8}}],
        exits={"stop_loss_pct": 1.0, "take_profit": [{"pct": 0.5, "close_pct": 50}, {"pct": 1.0, "close_pct": 50}]},
        fees={"maker_bps": 2, "taker_bps": 5},
    )
    slow = valid_strategy(id="slow_cross", timeframe="15m", analyzers=[{"type": "ema_cross", "params": {"fast": 12, "slow": 26}}])
    return write_setup(root, {"fast.json": fast, "slow.json": slow}, {"strategy_defaults": {"starting_balance": 20_000}})


@pytest.fixture(scope="module")
def quiet_replay(tmp_path_factory: pytest.TempPathFactory) -> ReplayRun:
    """One quiet replay over the shared BTC 1m file, shared by the output tests."""
    root = tmp_path_factory.mktemp("replay")
    write_replay_setup(root)
    result = run_bot("replay", "--config", "config.json", "--candles", f"BTC/USD={BTC_1M}", "--out", "out", "--quiet", cwd=root)
    return ReplayRun(result, root / "out")


def test_quiet_replay_exits_0_without_summary(quiet_replay: ReplayRun) -> None:
    assert quiet_replay.result.returncode == 0, quiet_replay.result.stderr
    assert quiet_replay.result.stdout == ""
    assert error_lines(quiet_replay.result.stderr) == []
    assert sorted(p.name for p in quiet_replay.out.iterdir()) == ["equity.csv", "events.jsonl", "report.json", "trades.csv"]


def test_events_jsonl_lines_are_valid_and_sequenced(quiet_replay: ReplayRun) -> None:
    lines = event_lines((quiet_replay.out / "events.jsonl").read_bytes())
    assert lines
    events = [json.loads(line) for line in lines]
    for event in events:
        assert list(event) == ["seq", "ts", "type", "strategy_id", "payload"]
        assert event["type"] in EVENT_TYPES
        assert event["strategy_id"] is None or event["strategy_id"] in STRATEGY_IDS
        assert isinstance(event["ts"], int)
        assert isinstance(event["payload"], dict)
    seqs = [e["seq"] for e in events]
    assert all(b == a + 1 for a, b in itertools.pairwise(seqs))
    types = Counter(e["type"] for e in events)
    assert types["replay_started"] == 1
    assert types["replay_finished"] == 1
    assert events[-1]["type"] == "replay_finished"


def read_trades(out: Path) -> tuple[str, list[dict[str, str]]]:
    """The header line and the rows of trades.csv."""
    text = (out / "trades.csv").read_text()
    with (out / "trades.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    return text.splitlines()[0], rows


def test_trades_csv_header_and_strategy_ids(quiet_replay: ReplayRun) -> None:
    header, rows = read_trades(quiet_replay.out)
    assert header == TRADES_HEADER
    assert tuple(header.split(",")) == TRADE_COLUMNS
    assert rows, "the replay should close at least one trade"
    for row in rows:
        assert row["strategy_id"] in STRATEGY_IDS
        assert row["symbol"] == "BTC/USD"
        assert row["position_id"].startswith(row["strategy_id"])
        assert float(row["quantity"]) > 0
        assert row["entry_time"] <= row["exit_time"]


def test_report_json_per_strategy_and_totals(quiet_replay: ReplayRun) -> None:
    report: dict[str, Any] = json.loads((quiet_replay.out / "report.json").read_text())
    assert set(report["strategies"]) == set(STRATEGY_IDS)
    keys = {"trades", "win_rate", "realised_pnl", "fees", "max_drawdown", "final_equity"}
    for sid, figures in report["strategies"].items():
        assert keys <= set(figures), sid
        assert figures["starting_balance"] == 20_000
        assert 0.0 <= figures["win_rate"] <= 1.0
        assert figures["max_drawdown"] >= 0
    # Both strategies trade BTC/USD: one currency, so one entry of totals.
    assert list(report["totals"]) == ["USD"]
    totals = report["totals"]["USD"]
    assert {"trades", "win_rate", "realised_pnl", "fees", "final_equity"} <= set(totals)
    strategies = report["strategies"].values()
    assert all(s["currency"] == "USD" for s in strategies)
    assert totals["trades"] == sum(s["trades"] for s in strategies)
    assert totals["realised_pnl"] == pytest.approx(sum(s["realised_pnl"] for s in strategies))
    assert totals["fees"] == pytest.approx(sum(s["fees"] for s in strategies))
    assert totals["final_equity"] == pytest.approx(sum(s["final_equity"] for s in strategies))
    assert report["strategies"]["fast_cross"]["fees"] > 0
    assert report["strategies"]["slow_cross"]["fees"] == 0


def test_report_trade_counts_match_trades_csv(quiet_replay: ReplayRun) -> None:
    report: dict[str, Any] = json.loads((quiet_replay.out / "report.json").read_text())
    _, rows = read_trades(quiet_replay.out)
    per_strategy = Counter(row["strategy_id"] for row in rows)
    for sid in STRATEGY_IDS:
        assert report["strategies"][sid]["trades"] == per_strategy[sid], sid
    assert report["totals"]["USD"]["trades"] == len(rows)


def test_trades_csv_pnl_adds_up_to_report_figures(quiet_replay: ReplayRun) -> None:
    report: dict[str, Any] = json.loads((quiet_replay.out / "report.json").read_text())
    _, rows = read_trades(quiet_replay.out)
    for sid, figures in report["strategies"].items():
        mine = [row for row in rows if row["strategy_id"] == sid]
        assert figures["wins"] == sum(1 for row in mine if float(row["pnl"]) > 0), sid
        if figures["open_positions"] == 0:  # an open position's entry fee is in the report but in no row
            assert sum(float(row["pnl"]) for row in mine) == pytest.approx(figures["net_pnl"]), sid
            assert sum(float(row["fees"]) for row in mine) == pytest.approx(figures["fees"]), sid


def test_trades_csv_matches_position_closed_events(quiet_replay: ReplayRun) -> None:
    events = [json.loads(line) for line in event_lines((quiet_replay.out / "events.jsonl").read_bytes())]
    closed = [e for e in events if e["type"] == "position_closed"]
    _, rows = read_trades(quiet_replay.out)
    assert [(e["strategy_id"], e["payload"]["position_id"]) for e in closed] == [(r["strategy_id"], r["position_id"]) for r in rows]


def test_replay_shows_summary_table(tmp_path: Path) -> None:
    write_replay_setup(tmp_path)
    result = run_bot("replay", "--config", "config.json", "--candles", f"BTC/USD={BTC_1M}", "--out", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for sid in STRATEGY_IDS:
        assert sid in result.stdout
    assert "TOTAL USD" in result.stdout
    assert "Replay:" in result.stdout
    assert (tmp_path / "out" / "report.json").is_file()


def test_replay_is_deterministic(quiet_replay: ReplayRun, tmp_path: Path) -> None:
    write_replay_setup(tmp_path)
    result = run_bot("replay", "--config", "config.json", "--candles", f"BTC/USD={BTC_1M}", "--out", "out", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for name in ("events.jsonl", "trades.csv", "equity.csv"):
        assert (tmp_path / "out" / name).read_bytes() == (quiet_replay.out / name).read_bytes(), name


CORRUPT_ROWS = (
    "ts_ms,open,high,low,close,volume\n"
    "1640991600000,10,12,9,11,1\n"
    "1640991660000,11,12,10,11,1\n"
    "1640991720000,11,9,10,10,1\n"
    "1640991780000,11,12,10,11,1\n"
)


def test_corrupt_candle_file_fails_replay_naming_file_and_line(tmp_path: Path) -> None:
    write_setup(tmp_path, {"a.json": valid_strategy()})
    (tmp_path / "corrupt_1m.csv").write_text(CORRUPT_ROWS)
    result = run_bot("replay", "--config", "config.json", "--candles", "BTC/USD=corrupt_1m.csv", "--out", "out", "--quiet", cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        "error: replay aborted: corrupt_1m.csv: line 4: high 9.0 below low 10.0 (partial output in out)"
    ]
    # The partial run still says what happened and how far it got.
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["replay"]["status"] == "aborted"
    assert report["replay"]["error"] == "corrupt_1m.csv: line 4: high 9.0 below low 10.0"
    assert report["replay"]["candles"] == 2


def test_corrupt_candle_error_text_is_printed_verbatim(tmp_path: Path) -> None:
    write_setup(tmp_path, {"a.json": valid_strategy()})
    (tmp_path / "corrupt_1m.csv").write_text(
        "ts_ms,open,high,low,close,volume\n1640991600000,10,12,9,11,1\n1640991660000,20,12,9,11,1\n"
    )
    result = run_bot("replay", "--config", "config.json", "--candles", "BTC/USD=corrupt_1m.csv", "--out", "out", "--quiet", cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        "error: replay aborted: corrupt_1m.csv: line 3: open 20.0 outside [low 9.0, high 12.0] (partial output in out)"
    ]


def test_replay_with_bad_candles_argument_exits_2(tmp_path: Path) -> None:
    write_setup(tmp_path, {"a.json": valid_strategy()})
    result = run_bot("replay", "--config", "config.json", "--candles", "BTC/USD", "--out", "out", "--quiet", cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == ["error: --candles expects SYMBOL=PATH, got 'BTC/USD'"]
    assert not (tmp_path / "out").exists()


def test_replay_with_bad_config_exits_2_before_writing(tmp_path: Path) -> None:
    write_setup(tmp_path, {"a.json": valid_strategy(quantity=0)})
    result = run_bot("replay", "--config", "config.json", "--candles", f"BTC/USD={BTC_1M}", "--out", "out", "--quiet", cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == ["error: strategies/a.json: quantity: Input should be greater than 0"]
    assert not (tmp_path / "out").exists()


# --- entry points ---------------------------------------------------------------------------


def test_python_dash_m_and_console_script_agree() -> None:
    script = REPO / ".venv" / "bin" / "bot"
    assert script.is_file()
    by_module = run_bot("validate", "--config", "config.json", cwd=REPO)
    by_script = run_bot("validate", "--config", "config.json", cwd=REPO, script=script)
    assert by_module.returncode == by_script.returncode == 0
    assert by_script.stdout == by_module.stdout
    assert "OK" in by_script.stdout


@pytest.mark.parametrize("via_script", [False, True])
def test_help_and_usage_errors(via_script: bool, tmp_path: Path) -> None:
    script = REPO / ".venv" / "bin" / "bot" if via_script else None
    helped = run_bot("--help", cwd=tmp_path, script=script)
    assert helped.returncode == 0
    assert "replay" in helped.stdout and "validate" in helped.stdout
    missing = run_bot(cwd=tmp_path, script=script)
    assert missing.returncode == 2
    assert "usage: bot" in missing.stderr


# --- edges found in review -------------------------------------------------------------------


def test_validate_reads_whole_candle_files(tmp_path: Path) -> None:
    write_setup(tmp_path, {"a.json": valid_strategy()})
    config = json.loads((tmp_path / "config.json").read_text())
    rows = CORRUPT_ROWS.splitlines()
    # 1,500 good candles, then a bad one: the first rows alone would not show it.
    good = [f"{1640991600000 + i * 60_000},10,12,9,11,1" for i in range(1_500)]
    (tmp_path / "late_1m.csv").write_text("\n".join([rows[0], *good, f"{1640991600000 + 1_500 * 60_000},11,9,10,10,1"]) + "\n")
    config["replay"] = {"candles": {"BTC/USD": {"path": "late_1m.csv", "timeframe": "1m"}}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == ["error: late_1m.csv: line 1502: high 9.0 below low 10.0"]
    (tmp_path / "late_1m.csv").write_text("\n".join([rows[0], *good]) + "\n")
    ok = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "BTC/USD: late_1m.csv: 1,500 candles of 1m, 0 gaps" in ok.stdout


def test_validate_refuses_candles_off_the_declared_timeframe(tmp_path: Path) -> None:
    write_setup(tmp_path, {"a.json": valid_strategy(timeframe="5m")})
    config = json.loads((tmp_path / "config.json").read_text())
    config["replay"] = {"candles": {"BTC/USD": {"path": str(BTC_1M), "timeframe": "5m"}}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [f"error: {BTC_1M}: candle 2: timestamp 1640991660000 is not on a 5m boundary"]


def test_replay_refuses_the_same_symbol_twice_and_an_output_path_that_is_a_file(tmp_path: Path) -> None:
    write_setup(tmp_path, {"a.json": valid_strategy()})
    twice = run_bot("replay", "--config", "config.json", "--candles", f"BTC/USD={BTC_1M}", "--candles", "BTC/USD=other.csv", "--quiet", cwd=tmp_path)
    assert twice.returncode == 2
    assert error_lines(twice.stderr) == [f"error: --candles names BTC/USD twice ({BTC_1M} and other.csv)"]
    (tmp_path / "taken").write_text("not a folder")
    blocked = run_bot("replay", "--config", "config.json", "--candles", f"BTC/USD={BTC_1M}", "--out", "taken", "--quiet", cwd=tmp_path)
    assert blocked.returncode == 2
    assert error_lines(blocked.stderr) == ["error: replay aborted: output folder taken exists and is not a folder (partial output in taken)"]
