"""`bot replay --from/--to` through the real command line, on the recorded BTC-PERP month."""
from __future__ import annotations

import csv
import gzip
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.event_codec import event_lines
from tests.cli.test_cli import run_bot
from tests.support import BTC_1M, REPO, SHARED_DATA

HOUR = 3_600_000
# Its 7 minutes after 2018-01-29T05:30 are missing.
XMR_1M = SHARED_DATA / "XMR-BTC_1m.csv"
OUTPUTS = ("events.jsonl", "trades.csv", "equity.csv")
# trend_mtf buys only while the last 1h close is above its 1h EMA(50): cold, it could not
# trade before 50 hourly candles had closed after the first candle it saw.
TREND_MTF_HISTORY_MS = 50 * HOUR


def ms(text: str) -> int:
    """Epoch ms of a UTC ISO date-time, computed here rather than by the bot."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def open_times(path: Path) -> list[int]:
    """The open times in a recorded CSV file, read with the csv module (not the bot's reader)."""
    with path.open(newline="") as stream:
        return [int(row["ts_ms"]) for row in csv.DictReader(stream)]


def trades(run: Path, strategy_id: str) -> list[tuple[str, ...]]:
    with (run / "trades.csv").open(newline="") as stream:
        keys = ("side", "entry_time", "entry_price", "exit_time", "exit_price", "exit_reason")
        return [tuple(row[k] for k in keys) for row in csv.DictReader(stream) if row["strategy_id"] == strategy_id]


def events(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in event_lines((run / "events.jsonl").read_bytes())]


def report(run: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run / "report.json").read_bytes())
    return data


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the catalog's trend_mtf and ema_cross on the BTC-PERP month, and their full replay in full/."""
    root = tmp_path_factory.mktemp("timerange")
    shutil.copytree(REPO / "strategies", root / "strategies", ignore=shutil.ignore_patterns("__pycache__"))
    config = {
        "replay": {"candles": {"BTC/USD": {"path": str(BTC_1M), "timeframe": "1m"}}, "history_size": 1000, "log_candles": True},
        "strategy_defaults": {"starting_balance": 10000},
        "strategies": [{"file": "strategies/catalog/trend_mtf.json"}, {"file": "strategies/catalog/ema_cross.json"}],
    }
    (root / "config.json").write_text(json.dumps(config))
    full = run_bot("replay", "--config", "config.json", "--out", "full", "--quiet", cwd=root)
    assert full.returncode == 0, full.stderr
    return root


def test_from_the_first_open_time_to_past_the_end_changes_no_output(setup: Path) -> None:
    first = open_times(BTC_1M)[0]
    assert first == ms("2021-12-31T23:00")
    result = run_bot("replay", "--config", "config.json", "--out", "ranged", "--quiet", "--from", "2021-12-31 23:00Z", "--to", "2022-03-01", cwd=setup)
    assert result.returncode == 0, result.stderr
    for name in OUTPUTS:
        assert (setup / "ranged" / name).read_bytes() == (setup / "full" / name).read_bytes(), name
    ranged, full = report(setup / "ranged"), report(setup / "full")
    assert ranged["replay"].pop("range") == {
        "from_ms": first,
        "to_ms": ms("2022-03-01T00:00"),
        "from": "2021-12-31T23:00:00Z",
        "to": "2022-03-01T00:00:00Z",
        "warmup_candles": 0,
    }
    assert ranged == full


def test_a_range_trades_and_writes_nothing_outside_it(setup: Path) -> None:
    start, end = ms("2022-01-10T00:00"), ms("2022-01-20T00:00")
    times = open_times(BTC_1M)
    inside = [t for t in times if start <= t < end]
    before = [t for t in times if t < start]
    result = run_bot("replay", "--config", "config.json", "--out", "ranged", "--from", "2022-01-10", "--to", "2022-01-20T00:00", cwd=setup)
    assert result.returncode == 0, result.stderr
    run = setup / "ranged"

    facts = report(run)["replay"]
    assert facts["status"] == "complete"
    assert facts["candles"] == len(inside) == 14_400
    assert facts["range"] == {"from_ms": start, "to_ms": end, "from": "2022-01-10T00:00:00Z", "to": "2022-01-20T00:00:00Z", "warmup_candles": len(before)}

    logged = events(run)
    assert logged[0]["ts"] == start
    assert min(e["ts"] for e in logged) == start
    candles = [e["payload"] for e in logged if e["type"] == "candle"]
    assert [c["candle"][0] for c in candles if c["timeframe"] == "1m"] == inside
    assert all(start <= c["candle"][0] < end for c in candles)
    assert {c["timeframe"] for c in candles} == {"1m", "15m", "1h"}

    with (run / "equity.csv").open(newline="") as stream:
        stamps = [int(row["ts_ms"]) for row in csv.DictReader(stream)]
    assert stamps[0] == start and min(stamps) == start and max(stamps) == end

    made = trades(run, "trend_mtf") + trades(run, "ema_cross")
    assert made
    assert all("2022-01-10T00:00:00Z" <= t[1] and t[3] < "2022-01-20T00:00:00Z" for t in made)

    # Not knowing how much of each file the range plays, the bar counts up and ends full.
    assert f"{len(inside)}/{len(inside)}" in result.stderr
    title = f"Replay 2022-01-10 to 2022-01-20: {len(inside):,} candles (+{len(before):,} warm-up), "
    assert title in " ".join(result.stdout.split())


def test_strategies_are_warm_at_from_and_decide_as_the_full_replay_does(setup: Path) -> None:
    start, _end = ms("2022-01-05T00:00"), ms("2022-01-08T00:00")
    result = run_bot("replay", "--config", "config.json", "--out", "warm", "--quiet", "--from", "2022-01-05", "--to", "2022-01-08", cwd=setup)
    assert result.returncode == 0, result.stderr
    lo, hi = "2022-01-05T00:00:00Z", "2022-01-08T00:00:00Z"
    for sid in ("trend_mtf", "ema_cross"):
        expected = [t for t in trades(setup / "full", sid) if lo <= t[1] and t[3] < hi]
        assert expected, sid
        assert trades(setup / "warm", sid) == expected, sid
    # Its first trade comes sooner than 50 hourly candles after --from: it was warm.
    first_entry = ms(trades(setup / "warm", "trend_mtf")[0][1].rstrip("Z"))
    assert first_entry < start + TREND_MTF_HISTORY_MS


@pytest.mark.parametrize(
    "options,message",
    [
        (
            ["--from", "2022-13-01"],
            ("error: --from '2022-13-01' is not a date (month must be in 1..12): "
            "use a UTC date or date-time such as 2022-01-01, 2022-01-01T12:30 or '2022-01-01 12:30Z'"),
        ),
        (
            ["--to", "yesterday"],
            "error: --to 'yesterday' is not a date: use a UTC date or date-time such as 2022-01-01, 2022-01-01T12:30 or '2022-01-01 12:30Z'",
        ),
        (
            ["--from", "2022-02-01", "--to", "2022-01-01"],
            "error: --from 2022-02-01T00:00:00Z is not before --to 2022-01-01T00:00:00Z (--to is exclusive): the range is empty",
        ),
        (
            ["--from", "2022-01-10T12:00", "--to", "2022-01-10 12:00Z"],
            "error: --from 2022-01-10T12:00:00Z is not before --to 2022-01-10T12:00:00Z (--to is exclusive): the range is empty",
        ),
        (
            ["--from", "2022-02-01T05:31"],
            (f"error: --from 2022-02-01T05:31:00Z: no candle opens in that range; the files' candles open: "
            f"BTC/USD ({BTC_1M}) from 2021-12-31T23:00:00Z to 2022-02-01T05:30:00Z"),
        ),
        (
            ["--from", "2021-01-01", "--to", "2021-12-31T23:00"],
            (f"error: --from 2021-01-01T00:00:00Z --to 2021-12-31T23:00:00Z: no candle opens in that range; the files' candles open: "
            f"BTC/USD ({BTC_1M}) from 2021-12-31T23:00:00Z to 2022-02-01T05:30:00Z"),
        ),
        # Two instants a tenth of a millisecond apart are not one instant: refused, not rounded.
        (
            ["--from", "2022-01-05T00:00:00.0001", "--to", "2022-01-05T00:00:00.0002"],
            "error: --from '2022-01-05T00:00:00.0001' is finer than a millisecond, the precision of candle times",
        ),
        (
            ["--from", "2022-01-05T00:00", "--to", "2022-01-05T00:00:00.0000001"],
            "error: --to '2022-01-05T00:00:00.0000001' is finer than a millisecond, the precision of candle times",
        ),
        # Found empty only once the warm-up has read up to it: between two candles, and inside a hole in the data.
        (
            ["--from", "2022-01-05T00:00:10", "--to", "2022-01-05T00:00:50"],
            (f"error: --from 2022-01-05T00:00:10Z --to 2022-01-05T00:00:50Z: no candle opens in that range; the files' candles open: "
            f"BTC/USD ({BTC_1M}) from 2021-12-31T23:00:00Z to 2022-02-01T05:30:00Z"),
        ),
        (
            ["--candles", f"BTC/USD={XMR_1M}", "--from", "2018-01-29T05:31", "--to", "2018-01-29T05:38"],
            (f"error: --from 2018-01-29T05:31:00Z --to 2018-01-29T05:38:00Z: no candle opens in that range; the files' candles open: "
            f"BTC/USD ({XMR_1M}) from 2018-01-20T04:52:00Z to 2018-01-30T04:48:00Z"),
        ),
    ],
)
def test_a_bad_or_empty_range_exits_2_with_one_line_and_writes_nothing(setup: Path, options: list[str], message: str) -> None:
    # Not --quiet: no progress bar is drawn for a run refused before it starts.
    result = run_bot("replay", "--config", "config.json", "--out", "refused", *options, cwd=setup)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [message]
    assert not (setup / "refused").exists()


def test_a_range_past_the_end_of_a_gzipped_file_is_found_by_the_warm_up_before_anything_is_written(setup: Path) -> None:
    # A gzipped file cannot be read from its end: the warm-up reads all of it, then says so.
    packed = setup / "btc.csv.gz"
    packed.write_bytes(gzip.compress(BTC_1M.read_bytes()))
    result = run_bot("replay", "--config", "config.json", "--candles", f"BTC/USD={packed}", "--out", "gz", "--quiet", "--from", "2022-03-01", cwd=setup)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        (f"error: --from 2022-03-01T00:00:00Z: no candle opens in that range; the files' candles open: "
        f"BTC/USD ({packed}) from 2021-12-31T23:00:00Z to 2022-02-01T05:30:00Z")
    ]
    assert not (setup / "gz").exists()


def test_an_empty_range_leaves_a_previous_run_in_out_as_it_was(setup: Path) -> None:
    previous = setup / "previous"
    shutil.copytree(setup / "full", previous)
    result = run_bot("replay", "--config", "config.json", "--out", "previous", "--quiet", "--from", "2022-01-05T00:00:10", "--to", "2022-01-05T00:00:50", cwd=setup)
    assert result.returncode == 2 and "no candle opens in that range" in result.stderr
    assert sorted(p.name for p in previous.iterdir()) == sorted([*OUTPUTS, "report.json"])
    for name in (*OUTPUTS, "report.json"):
        assert (previous / name).read_bytes() == (setup / "full" / name).read_bytes(), name


def test_a_higher_timeframe_candle_that_opens_before_from_is_warm_up(setup: Path) -> None:
    # --from 00:35 falls inside a 15m candle (00:30) and a 1h candle (00:00): both hold warm-up candles, so
    # neither is written nor traded on; the first of each in the outputs opens at or after --from.
    start, end = ms("2022-01-05T00:35"), ms("2022-01-08T00:00")
    result = run_bot("replay", "--config", "config.json", "--out", "inside", "--quiet", "--from", "2022-01-05T00:35", "--to", "2022-01-08", cwd=setup)
    assert result.returncode == 0, result.stderr
    candles = [e["payload"] for e in events(setup / "inside") if e["type"] == "candle"]
    first = {tf: min(c["candle"][0] for c in candles if c["timeframe"] == tf) for tf in ("1m", "15m", "1h")}
    assert first == {"1m": start, "15m": ms("2022-01-05T00:45"), "1h": ms("2022-01-05T01:00")}
    # Both strategies trade on 15m: the candles from 00:45 to 23:45 on the 7th, not the one opening at 00:30.
    strategies = report(setup / "inside")["strategies"]
    assert strategies["trend_mtf"]["candles"] == strategies["ema_cross"]["candles"] == (end - ms("2022-01-05T00:45")) // 900_000 == 285
    # Warm as at a whole hour: the trades the full replay makes in that span (its first decision comes at 01:00).
    for sid in ("trend_mtf", "ema_cross"):
        expected = [t for t in trades(setup / "full", sid) if "2022-01-05T01:00:00Z" <= t[1] and t[3] < "2022-01-08T00:00:00Z"]
        assert expected and trades(setup / "inside", sid) == expected, sid


def test_the_file_is_read_no_further_than_to(setup: Path) -> None:
    # A broken line after --to is never reached; before --from, the warm-up reads and checks it.
    lines = BTC_1M.read_text().splitlines()[:3001]
    broken = setup / "broken_1m.csv"
    broken.write_text("\n".join([*lines[:2001], "1641110400000,1,2,3", *lines[2001:]]) + "\n")
    assert int(lines[2000].split(",")[0]) == ms("2022-01-02T08:19")  # the 2,000th candle, on line 2001
    args = ("replay", "--config", "config.json", "--candles", f"BTC/USD={broken}", "--quiet")
    ok = run_bot(*args, "--out", "cut", "--from", "2022-01-01T12:00", "--to", "2022-01-02", cwd=setup)
    assert ok.returncode == 0, ok.stderr
    assert report(setup / "cut")["replay"]["candles"] == 720
    bad = run_bot(*args, "--out", "late", "--from", "2022-01-02T12:00", cwd=setup)
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == [f"error: replay aborted: {broken}: line 2002: expected 6 fields, got 4 (partial output in late)"]
    assert report(setup / "late")["replay"]["candles"] == 0


def test_a_file_without_candles_in_the_range_is_a_warning_when_another_has_some(tmp_path: Path) -> None:
    # config.replay.json's ETH/BTC and XMR/BTC files play 2022-01-01 to 2022-01-11 (shift_days).
    result = run_bot("replay", "--config", "config.replay.json", "--out", tmp_path / "out", "--quiet", "--from", "2022-01-20", "--to", "2022-01-21", cwd=REPO)
    assert result.returncode == 0, result.stderr
    warnings = [line.split(" WARNING ", 1)[1] for line in result.stderr.splitlines() if " WARNING " in line]
    assert warnings == [
        f"{symbol} (data/{name}, shift_days 1442): no candle opens in the range --from 2022-01-20T00:00:00Z --to 2022-01-21T00:00:00Z "
        f"(they open from {first} to {last}): strategies on {symbol} do not trade"
        for symbol, name, first, last in (
            ("ETH/BTC", "ETH-BTC_1m.csv", "2022-01-01T04:53:00Z", "2022-01-11T04:50:00Z"),
            ("XMR/BTC", "XMR-BTC_1m.csv", "2022-01-01T04:52:00Z", "2022-01-11T04:48:00Z"),
        )
    ]
    done = report(tmp_path / "out")
    assert done["replay"]["candles"] == 1440
    assert done["strategies"]["pairs_arbitrage"]["trades"] == 0
    assert done["strategies"]["pairs_arbitrage"]["candles"] == 0
