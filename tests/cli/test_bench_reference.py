"""The bench's reference loop makes exactly the bot's trades, so the bench's ratio compares like with like."""
from __future__ import annotations

import csv
import importlib
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support import REPO

CANDLES = 6_000


def iso(ms: int) -> str:
    """trades.csv's time format."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_the_reference_loop_trades_as_the_bot_does_for_the_ten_ema_pairs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    bench = importlib.import_module("bench")
    replays = importlib.import_module("bench_replays")
    reference = importlib.import_module("bench_reference")
    data = tmp_path / "SYN-USD_1m.csv"
    bench.generate(data, CANDLES)
    pairs = list(replays.EMA_PAIRS)
    config = replays.write_config(tmp_path / "config", data, [replays.ema_spec(fast, slow) for fast, slow in pairs])
    done = subprocess.run(replays.replay_command(config, data, tmp_path / "out"), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with (tmp_path / "out" / "trades.csv").open(newline="") as file:
        bot = sorted(
            (row["strategy_id"], row["side"], float(row["quantity"]), row["entry_time"], float(row["entry_price"]),
             row["exit_time"], float(row["exit_price"]), float(row["fees"]), row["exit_reason"])
            for row in csv.DictReader(file)
        )

    count, loops = reference.run(data, pairs)

    loop = sorted(
        (t.strategy_id, "long", t.quantity, iso(t.entry_ts), t.entry_price, iso(t.exit_ts), t.exit_price, 0.0, "signal")
        for strategy in loops
        for t in strategy.trades
    )
    assert count == CANDLES
    assert {trade[0] for trade in loop} == {reference.strategy_id(fast, slow) for fast, slow in pairs}
    assert len(loop) > 1_000  # every pair trades many times on this series
    # The bot's exit price is its fills' average (notional / quantity): equal to the open up to rounding.
    assert [row[:4] + row[5:6] + row[7:] for row in bot] == [row[:4] + row[5:6] + row[7:] for row in loop]
    prices = [price for row in bot for price in (row[4], row[6])]
    assert prices == pytest.approx([price for row in loop for price in (row[4], row[6])], rel=1e-12)
