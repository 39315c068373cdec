#!/usr/bin/env python3
"""Cluster benchmarks through a real nats-server (the cluster extra's) on a free loopback port.

Three cases of `bot replay --cluster URL --workers N` as a user runs it, figures read from the
hub's and the workers' summary lines (log level INFO):

- latency: the bench's 10 strategies on synthetic 1m candles over 2 workers: the round trip of a
  turn, hub sent -> every decision back (candle to decision over NATS), p50/p99;
- cpu: 2 strategies spending --burn-ms of CPU per candle: lockstep time with 1 worker and with 2,
  interleaved rounds, medians (min-max); the speed-up is the point on a 2-core machine;
- many: 1,000 strategies (EMA crossovers) on 10 symbols over 2 workers: turn round trip p99 and
  peak RSS per worker.

Two of the daemon hub (`bot run`, cluster placement "workers", paper on the recorded BTC/USD 1m
candles) with `bot worker` processes w1 and w2, figures read from `bot ctl status` and `metrics`:

- isolation: --light (4) cheap strategies on worker B, one on worker A burning
  --isolation-burn-ms (200) of CPU per candle, candles 250 ms apart (feed.speed 240): the light
  strategies' decision wait p99 (turn barred on the hub -> decision back, RemoteLanes' metric)
  over --isolation-candles (120), against a baseline whose strategy on A burns nothing;
  interleaved rounds, medians (min-max), the ratio;
- failover: kill -9 of the worker holding --failover-strategies (100) light strategies (as many
  on the other), stepped hub, --lease-ttl-s (3): seconds to their minds on the survivor (the
  hub's "its mind is on worker" lines) and to every strategy decided (the next step returned).

    .venv/bin/python scripts/bench.py --suite cluster
    .venv/bin/python scripts/bench_cluster.py --rounds 5 --burn-ms 20 --cpu-candles 200
    .venv/bin/python scripts/bench_cluster.py --cases isolation,failover
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
sys.path.insert(0, str(SCRIPTS))
sys.path.insert(0, str(REPO))  # the tests' helpers: nats-server, daemon process and config, control client
import bench  # the bench's data and strategies

NATS_SERVER = Path(sys.executable).parent / "nats-server"
SUMMARY = re.compile(r"cluster: (\d+) messages to the workers in ([\d.]+) s, round trip p50 ([\d.]+) ms, p99 ([\d.]+) ms, max ([\d.]+) ms")
WORKER = re.compile(r"cluster: worker (w\d+): (\d+) messages answered, \d+ refused, peak RSS (\d+) MB")


@contextmanager
def nats_server(work: Path) -> Iterator[str]:
    """A nats-server with JetStream on a free loopback port (the server picks it: no race) and a store in `work`; its url. Stopped after."""
    if not NATS_SERVER.is_file():
        raise SystemExit(f"no nats-server at {NATS_SERVER}: run bash scripts/setup.sh --cluster")
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


CASES = ("latency", "cpu", "many", "isolation", "failover")

# -- the daemon hub (`bot run`, cluster placement "workers") and `bot worker` processes ---------------------

# A bound on a hang, never a measure: a step, a placement or a failover that takes longer fails the case.
DEADLINE_S = 120.0
# The hub's log line saying where a strategy's mind went (bot/cluster/hub_minds.py), and its leading UTC time.
MIND_ON = re.compile(r"^(\S+ \S+)Z INFO \[(\S+)\] cluster: its mind is on worker (\S+) \(epoch \d+")


def light_specs(count: int, prefix: str = "light") -> list[dict[str, Any]]:
    """`count` cheap strategies on BTC/USD 1m: EMA crossovers of different lengths (the minds differ, the cost per candle is tiny)."""
    return [
        {"id": f"{prefix}_{i}", "symbol": "BTC/USD", "timeframe": "1m", "quantity": 0.01,
         "analyzers": [{"type": "ema_cross", "params": {"fast": 5 + i % 10, "slow": 20 + i % 30}}]}
        for i in range(count)
    ]  # fmt: skip


def write_hub_config(folder: Path, url: str, name: str, specs: Sequence[dict[str, Any]], feed: dict[str, Any], lease_ttl_s: float) -> Path:
    """A paper daemon on the recorded BTC candles whose strategies (`specs`, one file each) decide on the workers of cluster `name`.

    Each round has a cluster name of its own: leases of an earlier round's workers (kept on the server) never place its strategies.
    """
    from tests.daemon.process import write_daemon_config  # the tests' daemon config: paper, recorded BTC/USD 1m, control socket, journal

    for spec in specs:
        (folder / f"{spec['id']}.json").write_text(json.dumps(spec))
    cluster = {"url": url, "name": name, "placement": "workers", "lease_ttl_s": lease_ttl_s}
    return write_daemon_config(
        folder, feed=feed, cluster=cluster, strategies=[{"file": f"{spec['id']}.json"} for spec in specs], strategy_paths=[str(SCRIPTS / "bench_strategies")]
    )


def start_worker(config: Path, name: str, url: str) -> subprocess.Popen[bytes]:
    """A `bot worker --name NAME` of the config's cluster, its log in worker-NAME.log beside the config."""
    with (config.parent / f"worker-{name}.log").open("wb") as log:
        return subprocess.Popen([sys.executable, "-m", "bot", "worker", "--config", str(config), "--name", name, "--cluster", url],
                                cwd=config.parent, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Send `sig` unless it is gone, wait; SIGKILL if it hangs."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def poll(probe: Callable[[], Any], what: str, timeout: float = DEADLINE_S) -> Any:
    """`probe()` every 50 ms until it is truthy; a SystemExit naming `what` after `timeout` s (the case cannot measure what it meant to)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise SystemExit(f"timed out after {timeout:g} s waiting for {what}")


def control(socket: Path, cmd: str, args: dict[str, Any] | None = None) -> Any:
    """One control command's result (`bot ctl CMD`); a SystemExit when the daemon refuses it."""
    from tests.control.client import call

    reply = call(socket, cmd, args)
    if not reply["ok"]:
        raise SystemExit(f"bot ctl {cmd} {args or ''} failed: {reply}")
    return reply["result"]


def placement(socket: Path) -> dict[str, str]:
    """Where each strategy's mind is, per `status` (cluster.minds): strategy -> worker."""
    minds = control(socket, "status")["cluster"]["minds"]
    return {sid: mind["worker"] for sid, mind in minds["minds"].items()}


def live_workers(socket: Path) -> set[str]:
    """The workers the hub has taken in and sees alive."""
    workers = control(socket, "status")["cluster"]["minds"]["workers"]
    return {name for name, worker in workers.items() if worker["live"]}


# -- isolation: a CPU-heavy strategy on worker A, light ones on worker B ----------------------------------

# 1m candles 250 ms apart (the brief's "at least 250 ms"): the burner's 200 ms fit between two, with little to spare.
ISOLATION_SPEED = 240
SPACING_S = 60 / ISOLATION_SPEED
# Worker A holds the burner, worker B the light strategies.
WORKER_A, WORKER_B = "w1", "w2"


def isolation_round(folder: Path, url: str, name: str, light: int, burn_ms: float, warmup: int, candles: int) -> dict[str, Any]:
    """One round: the strategies placed (light ones on B, the burner burning `burn_ms`, 0 in a baseline round, on A), the hub started
    again on its journal (the same placement, its decision waits from zero); after `warmup` candles, `candles` measured: the light
    strategies' decision waits (p50, p99, µs) and the feed's candle spacing (s)."""
    folder.mkdir(parents=True)
    specs = light_specs(light)
    feed = {"speed": ISOLATION_SPEED, "loop": True, "backfill": 300}
    config = write_hub_config(folder, url, name, specs, feed, lease_ttl_s=3)
    burner = {"id": "burner", "module": "bench_burn", "symbol": "BTC/USD", "timeframe": "1m", "quantity": 0.01, "params": {"burn_ms": burn_ms}}
    from tests.daemon.process import DaemonProcess

    with ExitStack() as stack:
        placed = place_apart(stack, config, url, [spec["id"] for spec in specs], burner)
        # The decision-wait metric has no reset, and the first hub's hold the placements and the burner's load: a fresh hub process
        # on the same journal and cluster, the burner now in its config, finds each mind at its lease's holder (kept there).
        write_hub_config(folder, url, name, [*specs, burner], feed, lease_ttl_s=3)
        hub = DaemonProcess(config)
        stack.callback(hub.stop)
        hub.wait_ready(DEADLINE_S)
        poll(lambda: placement(hub.socket) == placed, "the restarted hub's minds where they were")
        wait_candles(hub.socket, warmup)
        # The window: from here until `candles` more candles are out, on the bench's clock.
        first, began = feed_candles(hub.socket), time.perf_counter()
        wait_candles(hub.socket, candles, first)
        ended, last = time.perf_counter(), feed_candles(hub.socket)
        figures = control(hub.socket, "metrics")["strategies"]
        if placement(hub.socket) != placed:
            raise SystemExit(f"isolation: a mind moved during the round: {placement(hub.socket)}, placed {placed}")
    lights = [figures[spec["id"]] for spec in specs]
    return {
        # The worst light strategy's: the figure a strategy on B would see.
        "p99_us": max(f["decision_wait_p99_us"] for f in lights),
        "p50_us": statistics.median(f["decision_wait_p50_us"] for f in lights),
        "spacing_s": (ended - began) / (last - first),
        # The p99's samples: every decision of the restarted hub (warm-up included).
        "samples": min(f["processed"] for f in lights),
        "coalesced": sum(f["coalesced"] for f in lights),
        "burner_coalesced": figures["burner"]["coalesced"],
    }


def place_apart(stack: ExitStack, config: Path, url: str, light: list[str], burner: dict[str, Any]) -> dict[str, str]:
    """Worker B alone, a hub whose light strategies then all go to B; worker A, then the burner loaded: A holds fewest, so it goes
    there. The workers are left running (stopped by `stack`), the hub stopped; the placement as `status` said it (SystemExit if wrong)."""
    from tests.daemon.process import DaemonProcess

    stack.callback(stop_process, start_worker(config, WORKER_B, url))
    hub = DaemonProcess(config)
    try:
        hub.wait_ready(DEADLINE_S)
        poll(lambda: set(light) <= placement(hub.socket).keys(), "the light strategies placed")
        stack.callback(stop_process, start_worker(config, WORKER_A, url))
        poll(lambda: WORKER_A in live_workers(hub.socket), f"worker {WORKER_A} taken in")
        (config.parent / "burner.json").write_text(json.dumps(burner))
        control(hub.socket, "load", {"file": str(config.parent / "burner.json"), "activate": True})
        placed: dict[str, str] = poll(lambda: (where := placement(hub.socket)).get(burner["id"]) and where, "the burner placed")
    finally:
        if hub.stop() != 0:
            raise SystemExit(f"isolation: the placing hub stopped badly:\n{hub.log.read_text()[-3000:]}")
    wrong = {sid: worker for sid, worker in placed.items() if worker != (WORKER_A if sid == burner["id"] else WORKER_B)}
    if wrong:
        raise SystemExit(f"isolation: the burner must be on {WORKER_A}, the light strategies on {WORKER_B}; misplaced: {wrong}")
    return placed


def wait_candles(socket: Path, count: int, start: int | None = None) -> None:
    """Until the feed has published `count` candles after `start` (now, if None): asleep for most of it, then `status` every 50 ms.

    The bench shares the 2 cores with what it measures: it stays off the control socket (and the CPU) while nothing can be due.
    """
    start = feed_candles(socket) if start is None else start
    time.sleep(max(0.0, (count - 2) * SPACING_S))
    poll(lambda: feed_candles(socket) >= start + count, f"{count} candles from the feed", timeout=DEADLINE_S + count * SPACING_S)


def feed_candles(socket: Path) -> int:
    """Candles the hub's feed has published (`status` feed.candles, the backfill included)."""
    count: int = control(socket, "status")["feed"]["candles"]
    return count


def isolation_case(work: Path, url: str, light: int, burn_ms: float, warmup: int, candles: int, rounds: int) -> None:
    if warmup + candles < 100:
        # Fewer samples and the p99 is the largest: the restarted hub's first decision's, which waited for its Sync.
        raise SystemExit("isolation: --isolation-warmup + --isolation-candles must be at least 100")
    runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    for i in range(rounds):
        for burning in (False, True):  # interleaved: baseline and burner rounds see the same host
            label = f"iso{i}{'b' if burning else 'a'}"
            runs[burning].append(isolation_round(work / label, url, label, light, burn_ms if burning else 0.0, warmup, candles))
    base, burn = runs[False], runs[True]
    ratios = [b["p99_us"] / a["p99_us"] for a, b in zip(base, burn, strict=True)]
    print(f"isolation: {light} light strategies on worker B, 1 strategy on worker A burning {burn_ms:g} ms CPU per candle (baseline: 0 ms), "
          f"1m candles {SPACING_S * 1000:.0f} ms apart, {candles} candles after {warmup} of warm-up, {rounds} interleaved rounds of each:")
    for title, rows in (("baseline", base), ("burner", burn)):
        print(f"  {title:<8} light decision wait p99 {spread([r['p99_us'] / 1000 for r in rows], '.1f')} ms, "
              f"p50 {spread([r['p50_us'] / 1000 for r in rows], '.2f')} ms; candle spacing {spread([r['spacing_s'] * 1000 for r in rows], '.0f')} ms; "
              f"coalesced: light {sum(r['coalesced'] for r in rows)}, burner {sum(r['burner_coalesced'] for r in rows)}")  # fmt: skip
    print(f"  p99 burner / baseline: {spread(ratios, '.2f')}x (the requirement: at most 1.20x); each p99 the worst light strategy's over "
          f"its {min(r['samples'] for r in base + burn)}+ decisions on a restarted hub (from 100 on, the first one's Sync is above its rank)")
    print(f"  on {os.cpu_count()} cores the burner's worker takes a whole core for {burn_ms:g} of every {SPACING_S * 1000:.0f} ms; the hub, worker B "
          "and the NATS server share what is left, so this measures core contention as much as the workers' isolation")


# -- failover: kill -9 of a worker, its strategies decided on the other ------------------------------------


def failover_round(folder: Path, url: str, name: str, held: int, ttl_s: float) -> dict[str, Any]:
    """One fresh stepped hub with 2 x `held` light strategies spread over w1 and w2; kill -9 of the worker holding `held` (w1) and one candle
    stepped: seconds from the kill to the last of its strategies' "its mind is on worker w2" lines, and to every strategy decided."""
    folder.mkdir(parents=True)
    specs = light_specs(2 * held)
    # Stepped: the feed moves only when told, so the kill finds no candle under way and the next one is stepped right after it.
    config = write_hub_config(folder, url, name, specs, {"speed": 60, "loop": True, "backfill": 100}, lease_ttl_s=ttl_s)
    from tests.daemon.process import DaemonProcess

    with ExitStack() as stack:
        workers = {worker: start_worker(config, worker, url) for worker in ("w1", "w2")}
        for proc in workers.values():
            stack.callback(stop_process, proc)
        hub = DaemonProcess(config, stepped=True)
        stack.callback(hub.stop)
        hub.wait_ready(DEADLINE_S)
        # Both taken in before the first candle: the least-loaded rule then spreads the strategies half and half.
        poll(lambda: live_workers(hub.socket) == {"w1", "w2"}, "both workers taken in")
        hub.step(3, timeout=DEADLINE_S)
        placed = placement(hub.socket)
        victims = sorted(sid for sid, worker in placed.items() if worker == "w1")
        if len(placed) != len(specs) or len(victims) != held:
            counts = {worker: list(placed.values()).count(worker) for worker in ("w1", "w2")}
            raise SystemExit(f"failover: {len(specs)} strategies should be spread {held} and {held} before the kill, found {counts}")
        # Workers renew their leases every ttl_s / 4: a kill at a random point of that period, not just after the claims (a full TTL).
        time.sleep(ttl_s / 2 + random.uniform(0, ttl_s / 4))
        killed = time.time()  # the wall clock: the hub's log lines carry UTC wall times
        stop_process(workers["w1"], signal.SIGKILL)
        # The candle's turns wait for the victims' new minds: the step returns once every strategy decided it.
        hub.step(1, timeout=DEADLINE_S)
        decided = time.time()
        after = placement(hub.socket)
        if set(after.values()) != {"w2"}:
            raise SystemExit(f"failover: minds not all on w2 after the step: {after}")
    moved = [when for when, sid, worker in mind_lines(hub.log) if sid in victims and worker == "w2" and when >= killed]
    if len(moved) < held:
        raise SystemExit(f"failover: {len(moved)} of {held} strategies logged their mind on w2 after the kill:\n{hub.log.read_text()[-3000:]}")
    return {"moved_s": max(moved) - killed, "first_s": min(moved) - killed, "decided_s": decided - killed}


def mind_lines(log: Path) -> list[tuple[float, str, str]]:
    """The hub log's "[sid] cluster: its mind is on worker W" lines: (UTC time as a timestamp, sid, W)."""
    found = []
    for line in log.read_text().splitlines():
        match = MIND_ON.match(line)
        if match:
            when = datetime.fromisoformat(match[1]).replace(tzinfo=UTC).timestamp()
            found.append((when, match[2], match[3]))
    return found


def failover_case(work: Path, url: str, held: int, ttl_s: float, rounds: int) -> None:
    runs = [failover_round(work / f"failover-{i}", url, f"fo{i}", held, ttl_s) for i in range(rounds)]
    print(f"failover: kill -9 of a worker holding {held} of {2 * held} light strategies (lease_ttl_s {ttl_s:g}), {rounds} rounds: to the last of its "
          f"minds on the other worker {spread([r['moved_s'] for r in runs], '.2f')} s (the first {spread([r['first_s'] for r in runs], '.2f')} s), "
          f"to every strategy decided {spread([r['decided_s'] for r in runs], '.2f')} s")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="runs of the latency and cpu cases (interleaved in cpu)")
    parser.add_argument("--latency-candles", type=int, default=20_000)
    parser.add_argument("--cpu-candles", type=int, default=200)
    parser.add_argument("--burn-ms", type=float, default=20.0)
    parser.add_argument("--many-candles", type=int, default=500)
    parser.add_argument("--light", type=int, default=4, help="isolation: light strategies on worker B")
    parser.add_argument("--isolation-burn-ms", type=float, default=200.0, help="isolation: CPU ms the strategy on worker A burns per candle")
    parser.add_argument("--isolation-warmup", type=int, default=12, help="isolation: candles after the placement before the window")
    parser.add_argument("--isolation-candles", type=int, default=120, help="isolation: candles measured (250 ms apart)")
    parser.add_argument("--failover-strategies", type=int, default=100, help="failover: strategies on the killed worker (as many on the other)")
    parser.add_argument("--lease-ttl-s", type=float, default=3.0, help="failover: the cluster's lease_ttl_s")
    parser.add_argument("--cases", nargs="+", default=list(CASES), help=f"any of {', '.join(CASES)}, space- or comma-separated (default: all)")
    args = parser.parse_args(argv)
    args.cases = [case for given in args.cases for case in given.split(",") if case]
    unknown = sorted(set(args.cases) - set(CASES))
    if unknown:
        parser.error(f"--cases: unknown {', '.join(unknown)} (choose from {', '.join(CASES)})")
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as scratch:
        work = Path(scratch)
        with nats_server(work) as url:
            if "latency" in args.cases:
                latency_case(work, url, args.latency_candles, args.rounds)
            if "cpu" in args.cases:
                cpu_case(work, url, args.cpu_candles, args.burn_ms, args.rounds)
            if "many" in args.cases:
                many_case(work, url, args.many_candles)
            if "isolation" in args.cases:
                isolation_case(work, url, args.light, args.isolation_burn_ms, args.isolation_warmup, args.isolation_candles, args.rounds)
            if "failover" in args.cases:
                failover_case(work, url, args.failover_strategies, args.lease_ttl_s, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
