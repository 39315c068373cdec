"""Run `bot replay` and the reference loop as a user would, each timed from outside in its own process.

Each run's wall time covers the whole command (interpreter start, imports, set-up, the
candles, the outputs written), and its peak RSS is that process's own (from wait4); the bench
takes differences of runs to leave start-up out.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_reference import strategy_id

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = Path(__file__).resolve().parent
SYMBOL = "BTC/USD"
QUANTITY = 0.01
# The 10-strategy case: EMA (fast, slow) pairs on one symbol; the first is the 1-strategy case.
EMA_PAIRS: tuple[tuple[int, int], ...] = ((10, 30), (5, 20), (8, 21), (12, 26), (15, 40), (20, 50), (7, 25), (9, 35), (6, 18), (11, 33))


@dataclass(frozen=True, slots=True)
class Timed:
    """One finished command: its wall seconds, its peak RSS and what it wrote on stdout."""

    seconds: float
    peak_rss_mb: float
    stdout: str


def timed(command: list[str], cwd: Path = REPO) -> Timed:
    """Run a command to its end; raise RuntimeError with its stderr when it fails."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        # wait4 gives this child's own rusage (RUSAGE_CHILDREN would be the largest of all children).
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited {process.returncode}: {err.read().decode(errors='replace')[-3000:]}")
        return Timed(seconds, usage.ru_maxrss / 1024.0, out.read().decode())


def ema_spec(fast: int, slow: int) -> dict[str, Any]:
    """The bot's strategy file for the reference's rule: the declarative ema_cross analyzer alone."""
    return {
        "id": strategy_id(fast, slow),
        "symbol": SYMBOL,
        "timeframe": "1m",
        "quantity": QUANTITY,
        "analyzers": [{"type": "ema_cross", "params": {"fast": fast, "slow": slow}}],
        "entry_threshold": 1.0,
        "exit_threshold": 1.0,
    }


def order_spec(strategy_class: str) -> dict[str, Any]:
    """A strategy file for the order case's module (`FlipEveryCandle` or `NeverTrade`)."""
    return {"id": "orders", "module": "bench_orders", "class": strategy_class, "symbol": SYMBOL, "timeframe": "1m", "quantity": QUANTITY}


def write_config(folder: Path, data: Path, specs: list[dict[str, Any]]) -> Path:
    """config.json and one file per strategy in `folder`, replaying `data` (no fees, next-open fills: the defaults)."""
    (folder / "strategies").mkdir(parents=True, exist_ok=True)
    refs = []
    for spec in specs:
        (folder / "strategies" / f"{spec['id']}.json").write_text(json.dumps(spec))
        refs.append({"file": f"strategies/{spec['id']}.json"})
    config: dict[str, Any] = {"replay": {"candles": {SYMBOL: {"path": str(data), "timeframe": "1m"}}}, "strategies": refs}
    if any("module" in spec for spec in specs):
        config["strategy_paths"] = [str(SCRIPTS / "bench_strategies")]
    path = folder / "config.json"
    path.write_text(json.dumps(config))
    return path


def replay_command(config: Path, data: Path, out: Path) -> list[str]:
    """`bot replay` of `data` with `config`, quiet, as a user runs it."""
    return [sys.executable, "-m", "bot", "replay", "--config", str(config), "--candles", f"{SYMBOL}={data}", "--out", str(out), "--quiet"]


def reference_command(data: Path, pairs: list[tuple[int, int]]) -> list[str]:
    """The reference loop over `data` with one object per pair."""
    return [sys.executable, str(SCRIPTS / "bench_reference.py"), str(data), *(f"{fast},{slow}" for fast, slow in pairs)]


def trades_written(out: Path) -> int:
    """Rows of a replay's trades.csv (its header excluded)."""
    with (out / "trades.csv").open("rb") as file:
        return sum(1 for _ in file) - 1


def orders_filled(out: Path) -> int:
    """order_filled events in a replay's events.jsonl."""
    needle = b'"type":"order_filled"'
    with (out / "events.jsonl").open("rb") as file:
        return sum(1 for line in file if needle in line)
