#!/usr/bin/env python3
"""Replay throughput benchmark: the bot against a reference loop, candles/s, deliveries/s, peak memory.

Each case runs in its own process so its peak RSS is its own. The input is a synthetic 1m
series (geometric random walk, fixed seed) written once to a temporary CSV and streamed from
disk, as a recorded file would be.

The stable figure is the ratio: the bot's throughput over that of a plain Python loop with one
object per strategy and the same EMA crossover rule (scripts/bench_reference.py, same CSV,
same trades), both run as commands in the same bench, start-up excluded (each rate is the
difference from a 1,000-candle run), as the median (min-max) of --repeat interleaved runs.

    .venv/bin/python scripts/bench.py                  # everything but the profile
    .venv/bin/python scripts/bench.py --suite ratio    # bot / reference loop, 1 and 10 strategies (100,000 candles)
    .venv/bin/python scripts/bench.py --suite order    # us per market order through the whole path (100,000 candles)
    .venv/bin/python scripts/bench.py --suite instructions  # instructions per order and per candle under valgrind's callgrind
                                                            # (steady on a busy host; needs valgrind; about 3 min; not in "all")
    .venv/bin/python scripts/bench.py --suite replay   # replay throughput in-process, 1 and 10 strategies, candle events off/on (525,600)
    .venv/bin/python scripts/bench.py --suite daemon   # hot-switch, idle memory, live latency
    .venv/bin/python scripts/bench.py --suite http     # candle-to-decision with and without a client loading the HTTP server
                                                       # (page, API reads, /metrics every second, one event stream): 5 interleaved
                                                       # runs of each unless --repeat says more, each its own process (about 7 min;
                                                       # --strategies 100 for a smaller daemon)
    .venv/bin/python scripts/bench.py --suite live     # ws kline message -> strategies done / action queued (fake exchange, loopback)
    .venv/bin/python scripts/bench.py --suite cluster  # bot replay --cluster: turn round trip, 1 vs 2 workers on CPU-heavy strategies, 1,000 strategies;
                                                       # bot run hub + workers: isolation from a CPU-heavy worker, worker failover time
    .venv/bin/python scripts/bench.py --profile        # stage table, us per candle, from py-spy (525,600 candles)
    .venv/bin/python scripts/bench.py --suite ratio --repeat 5 --candles 200000
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
    """Run one replay in this process and return its figures (its folder removed after)."""
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        return _run_case_in(Path(scratch), data, n_strategies, log_candles)


def _run_case_in(work: Path, data: Path, n_strategies: int, log_candles: bool) -> dict[str, Any]:
    import anyio

    from bot.kernel.replay import build_replay
    from bot.log import BotLogger
    from bot.replay.sources import resolve_sources
    from bot.strategy.config_load import load_config

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
    replay = build_replay(loaded, sources, work / "out", BotLogger.to_stderr(level=40))
    started = time.perf_counter()
    result = anyio.run(replay.run)
    elapsed = time.perf_counter() - started
    return {
        "strategies": n_strategies,
        "log_candles": log_candles,
        "candles": result.candles,
        "events": result.events,
        # Totals are per currency (money is never added across currencies); trades can be.
        "trades": sum(totals["trades"] for totals in result.report["totals"].values()),
        "seconds": elapsed,
        "candles_per_s": result.candles / elapsed,
        "deliveries_per_s": result.candles * n_strategies / elapsed,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


# Each suite's input size when --candles is not given.
DEFAULT_CANDLES = {"replay": 525_600, "ratio": 100_000, "order": 100_000, "profile": 525_600}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candles", type=int, help="synthetic candles per run (default: 100,000 for ratio and order, 525,600 for replay and --profile)")
    parser.add_argument("--suite", choices=("all", "ratio", "order", "instructions", "replay", "daemon", "http", "live", "cluster"), default="all")
    parser.add_argument("--repeat", type=int, help="interleaved runs of each case (the profile: of its timing): median (min-max); default 3, http 5 (at least)")
    parser.add_argument("--strategies", type=int, default=1000, help="--suite http: active ema_cross strategies on 10 symbols (default 1,000)")
    parser.add_argument("--round-ms", type=float, help="--suite http: milliseconds between two rounds of candles (default 1,100)")
    parser.add_argument("--profile", action="store_true", help="print the stage table (us per candle) of a 1-strategy replay, from py-spy")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.round_ms is not None and not 0 < args.round_ms < math.inf:
        parser.error("--round-ms must be more than 0")
    # The HTTP load suite compares medians of at least 5 runs each (issue 15).
    http_repeat = max(5, args.repeat or 5)
    args.repeat = args.repeat or 3
    if args.case:
        if args.case.startswith("live"):
            print(json.dumps(run_live_case(args.case)))
            return 0
        if args.case.startswith("daemon:"):
            print(json.dumps(run_daemon_case(args.case.removeprefix("daemon:"))))
            return 0
        n, log = args.case.split(",")
        print(json.dumps(run_case(args.data, int(n), log == "log")))
        return 0

    def candles(suite: str) -> int:
        return int(args.candles or DEFAULT_CANDLES[suite])

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if args.profile:
        import bench_profile

        bench_profile.profile(generate, candles("profile"), args.repeat)
        return 0
    import bench_ratio

    if args.suite in ("all", "ratio"):
        bench_ratio.ratio_suite(generate, candles("ratio"), args.repeat)
    if args.suite in ("all", "order"):
        if args.suite == "all":
            print()
        bench_ratio.order_suite(generate, candles("order"), args.repeat)
    if args.suite == "instructions":
        import bench_instructions

        bench_instructions.instructions_suite(generate)
    if args.suite in ("all", "replay"):
        if args.suite == "all":
            print()
        replay_suite(candles("replay"), args.repeat)
    if args.suite in ("all", "daemon"):
        daemon_suite()
    if args.suite in ("all", "http"):
        import bench_http

        print()
        round_s = bench_http.ROUND_S if args.round_ms is None else args.round_ms / 1000
        bench_http.suite(lambda case: _subprocess_case(f"daemon:{case}"), http_repeat, args.strategies, round_s)
    if args.suite in ("all", "live"):
        live_suite()
    if args.suite in ("all", "cluster"):
        import bench_cluster

        bench_cluster.main(["--rounds", str(args.repeat)])
    return 0


def run_live_case(name: str) -> dict[str, Any]:
    """One live-feed latency run, in this (fresh) process."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_live

    if name == "live":
        return bench_live.live_latency(2000, 10)
    return bench_live.inbox_latency(2000, 10, journal=name == "live:journal")


def live_suite() -> None:
    """ws kline message -> every strategy done / action queued, direct and through the daemon's inboxes."""
    direct = _subprocess_case("live")
    inbox = _subprocess_case("live:inbox")
    journal = _subprocess_case("live:journal")

    def figures(r: dict[str, Any], prefix: str) -> str:
        return f"p50 {r[prefix + 'p50_ms']:.3f} ms  p99 {r[prefix + 'p99_ms']:.3f} ms  max {r[prefix + 'max_ms']:.1f} ms"

    print()
    print(
        f"live feed on the fake exchange over loopback: ETH/BTC 1m, {direct['strategies']} ema_cross strategies,"
        f" {direct['candles']:,} closing kline messages per run"
    )
    rows = [
        ("direct delivery (as replay)", "ws kline message -> hub.ingest returned, all done", direct, ""),
        ("", f"ws kline message -> action put ({direct['action_count']} actions)", direct, "action_"),
    ]
    for label, r in (("inbox delivery (as bot run)", inbox), ("inbox + journal (as bot run)", journal)):
        rows.append((label, "ws kline message -> every strategy done", r, "done_"))
        rows.append(("", f"ws kline message -> action put ({r['action_count']} actions, {r['action_candles']} candles)", r, "action_"))
    for label, what, r, prefix in rows:
        print(f"  {label:<29} {what:<62} {figures(r, prefix)}")
    print(
        f"  journal: {journal['turn_commits']:,} strategy turns journalled, {journal['grouped_turns']:,} of them"
        f" in {journal['group_commits']:,} commits shared by several turns"
    )
    print(json.dumps({"direct": direct, "inbox": inbox, "inbox_journal": journal}))


def run_daemon_case(name: str) -> dict[str, Any]:
    """One daemon benchmark, in this (fresh) process."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_daemon

    if name == "switch":
        return bench_daemon.switch_latency(200)
    if name == "memory":
        return bench_daemon.idle_memory(1000)
    if name.startswith("http:"):
        import bench_http

        variant, strategies, round_s = name.split(",")
        return bench_http.http_latency(load=variant == "http:load", strategies=int(strategies), round_s=float(round_s))
    return bench_daemon.live_latency(1000, 10, 60)


def _subprocess_case(case: str, data: Path | None = None) -> dict[str, Any]:
    command = [sys.executable, __file__, "--case", case]
    if data is not None:
        command += ["--data", str(data)]
    out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def daemon_suite() -> None:
    """Hot-switch latency through the socket, idle memory per strategy, live candle-to-decision latency."""
    print()
    switch = _subprocess_case("daemon:switch")
    print(f"hot-switch through the control socket, {switch['switches']} switches while the feed plays:")
    print(f"  request -> reply            p50 {switch['reply_p50_ms']:.2f} ms   p99 {switch['reply_p99_ms']:.2f} ms")
    print(f"  request -> first candle (B) p50 {switch['first_candle_p50_ms']:.2f} ms   p99 {switch['first_candle_p99_ms']:.2f} ms")
    memory = _subprocess_case("daemon:memory")
    print(f"idle loaded strategies: {memory['strategies']:,} -> RSS +{memory['rss_growth_mb']:.1f} MB ({memory['per_strategy_kb']:.1f} KB each)")
    live = _subprocess_case("daemon:live")
    print(
        f"live mode, {live['strategies']:,} active strategies on {live['symbols']} symbols, {live['decisions']:,} decisions:"
        f" candle-to-decision p50 {live['p50_ms']:.1f} ms  p99 {live['p99_ms']:.1f} ms  max {live['max_ms']:.1f} ms"
    )


def replay_suite(candles: int, repeat: int = 1) -> None:
    """Replay throughput and peak memory, 1 and 10 strategies, with and without candle events (in-process,
    start-up not timed); with repeat > 1, the median (min-max) of interleaved runs."""
    import statistics

    def spread(values: list[float], unit: str) -> str:
        text = format(statistics.median(values), unit)
        return text if len(values) == 1 else f"{text} ({format(min(values), unit)}-{format(max(values), unit)})"

    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        data = Path(tmp) / "SYN-USD_1m.csv"
        generate(data, candles)
        cases = [(1, "nolog"), (1, "log"), (10, "nolog"), (10, "log")]
        runs: dict[tuple[int, str], list[dict[str, Any]]] = {case: [] for case in cases}
        for _ in range(repeat):
            for n, log in cases:
                runs[n, log].append(_subprocess_case(f"{n},{log}", data))
        median = f", median (min-max) of {repeat} interleaved runs" if repeat > 1 else ""
        print(f"replay benchmark: {candles:,} synthetic 1m candles, python {sys.version.split()[0]}{median}")
        width = 8 if repeat == 1 else 20
        rate = 11 if repeat == 1 else 27
        print(f"{'strategies':>10} {'events.jsonl':>13} {'seconds':>{width}} {'candles/s':>{rate}} {'deliveries/s':>{rate}} {'events':>10} {'trades':>7} {'peak MB':>8}")
        for (n, log), rows in runs.items():
            r = rows[0]
            events = "with candles" if r["log_candles"] else "trading only"
            print(
                f"{r['strategies']:>10} {events:>13} {spread([x['seconds'] for x in rows], '.2f'):>{width}}"
                f" {spread([x['candles_per_s'] for x in rows], ',.0f'):>{rate}} {spread([x['deliveries_per_s'] for x in rows], ',.0f'):>{rate}}"
                f" {r['events']:>10,} {r['trades']:>7,} {max(x['peak_rss_mb'] for x in rows):>8.1f}"
            )


if __name__ == "__main__":
    sys.exit(main())
