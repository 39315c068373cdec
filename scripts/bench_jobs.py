#!/usr/bin/env python3
"""`bot replay --jobs N` against one process: wall time of the whole command on the bench's 10-strategy config.

The config is scripts/bench.py's (synthetic 1m candles, its strategies, no global risk). Runs
alternate between the job counts (the host is shared: interleaved runs see the same load) and
the medians are compared; the outputs of every run are checked byte-identical to the first.

    .venv/bin/python scripts/bench_jobs.py                      # 525,600 candles, --jobs 1 and 2, 3 rounds
    .venv/bin/python scripts/bench_jobs.py --candles 100000 --rounds 5 --jobs 1 2 4
"""
from __future__ import annotations

import argparse
import filecmp
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # the bench's data and strategies

OUTPUTS = ("events.jsonl", "trades.csv", "equity.csv", "report.json")


def write_config(work: Path, data: Path, strategies: int, log_candles: bool) -> Path:
    """The bench's config of `strategies` strategies on `data`, in `work`."""
    (work / "strategies").mkdir()
    refs = []
    for spec in bench.strategies(strategies):
        (work / "strategies" / f"{spec['id']}.json").write_text(json.dumps(spec))
        refs.append({"file": f"strategies/{spec['id']}.json"})
    config = {"replay": {"candles": {"BTC/USD": {"path": str(data), "timeframe": "1m"}}, "log_candles": log_candles}, "strategies": refs}
    path = work / "config.json"
    path.write_text(json.dumps(config))
    return path


def run(config: Path, out: Path, jobs: int) -> tuple[float, float]:
    """Wall seconds of one `bot replay --quiet --jobs N`, and the CPU seconds of all its processes."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bot", "replay", "--config", str(config), "--out", str(out), "--quiet", "--jobs", str(jobs)], check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candles", type=int, default=525_600)
    parser.add_argument("--strategies", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--no-candle-events", action="store_true", help="log_candles false (the bench's 'trading only' row)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bot-jobs-bench-") as tmp:
        work = Path(tmp)
        data = work / "SYN-USD_1m.csv"
        bench.generate(data, args.candles)
        config = write_config(work, data, args.strategies, not args.no_candle_events)
        times: dict[int, list[float]] = {jobs: [] for jobs in args.jobs}
        cpu: dict[int, list[float]] = {jobs: [] for jobs in args.jobs}
        reference = work / "reference"
        for round_ in range(args.rounds):
            for jobs in args.jobs:
                out = work / f"out-{jobs}"
                wall, used = run(config, out, jobs)
                times[jobs].append(wall)
                cpu[jobs].append(used)
                if not reference.exists():
                    out.rename(reference)
                    continue
                different = [name for name in OUTPUTS if not filecmp.cmp(reference / name, out / name, shallow=False)]
                if different:
                    print(f"--jobs {jobs}: {', '.join(different)} differ from the first run", file=sys.stderr)
                    return 1
            print(f"round {round_ + 1}: " + "  ".join(f"--jobs {jobs} {times[jobs][-1]:.2f}s (cpu {cpu[jobs][-1]:.2f}s)" for jobs in args.jobs), flush=True)
        base = statistics.median(times[args.jobs[0]])
        events = "with candle events" if not args.no_candle_events else "trading only"
        print(f"{args.candles:,} candles x {args.strategies} strategies, {events}; medians of {args.rounds} interleaved runs (wall, whole command):")
        for jobs in args.jobs:
            median = statistics.median(times[jobs])
            spread = f"{min(times[jobs]):.2f}-{max(times[jobs]):.2f}"
            print(f"  --jobs {jobs}: {median:6.2f} s  (range {spread})  speed-up {base / median:.2f}x  cpu {statistics.median(cpu[jobs]):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
