#!/usr/bin/env python3
"""Cluster benchmarks: `bot replay --cluster` through a real nats-server (the cluster extra's) on a free loopback port.

Three cases, each `bot replay --cluster URL --workers N` as a user runs it, figures read from the
hub's and the workers' summary lines (log level INFO):

- latency: the bench's 10 strategies on synthetic 1m candles over 2 workers: the round trip of a
  turn, hub sent -> every decision back (candle to decision over NATS), p50/p99;
- cpu: 2 strategies spending --burn-ms of CPU per candle: lockstep time with 1 worker and with 2,
  interleaved rounds, medians (min-max); the speed-up is the point on a 2-core machine;
- many: 1,000 strategies (EMA crossovers) on 10 symbols over 2 workers: turn round trip p99 and
  peak RSS per worker.

    .venv/bin/python scripts/bench.py --suite cluster
    .venv/bin/python scripts/bench_cluster.py --rounds 5 --burn-ms 20 --cpu-candles 200
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
sys.path.insert(0, str(SCRIPTS))
import bench  # the bench's data and strategies

NATS_SERVER = Path(sys.executable).parent / "nats-server"
SUMMARY = re.compile(r"cluster: (\d+) messages to the workers in ([\d.]+) s, round trip p50 ([\d.]+) ms, p99 ([\d.]+) ms, max ([\d.]+) ms")
WORKER = re.compile(r"cluster: worker (w\d+): (\d+) messages answered, \d+ refused, peak RSS (\d+) MB")


@contextmanager
def nats_server(work: Path) -> Iterator[str]:
    """A nats-server with JetStream on a free loopback port (the server picks it: no race) and a store in `work`; its url. Stopped after."""
    if not NATS_SERVER.is_file():
        raise SystemExit(f"no nats-server at {NATS_SERVER}: run bash scripts/setup.sh --cluster")
    sys.path.insert(0, str(REPO))
    from tests.cluster.nats_server import NatsServer  # the tests' server: ports read from its log, readiness awaited

    server = NatsServer(work / "store")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def write_config(folder: Path, sources: dict[str, Path], specs: Sequence[dict[str, Any]]) -> Path:
    """config.json and one file per strategy in `folder` (bench strategies' folder on the path)."""
    (folder / "strategies").mkdir(parents=True, exist_ok=True)
    refs = []
    for spec in specs:
        (folder / "strategies" / f"{spec['id']}.json").write_text(json.dumps(spec))
        refs.append({"file": f"strategies/{spec['id']}.json"})
    candles = {symbol: {"path": str(path), "timeframe": "1m"} for symbol, path in sources.items()}
    config = {"replay": {"candles": candles}, "strategies": refs, "strategy_paths": [str(SCRIPTS / "bench_strategies")]}
    path = folder / "config.json"
    path.write_text(json.dumps(config))
    return path


def cluster_replay(config: Path, out: Path, url: str, workers: int) -> dict[str, Any]:
    """One `bot replay --cluster` run: its summary figures and each worker's peak RSS."""
    command = [sys.executable, "-m", "bot", "replay", "--config", str(config), "--out", str(out), "-q", "--log-level", "INFO",
               "--cluster", url, "--workers", str(workers)]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, check=False)
    summary = SUMMARY.search(run.stderr)
    if run.returncode != 0 or summary is None:
        raise SystemExit(f"bot replay --cluster failed ({run.returncode}):\n{run.stderr[-3000:]}")
    messages, seconds, p50, p99, worst = summary.groups()
    return {
        "messages": int(messages),
        "seconds": float(seconds),
        "p50_ms": float(p50),
        "p99_ms": float(p99),
        "max_ms": float(worst),
        "rss_mb": {name: int(rss) for name, _, rss in WORKER.findall(run.stderr)},
    }


def spread(values: Sequence[float], fmt: str) -> str:
    """median (min-max)."""
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def latency_case(work: Path, url: str, candles: int, rounds: int) -> None:
    data = work / "latency.csv"
    bench.generate(data, candles)
    config = write_config(work / "latency", {"BTC/USD": data}, bench.strategies(10))
    runs = [cluster_replay(config, work / f"latency-out-{i}", url, 2) for i in range(rounds)]
    print(f"latency: 10 strategies, {candles:,} candles, 2 workers: turn round trip (hub -> decisions back) "
          f"p50 {spread([r['p50_ms'] for r in runs], '.2f')} ms, p99 {spread([r['p99_ms'] for r in runs], '.2f')} ms, "
          f"max {spread([r['max_ms'] for r in runs], '.1f')} ms")  # fmt: skip


def cpu_case(work: Path, url: str, candles: int, burn_ms: float, rounds: int) -> None:
    data = work / "cpu.csv"
    bench.generate(data, candles)
    specs = [
        {"id": f"burn_{i}", "module": "bench_burn", "symbol": "BTC/USD", "timeframe": "1m", "quantity": 0.1, "params": {"burn_ms": burn_ms}}
        for i in range(2)
    ]
    config = write_config(work / "cpu", {"BTC/USD": data}, specs)
    times: dict[int, list[float]] = {1: [], 2: []}
    for i in range(rounds):
        for workers in (1, 2):  # interleaved: both see the same load on a shared host
            times[workers].append(cluster_replay(config, work / f"cpu-out-{i}-{workers}", url, workers)["seconds"])
    rate = {w: [candles / s for s in t] for w, t in times.items()}
    ratios = [b / a for a, b in zip(times[2], times[1], strict=True)]
    print(f"cpu: 2 strategies x {burn_ms:g} ms CPU per candle, {candles:,} candles: 1 worker {spread(rate[1], '.1f')} candles/s, "
          f"2 workers {spread(rate[2], '.1f')} candles/s: {spread(ratios, '.2f')}x")  # fmt: skip


def many_case(work: Path, url: str, candles: int) -> None:
    sources = {}
    for i in range(10):
        path = work / f"many-{i}.csv"
        bench.generate(path, candles, seed=1000 + i)
        sources[f"S{i}/USD"] = path
    pairs = [(5, 20), (8, 21), (10, 30), (12, 26), (15, 40), (20, 50), (7, 25), (9, 35), (6, 18), (11, 33)]
    specs = []
    for symbol_index, symbol in enumerate(sources):
        for j in range(100):
            fast, slow = pairs[j % len(pairs)]
            specs.append({
                "id": f"ema_{symbol_index}_{j}", "symbol": symbol, "timeframe": "1m", "quantity": 0.01,
                "analyzers": [{"type": "ema_cross", "params": {"fast": fast, "slow": slow + j // len(pairs)}}],
            })  # fmt: skip
    config = write_config(work / "many", sources, specs)
    run = cluster_replay(config, work / "many-out", url, 2)
    rss = ", ".join(f"{name} {mb} MB" for name, mb in sorted(run["rss_mb"].items()))
    print(f"many: 1,000 strategies on 10 symbols, {candles:,} candles each, 2 workers: turn round trip p50 {run['p50_ms']:.2f} ms, "
          f"p99 {run['p99_ms']:.2f} ms; {run['messages']:,} turns in {run['seconds']:.1f} s; peak RSS per worker: {rss}")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="runs of the latency and cpu cases (interleaved in cpu)")
    parser.add_argument("--latency-candles", type=int, default=20_000)
    parser.add_argument("--cpu-candles", type=int, default=200)
    parser.add_argument("--burn-ms", type=float, default=20.0)
    parser.add_argument("--many-candles", type=int, default=500)
    parser.add_argument("--cases", nargs="+", choices=("latency", "cpu", "many"), default=["latency", "cpu", "many"])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as scratch:
        work = Path(scratch)
        with nats_server(work) as url:
            if "latency" in args.cases:
                latency_case(work, url, args.latency_candles, args.rounds)
            if "cpu" in args.cases:
                cpu_case(work, url, args.cpu_candles, args.burn_ms, args.rounds)
            if "many" in args.cases:
                many_case(work, url, args.many_candles)
    return 0


if __name__ == "__main__":
    sys.exit(main())
