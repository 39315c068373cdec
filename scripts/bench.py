#!/usr/bin/env python3
"""Replay throughput benchmark: prints candles/s, candle-deliveries/s and peak memory.

Each case runs in its own subprocess so its peak RSS is its own. The input is a synthetic
1m series (geometric random walk, fixed seed) written once to a temporary CSV and streamed
from disk by the replay, as a recorded file would be.

    .venv/bin/python scripts/bench.py            # all cases, 525,600 candles (one year of 1m)
    .venv/bin/python scripts/bench.py --candles 100000
"""
from __future__ import annotations

import argparse
import json
import math
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
START_TS = 1_672_531_200_000  # 2023-01-01T00:00:00Z


def generate(path: Path, count: int, seed: int = 20_240_101) -> None:
    """Write `count` synthetic 1m candles in the recorded CSV format."""
    rng = random.Random(seed)
    price = 30_000.0
    with path.open("w") as out:
        out.write("ts_ms,open,high,low,close,volume\n")
        for i in range(count):
            open_ = price
            close = open_ * math.exp(rng.gauss(0.0, 0.0009))
            high = max(open_, close) * (1 + abs(rng.gauss(0.0, 0.0004)))
            low = min(open_, close) * (1 - abs(rng.gauss(0.0, 0.0004)))
            volume = abs(rng.gauss(50.0, 20.0))
            out.write(f"{START_TS + i * 60_000},{open_:.2f},{high:.2f},{low:.2f},{close:.2f},{volume:.4f}\n")
            price = close


def strategies(count: int) -> list[dict[str, Any]]:
    """`count` strategy files on BTC/USD 1m: ema_cross variants, then RSI reversion with exits."""
    specs: list[dict[str, Any]] = []
    ema_pairs = [(12, 26), (5, 20), (9, 21), (20, 50), (8, 34)]
    for i in range(count):
        if i % 2 == 0:
            fast, slow = ema_pairs[(i // 2) % len(ema_pairs)]
            specs.append(
                {
                    "id": f"ema_{i}",
                    "symbol": "BTC/USD",
                    "timeframe": "1m",
                    "quantity": 0.1,
                    "analyzers": [{"type": "ema_cross", "params": {"fast": fast, "slow": slow}}],
                }
            )
        else:
            specs.append(
                {
                    "id": f"rsi_{i}",
                    "symbol": "BTC/USD",
                    "timeframe": "1m",
                    "quantity": 0.1,
                    "analyzers": [{"type": "rsi", "params": {"period": 14}}],
                    "exits": {"stop_loss_pct": 1.0, "take_profit": [{"pct": 0.5, "close_pct": 50}, {"pct": 1.0, "close_pct": 50}]},
                    "fees": {"taker_bps": 5, "maker_bps": 2},
                }
            )
    return specs


def run_case(data: Path, n_strategies: int, log_candles: bool) -> dict[str, Any]:
    """Run one replay in this process and return its figures."""
    import anyio

    from bot.config.loader import load_config
    from bot.log import BotLogger
    from bot.replay.runner import Replay
    from bot.replay.sources import resolve_sources

    work = Path(tempfile.mkdtemp(prefix="bench-"))
    (work / "strategies").mkdir()
    refs = []
    for spec in strategies(n_strategies):
        (work / "strategies" / f"{spec['id']}.json").write_text(json.dumps(spec))
        refs.append({"file": f"strategies/{spec['id']}.json"})
    config = {"replay": {"candles": {"BTC/USD": {"path": str(data), "timeframe": "1m"}}, "log_candles": log_candles}, "strategies": refs}
    (work / "config.json").write_text(json.dumps(config))
    loaded = load_config(work / "config.json")
    sources, problems = resolve_sources(loaded)
    assert not problems, problems
    replay = Replay(loaded, sources, work / "out", BotLogger.to_stderr(level=40))
    started = time.perf_counter()
    result = anyio.run(replay.run)
    elapsed = time.perf_counter() - started
    return {
        "strategies": n_strategies,
        "log_candles": log_candles,
        "candles": result.candles,
        "events": result.events,
        "trades": result.report["totals"]["trades"],
        "seconds": elapsed,
        "candles_per_s": result.candles / elapsed,
        "deliveries_per_s": result.candles * n_strategies / elapsed,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candles", type=int, default=525_600)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        n, log = args.case.split(",")
        print(json.dumps(run_case(args.data, int(n), log == "log")))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        data = Path(tmp) / "SYN-USD_1m.csv"
        generate(data, args.candles)
        cases = [(1, "nolog"), (1, "log"), (10, "nolog"), (10, "log")]
        print(f"replay benchmark: {args.candles:,} synthetic 1m candles, python {sys.version.split()[0]}")
        print(f"{'strategies':>10} {'events.jsonl':>13} {'seconds':>8} {'candles/s':>11} {'deliveries/s':>13} {'events':>10} {'trades':>7} {'peak MB':>8}")
        for n, log in cases:
            out = subprocess.run(
                [sys.executable, __file__, "--case", f"{n},{log}", "--data", str(data)], check=True, capture_output=True, text=True, cwd=REPO
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            events = "with candles" if r["log_candles"] else "trading only"
            print(
                f"{r['strategies']:>10} {events:>13} {r['seconds']:>8.2f} {r['candles_per_s']:>11,.0f} {r['deliveries_per_s']:>13,.0f} "
                f"{r['events']:>10,} {r['trades']:>7,} {r['peak_rss_mb']:>8.1f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
