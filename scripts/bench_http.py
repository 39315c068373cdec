"""HTTP under load (imported by scripts/bench.py, `--suite http`): candle-to-decision latency with and without a client of the HTTP server.

The daemon is the real one (bot.kernel.daemon.Daemon, run in the bench's process): its config has an
`http` section, so `Daemon._http` builds the HttpServer, api_app and DaemonMetrics over the Control
of its DaemonState exactly as `bot run` does, serving in the same event loop as the strategies, with
its journal, inboxes and control socket. Only its recorded feed's pacer is the bench's: it releases
one candle round (every symbol's candle of the next minute) every ROUND_S (1.1 s; `--round-ms`), each
after the previous round was processed (every strategy's turn settled: committed, delivered, sent),
and notes when it was due. Latency is from then to the end of each strategy's handler (its inbox
task), as `bench_daemon.live_latency` measures it from publication: 1,000 `ema_cross` strategies on
10 symbols. From when the round was due rather than when the loop got to it: a round that falls due
while the loop answers a request waits, as a live candle arriving then would. A round due before
the one before had settled (a late round: the rounds in which a thousand strategies trade take up
to about 0.8 s on a 2-core host) is timed from the moment it had: from there whatever the loop does
first (the feed position's write, a request's slice, a stream's send, a garbage collection) counts,
the time the round before took does not (it is in that round's `settled` figure). The figures timed
from the due time, that backlog included, are printed too (`p99_from_due_ms`), with how many rounds
were late and how long each round took to settle.

With load, a separate process (this file run as `--load URL`) does one round a second until its
stdin closes: `/` and the static assets its HTML names (src= and href= on this server; a 404 is
counted, not an error), the API reads (status, strategies, positions, metrics, and trades, equity
and candles where they exist), `/metrics`, while one `/api/v1/events` stream stays open and read.
It prints how many requests each path answered, and at the end what each request costs alone on
the idle daemon. Without load, the same process starts (`--idle URL`) and sends nothing: the same
daemon plays the same rounds with nobody on its HTTP server. Both variants settle SETTLE_S after
start-up and play WARMUP_ROUNDS untimed first. Each run is its own process; `suite` interleaves them.
"""
from __future__ import annotations

import http.client
import json
import math
import os
import re
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.abc

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "BTC-USD-PERP_1m.csv"
TOKEN_ENV = "BOT_BENCH_HTTP_TOKEN"
TOKEN = "bench-http-token"
# One candle round (every symbol's next 1m candle) every ROUND_S (live 1m candles come 60 s apart; the rounds in which a
# thousand strategies trade settle within about 0.8 s on a 2-core host). Not a whole number of the load's rounds: each
# round falls due 0.1 s later in the load's second than the one before, so the rounds meet every moment of its requests
# (1 s apart, every round would fall due at one moment of them, the same in every run). Rounds before the timed ones
# settle the load and the caches.
ROUND_S = 1.1
WARMUP_ROUNDS = 8
SETTLE_S = 3.0
TIMED_ROUNDS = 100
# The load process: one round of requests every LOAD_ROUND_S.
LOAD_ROUND_S = 1.0
# API reads that may not exist yet (a 404 is counted, not an error): probed once, then read every round when they answered.
OPTIONAL_READS = ("/api/v1/trades?limit=1", "/api/v1/equity", "/api/v1/strategies/s0/trades", "/api/v1/strategies/s0/equity", "/api/v1/strategies/s0/candles")
READS = ("/api/v1/status", "/api/v1/strategies", "/api/v1/positions", "/api/v1/metrics", "/api/v1/strategies/s0", "/api/v1/strategies/s0/positions")
ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"'#?]+)""", re.IGNORECASE)


def _pct(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _strategy(sid: str, symbol: str, fast: int, slow: int) -> dict[str, Any]:
    return {"id": sid, "symbol": symbol, "timeframe": "1m", "quantity": 0.01, "analyzers": [{"type": "ema_cross", "params": {"fast": fast, "slow": slow}}]}


def _write_config(folder: Path, strategies: int, symbols: int) -> Path:
    """config.json with an http section, 10 symbols each played from the bundled BTC file, `strategies` ema_cross files."""
    names = [f"SYM{i}/USD" for i in range(symbols)]
    (folder / "strategies").mkdir()
    refs = []
    for i in range(strategies):
        spec = _strategy(f"s{i}", names[i % symbols], 5 + i % 7, 20 + i % 11)
        (folder / "strategies" / f"s{i}.json").write_text(json.dumps(spec))
        refs.append({"file": f"strategies/s{i}.json"})
    config = {
        "mode": "paper",
        "replay": {"candles": {name: {"path": str(DATA), "timeframe": "1m"} for name in names}},
        # The backfill warms every strategy up (300 candles per symbol); then the bench's pacer plays.
        "feed": {"speed": 1, "loop": False, "backfill": 300 * symbols},
        "control": {"socket": "bot.sock"},
        "journal": {"path": "journal.sqlite"},
        "http": {"listen": "127.0.0.1:0", "token_env": TOKEN_ENV},
        "strategies": refs,
    }
    path = folder / "config.json"
    path.write_text(json.dumps(config))
    return path


@dataclass(slots=True)
class TimedRound:
    """One timed round's moments, perf_counter seconds: due, could start, its first and last decision, every turn settled."""

    due: float
    # When it was due, or when the round before had settled if that was later.
    start: float
    first: float = math.inf
    last: float = 0.0
    # When every strategy's turn of it had settled (committed, delivered, sent): the strategies' work drained after it.
    settled: float = 0.0


class RoundPacer:
    """Releases one round of candles (one close time, every symbol) every `round_s`, each after the round before was processed.

    Notes each timed round's moments in `timed` (by close time): when it was due, when it could start (when due, or
    when the round before had settled if that was later: `drained_at` gives the moment the strategies' work last drained)
    and when it settled.
    """

    def __init__(
        self, rounds: int, warmup: int, round_s: float, ready: Callable[[], Awaitable[None]], drained_at: Callable[[], float],
        timed: dict[int, TimedRound],
    ) -> None:
        self._rounds = rounds
        self._warmup = warmup
        self._round_s = round_s
        self._ready = ready
        self._drained_at = drained_at
        self._timed = timed
        self._processed: Callable[[], Awaitable[None]] | None = None
        self._current: int | None = None
        self._released = 0
        self._next = 0.0
        self.finished = anyio.Event()
        self.timed_seconds = 0.0
        self._timed_from = 0.0
        # CPU seconds of this whole process (the daemon: its loop and its threads) over the timed rounds.
        self.timed_cpu_seconds = 0.0
        self._cpu_from = 0.0

    def begin(self, last_close: int | None, processed: Callable[[], Awaitable[None]]) -> None:
        self._processed = processed

    async def wait(self, close_ts: int) -> None:
        if close_ts == self._current:
            return  # the other symbols' candles of the round just released
        assert self._processed is not None
        if self._current is None:
            # The daemon activates the strategies right after the feed reports playing: wait until it is idle, then start the load.
            await anyio.wait_all_tasks_blocked()
            await self._ready()
            self._next = anyio.current_time()
        await self._processed()
        if self._current in self._timed:
            self._timed[self._current].settled = self._drained_at()
        if self._released == self._warmup + self._rounds:
            self.timed_seconds = anyio.current_time() - self._timed_from
            self.timed_cpu_seconds = time.process_time() - self._cpu_from
            self.finished.set()
            await anyio.sleep_forever()  # the daemon's stop cancels this wait
        if self._released == self._warmup:
            self._timed_from = anyio.current_time()
            self._cpu_from = time.process_time()
        self._next += self._round_s
        await anyio.sleep_until(self._next)
        self._released += 1
        self._current = close_ts
        if self._released > self._warmup:
            # Timed from when the round was due, not from when the loop got to it: a round that fell due while the loop was busy
            # (answering a request) waited as a live candle arriving then would, and that wait counts. Or, when the round before
            # had not settled by then, from when it had: what the loop ran from then on (the feed position's write, a request's
            # slice, the stream's send, a collector pass) counts, the time the round before took does not (it is that round's).
            late = anyio.current_time() - self._next
            due = time.perf_counter() - late
            self._timed[close_ts] = TimedRound(due, max(due, self._drained_at()))

    async def finish(self, state: Literal["ended", "stopped"]) -> None:
        self.finished.set()


def http_latency(load: bool, strategies: int = 1000, symbols: int = 10, rounds: int = TIMED_ROUNDS, round_s: float = ROUND_S) -> dict[str, Any]:
    """One run, in this (fresh) process: the daemon plays `rounds` timed rounds `round_s` apart; with `load`, a load process works its HTTP server meanwhile."""
    from bot.control.commands import Control
    from bot.daemon.delivery import InboxDelivery
    from bot.daemon.inbox import CandleWork
    from bot.http.server import HttpServer
    from bot.kernel.daemon import Daemon
    from bot.log import BotLogger
    from bot.ohlcv import Candle
    from bot.replay.sources import resolve_sources
    from bot.strategy.config_load import load_config
    from bot.strategy.delivery import CandleHandler, CandleOwner

    work = Path(tempfile.mkdtemp(prefix="bhttp-", dir="/tmp"))
    os.environ[TOKEN_ENV] = TOKEN
    # The timed rounds by close time (RoundPacer notes them, each decision its time).
    by_close: dict[int, TimedRound] = {}
    latencies: list[float] = []
    latencies_from_due: list[float] = []
    load_report: dict[str, Any] = {}
    minute = 60_000

    class TimedInboxes:
        """The daemon's inbox delivery, each candle of a timed round timed from when its round could start to the end of the strategy's handler."""

        def __init__(self, inboxes: InboxDelivery) -> None:
            self._inboxes = inboxes

        def wrap(self, owner: CandleOwner, handler: CandleHandler) -> CandleHandler:
            def timed(symbol: str, timeframe: str, candle: Candle, ts: int) -> None:
                handler(symbol, timeframe, candle, ts)
                round_ = by_close.get(candle.ts + minute)
                if round_ is not None:
                    now = time.perf_counter()
                    latencies.append(now - round_.start)
                    latencies_from_due.append(now - round_.due)
                    round_.first = min(round_.first, now)
                    round_.last = max(round_.last, now)

            return self._inboxes.wrap(owner, timed)

        def reset(self, owner: CandleOwner) -> list[tuple[str, str, Candle, int]]:
            return self._inboxes.reset(owner)

        def detach(self, owner: CandleOwner) -> None:
            self._inboxes.detach(owner)

    class DrainTimes(CandleWork):
        """The daemon's count of the strategies' candle work, noting the moment it last drained (every turn settled, nothing queued).

        Noted in the step that drained it, before any task it wakes runs.
        """

        __slots__ = ("drained_at",)

        def __init__(self) -> None:
            super().__init__()
            self.drained_at = 0.0

        def settled(self) -> bool:
            drained = super().settled()
            if drained:
                self.drained_at = time.perf_counter()
            return drained

        def cleared(self, count: int) -> None:
            super().cleared(count)
            if count and self.drained:
                self.drained_at = time.perf_counter()

    works: list[DrainTimes] = []

    def make_candle_work() -> CandleWork:
        works.append(DrainTimes())
        return works[-1]

    class BenchDaemon(Daemon):
        """`bot run`'s daemon, its strategies' handlers timed and its HTTP server's address kept."""

        server: HttpServer | None = None

        def _build(self, *args: Any) -> Any:
            bot, delivery, position = super()._build(*args)
            bot.manager.delivery = TimedInboxes(delivery)
            return bot, delivery, position

        def _http(self, control: Control) -> HttpServer | None:
            server = super()._http(control)
            self.server = server
            return server

    process: anyio.abc.Process | None = None

    async def start_load() -> None:
        nonlocal process
        assert daemon.server is not None and daemon.server.url is not None
        url = daemon.server.url
        # Without load the same process starts and waits, idle: both variants start alike, only the requests differ.
        role = "--load" if load else "--idle"
        process = await anyio.open_process([sys.executable, __file__, role, url], env={**os.environ, TOKEN_ENV: TOKEN}, stderr=None)
        assert process.stdout is not None
        # With load, its first round done and its event stream open: the load is there before the first timed round.
        line = await process.stdout.receive()
        assert b"ready" in line, line
        # What the start-up left (the journal's checkpoint of the strategies' rows, the collector) settles in both variants alike.
        await anyio.sleep(SETTLE_S)

    try:
        config = _write_config(work, strategies, symbols)
        loaded = load_config(config)
        sources, problems = resolve_sources(loaded)
        assert not problems, problems
        pacer = RoundPacer(rounds, WARMUP_ROUNDS, round_s, start_load, lambda: works[-1].drained_at, by_close)
        daemon = BenchDaemon(loaded, sources, BotLogger.to_stderr(level=40, name="bench.http"), pacer=pacer, make_candle_work=make_candle_work)

        async def main() -> int:
            async with anyio.create_task_group() as tg:
                done: list[int] = []

                async def run() -> None:
                    done.append(await daemon.run())

                tg.start_soon(run)
                await pacer.finished.wait()
                if process is not None:
                    assert process.stdin is not None and process.stdout is not None
                    await process.stdin.aclose()
                    output = b""
                    async for chunk in process.stdout:
                        output += chunk
                    await process.wait()
                    if load:
                        load_report.update(json.loads(output.decode().strip().splitlines()[-1]))
                daemon.request_stop()
            return done[0]

        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        code = anyio.run(main)
        assert code == 0, code
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        load_cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    finally:
        if process is not None and process.returncode is None:
            process.kill()
        shutil.rmtree(work, ignore_errors=True)
    assert len(by_close) == rounds, (len(by_close), rounds)
    ordered = [by_close[close] for close in sorted(by_close)]
    assert all(r.settled > 0 and r.last > 0 for r in ordered), "a timed round without a decision or not settled"
    settle = [r.settled - r.start for r in ordered]
    # After a round's last decision, until every turn of it had settled: its journal commits (what a late round waited for).
    tail = [r.settled - r.last for r in ordered]
    slowest = sorted(range(len(ordered)), key=lambda n: ordered[n].last - ordered[n].start, reverse=True)[:5]
    return {
        "load": load,
        "strategies": strategies,
        "symbols": symbols,
        "rounds": rounds,
        "round_s": round_s,
        "timed_seconds": pacer.timed_seconds,
        "daemon_cpu_seconds": pacer.timed_cpu_seconds,
        # The load process's (or the idle one's) whole life, its requests at the end included.
        "load_process_cpu_seconds": load_cpu,
        "decisions": len(latencies),
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * _pct(latencies, 0.99),
        "max_ms": 1000 * max(latencies),
        # Timed from when each round was due, the backlog of late rounds included (how this bench timed every round before a29775c).
        "p50_from_due_ms": 1000 * statistics.median(latencies_from_due),
        "p99_from_due_ms": 1000 * _pct(latencies_from_due, 0.99),
        # Rounds that could start only after they were due (the round before had not settled by then).
        "late_rounds": sum(1 for r in ordered if r.start > r.due),
        # From when a round could start until every turn of it had settled (its journal commits done, its events delivered).
        "settled_p50_ms": 1000 * statistics.median(settle),
        "settled_max_ms": 1000 * max(settle),
        "tail_p90_ms": 1000 * _pct(tail, 0.9),
        "tail_max_ms": 1000 * max(tail),
        # The five slowest rounds (round number from 0, its slowest decision): a p99 made by a few stalls shows here.
        "worst_rounds_ms": [[n, round(1000 * (ordered[n].last - ordered[n].start), 1)] for n in slowest],
        # Every timed round in order: due, start, first and last decision, settled (perf_counter seconds).
        "timeline": [[r.due, r.start, r.first, r.last, r.settled] for r in ordered],
        "load_report": load_report,
    }


# -- the load process -------------------------------------------------------------------------------
def _load(url: str, token: str) -> dict[str, Any]:
    """Rounds of requests every LOAD_ROUND_S, one event stream read meanwhile, until stdin closes; what each path answered."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    headers = {"Authorization": f"Bearer {token}"}
    answered: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    # Seconds per path, request written to body read (what the client waited: the server's work and the loop's queue).
    waited: dict[str, list[float]] = {}
    stream = {"events": 0, "bytes": 0}
    stop = threading.Event()

    def read_events() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        conn.request("GET", "/api/v1/events", headers=headers)
        response = conn.getresponse()
        answered[f"/api/v1/events {response.status}"] += 1
        while not stop.is_set():
            line = response.fp.readline()
            if not line:
                break
            stream["bytes"] += len(line)
            if line.startswith(b"data: "):
                stream["events"] += 1
        conn.close()

    conn = http.client.HTTPConnection(host, int(port), timeout=30)

    def get(path: str) -> tuple[int, bytes]:
        nonlocal conn
        started = time.perf_counter()
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            waited.setdefault(path, []).append(time.perf_counter() - started)
        except (OSError, http.client.HTTPException) as exc:
            failed[f"{path} {type(exc).__name__}"] += 1
            conn.close()
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            return 0, b""
        answered[f"{path} {response.status}"] += 1
        return response.status, body

    def assets(html: bytes) -> list[str]:
        found = []
        for ref in ASSET.findall(html.decode("utf-8", "replace")):
            if ref.startswith(("http:", "https:", "//", "data:", "mailto:")):
                continue
            path = ref if ref.startswith("/") else "/" + ref
            if path not in found and path != "/":
                found.append(path)
        return found

    reads = list(READS) + [path for path in OPTIONAL_READS if get(path)[0] not in (404, 0)]
    reader = threading.Thread(target=read_events, daemon=True)
    reader.start()
    closed = threading.Event()

    def until_stdin_closes() -> None:
        sys.stdin.read()
        closed.set()

    threading.Thread(target=until_stdin_closes, daemon=True).start()
    rounds = 0
    started = time.monotonic()
    while True:
        status, page = get("/")
        for path in assets(page) if status == 200 else []:
            get(path)
        for path in reads:
            get(path)
        get("/metrics")
        rounds += 1
        if rounds == 1:
            print("ready", flush=True)
        if closed.wait(max(0.0, started + rounds * LOAD_ROUND_S - time.monotonic())):
            break
    stop.set()
    # The daemon is idle now (its rounds are over): what each request costs on its own, the median of 5, and its size.
    alone: dict[str, float] = {}
    sizes: dict[str, int] = {}
    for path in dict.fromkeys(["/", *(assets(page) if status == 200 else []), *reads, "/metrics"]):
        times = []
        for _ in range(5):
            started = time.perf_counter()
            sizes[path] = len(get(path)[1])
            times.append(time.perf_counter() - started)
        alone[path] = round(1000 * statistics.median(times), 2)
    return {
        "rounds": rounds,
        "ms_alone": alone,
        "bytes": sizes,
        "seconds": time.monotonic() - started,
        "requests": sum(answered.values()),
        "answered": dict(sorted(answered.items())),
        "failed": dict(sorted(failed.items())),
        "ms_median": {path: round(1000 * statistics.median(times), 2) for path, times in sorted(waited.items())},
        "ms_max": {path: round(1000 * max(times), 2) for path, times in sorted(waited.items())},
        "stream_events": stream["events"],
        "stream_bytes": stream["bytes"],
    }


# -- the suite --------------------------------------------------------------------------------------
def suite(run_case: Callable[[str], dict[str, Any]], repeat: int, strategies: int = 1000, round_s: float = ROUND_S) -> None:
    """`repeat` runs without and with HTTP load, interleaved, each its own process: medians (min-max) of p50/p99, the p99 change."""
    runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    for i in range(repeat):
        for load in (False, True) if i % 2 == 0 else (True, False):
            result = run_case(f"{'http:load' if load else 'http:quiet'},{strategies},{round_s}")
            runs[load].append(result)
            report = result["load_report"]
            served = f", {report['requests']:,} requests answered in {report['rounds']} load rounds, {report['stream_events']:,} events streamed" if load else ""
            slowest = ", ".join(f"#{n} {ms:.0f}" for n, ms in result["worst_rounds_ms"][:3])
            print(
                f"  run {i + 1} {'with' if load else 'without'} load: p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms"
                f" (from due: p99 {result['p99_from_due_ms']:.0f} ms, {result['late_rounds']} rounds late; slowest rounds, ms: {slowest}){served}", flush=True
            )

    def spread(rows: list[dict[str, Any]], key: str) -> str:
        values = [r[key] for r in rows]
        return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"

    first = runs[False][0]
    print(
        f"HTTP under load: {first['strategies']:,} ema_cross strategies on {first['symbols']} symbols, {first['rounds']} rounds"
        f" {first['round_s'] * 1000:.0f} ms apart ({first['timed_seconds']:.0f} s timed), {first['decisions']:,} decisions per run;"
        f" medians (min-max) of {repeat} interleaved runs each; each round timed from when it could start (when due, or when the"
        f" round before had settled if later)"
    )
    def each_variant(line: Callable[[list[dict[str, Any]]], str]) -> None:
        for load in (False, True):
            print(f"  {'with HTTP load' if load else 'without HTTP load':<18} {line(runs[load])}")

    each_variant(lambda rs: f"candle-to-decision p50 {spread(rs, 'p50_ms')} ms  p99 {spread(rs, 'p99_ms')} ms  max {spread(rs, 'max_ms')} ms")
    each_variant(lambda rs: (
        f"timed from due (the backlog of late rounds included): p50 {spread(rs, 'p50_from_due_ms')} ms"
        f"  p99 {spread(rs, 'p99_from_due_ms')} ms; rounds late: {', '.join(str(r['late_rounds']) for r in rs)}"
    ))
    each_variant(lambda rs: (
        f"a round from its start to every turn settled (commits, events): median {spread(rs, 'settled_p50_ms')} ms,"
        f" slowest {spread(rs, 'settled_max_ms')} ms; from its last decision: p90 {spread(rs, 'tail_p90_ms')} ms,"
        f" slowest {spread(rs, 'tail_max_ms')} ms"
    ))
    each_variant(lambda rs: (
        f"CPU seconds of the daemon's process over the timed rounds {spread(rs, 'daemon_cpu_seconds')},"
        f" of the load process (all its life) {spread(rs, 'load_process_cpu_seconds')}"
    ))
    loaded = [r["load_report"] for r in runs[True]]
    print(
        f"  load per run: {statistics.median(r['requests'] for r in loaded):,.0f} requests answered (median), {statistics.median(r['rounds'] for r in loaded):.0f} rounds,"
        f" {statistics.median(r['stream_events'] for r in loaded):,.0f} events on the open stream; paths: {loaded[0]['answered']}"
    )
    paths = loaded[0]["ms_median"]
    print("  client's wait per request, ms, median over the load runs of each run's median: " + ", ".join(
        f"{path} {statistics.median(r['ms_median'].get(path, 0.0) for r in loaded):.1f}" for path in paths))
    alone = loaded[0]["ms_alone"]
    print("  each request alone on the idle daemon, ms (median of the runs' medians of 5) and bytes: " + ", ".join(
        f"{path} {statistics.median(r['ms_alone'][path] for r in loaded):.1f} ({loaded[0]['bytes'][path]:,} B)" for path in alone))
    per_round = sum(statistics.median(r["ms_alone"][path] for r in loaded) for path in alone if path in paths)
    print(f"  one load round's requests, alone: {per_round:.0f} ms of the event loop's time every {LOAD_ROUND_S:g} s")
    failures = {key: n for r in loaded for key, n in r["failed"].items()}
    if failures:
        print(f"  requests that failed: {failures}")
    def change(key: str) -> str:
        before = statistics.median(r[key] for r in runs[False])
        after = statistics.median(r[key] for r in runs[True])
        return f"{100 * (after - before) / before:+.1f} %"

    late = sum(1 for load in (False, True) for r in runs[load] if r["late_rounds"])
    print(
        f"  p99 change with load, timed from due: {change('p99_from_due_ms')}; timed from when a round could start: {change('p99_ms')}"
        f" (medians; {late} of {2 * repeat} runs had a late round)"
    )
    print(
        f"  a round's time to settle with load: slowest {change('settled_max_ms')}; from its last decision, p90 {change('tail_p90_ms')},"
        f" slowest {change('tail_max_ms')} (medians)"
    )
    print(json.dumps({"without": runs[False], "with": runs[True]}))


def main(argv: list[str]) -> int:
    """`--load URL`: the load process (token from the environment), its report one JSON line; `--idle URL`: one that sends nothing."""
    if len(argv) == 2 and argv[0] == "--idle":
        print("ready", flush=True)
        sys.stdin.read()
        return 0
    if len(argv) == 2 and argv[0] == "--load":
        print(json.dumps(_load(argv[1], os.environ[TOKEN_ENV])), flush=True)
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
