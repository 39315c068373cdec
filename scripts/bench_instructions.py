"""Instructions per market order and per candle under callgrind: the figures of the order path that do not move with the host's load.

Wall-clock figures on a shared host move by 30 % or more from run to run; the count of machine
instructions a run executes (valgrind's callgrind, hash randomisation off) repeats to a few
hundred. Each figure is a difference of two run lengths, so start-up (imports, compiling, the
set-up) cancels out:

    per order  = ((trading N - never-trading N) - (trading n - never-trading n)) / (orders N - orders n)
    per candle = (never-trading N - never-trading n) / (N - n)

with the order case's strategies (scripts/bench_strategies/bench_orders.py: one opens or closes on
every candle, one never trades), candle events on, n = 1,000 and N = 6,000 synthetic 1m candles.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench_ratio import Generate
from bench_replays import REPO, order_spec, orders_filled, replay_command, write_config

SMALL, LARGE = 1_000, 6_000
_COLLECTED = re.compile(rb"Collected : (\d+)")


def instructions(command: list[str], work: Path) -> int:
    """Instructions callgrind counts for the whole of `command` (PYTHONHASHSEED=0: no run-to-run hash randomisation)."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={work / 'callgrind.out'}", *command],
        cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"valgrind {' '.join(command)} exited {done.returncode}: {done.stderr.decode(errors='replace')[-3000:]}")
    found = _COLLECTED.search(done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output: {done.stderr.decode(errors='replace')[-1000:]}")
    return int(found.group(1))


def instructions_suite(generate: Generate) -> dict[str, Any] | None:
    """Print and return instructions per market order and per candle; None (with a note) when valgrind is not installed."""
    if shutil.which("valgrind") is None:
        print("instructions: valgrind is not installed (Debian: apt-get install valgrind); skipped")
        return None
    counts: dict[str, int] = {}
    orders: dict[int, int] = {}
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as tmp:
        work = Path(tmp)
        for candles in (SMALL, LARGE):
            data = work / f"SYN-USD_1m-{candles}.csv"
            generate(data, candles)
            for case, strategy in (("trading", "FlipEveryCandle"), ("idle", "NeverTrade")):
                config = write_config(work / f"{case}-{candles}", data, [order_spec(strategy)])
                out = work / f"out-{case}-{candles}"
                counts[f"{case}-{candles}"] = instructions(replay_command(config, data, out), work)
                if case == "trading":
                    orders[candles] = orders_filled(out)
                elif orders_filled(out):
                    raise RuntimeError("the strategy that never trades filled orders")
    extra = (counts[f"trading-{LARGE}"] - counts[f"idle-{LARGE}"]) - (counts[f"trading-{SMALL}"] - counts[f"idle-{SMALL}"])
    result = {
        "instructions_per_order": round(extra / (orders[LARGE] - orders[SMALL])),
        "instructions_per_candle": round((counts[f"idle-{LARGE}"] - counts[f"idle-{SMALL}"]) / (LARGE - SMALL)),
        "orders": orders,
        "counts": counts,
    }
    print(
        f"instructions under callgrind (PYTHONHASHSEED=0), differences of {SMALL:,}- and {LARGE:,}-candle replays, candle events on:"
        f" per market order {result['instructions_per_order']:,}, per candle of a never-trading strategy {result['instructions_per_candle']:,}"
    )
    print(json.dumps(result))
    return result
