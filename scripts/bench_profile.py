"""The stage table of `scripts/bench.py --profile`: where a replayed candle's time goes, in us per candle.

py-spy samples `bot replay` (1 strategy, candle events on) from outside; each sample taken in
the replay's candle loop (`Replay._stream`) goes to the stage of its innermost frame that
belongs to a known module (so time inside orjson or a dict counts for the bot code that called
it); samples outside the loop are start-up and finish and are left out. The stage shares are
then applied to the time per candle measured WITHOUT the profiler (start-up excluded, as in
the ratio table), so the sampler's own slowdown does not inflate the figures.
"""
from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bench_replays import EMA_PAIRS, ema_spec, replay_command, timed, write_config

SMALL = 1_000
RATE_HZ = 400
IN_LOOP = "Replay._stream (bot/replay/runner.py:"
OTHER = "other (stdlib, anyio, unmapped)"
# Innermost-first: the first frame whose file matches a pattern names the stage (the table's order is the issue's).
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("CSV read and parse", (r"^bot/candles/(reader|merge|sources)\.py$", r"^bot/replay/sources\.py$", r"^csv\.py$")),
    ("events.jsonl encoding and writing", (r"^bot/replay/event_log\.py$", r"^bot/event_codec\.py$", r"^<line of ")),
    ("event bus (event objects, tagging, dispatch)", (r"^bot/bus\.py$", r"^bot/events\.py$")),
    ("candle hub (ingest checks, history, emit)", (r"^bot/candles/", r"^bot/ohlcv\.py$")),
    ("paper exchange and positions", (r"^bot/trading/",)),
    ("orchestrator and manager routing", (r"^bot/strategy/(orchestrator|manager|guard|delivery|lifecycle|factory)\.py$", r"^bot/clock\.py$", r"^bot/metrics\.py$", r"^bot/replay/runner\.py$")),
    ("indicators", (r"^bot/indicators/",)),
    ("equity sampler", (r"^bot/replay/equity\.py$",)),
    ("the strategy's own code", (r"^bot/strategy/", r"^strategies/", r"bench_strategies/")),
)
_COMPILED = tuple((stage, tuple(re.compile(p) for p in patterns)) for stage, patterns in STAGES)
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*?)(?::\d+)?\)$")


def stage_of(stack: list[str]) -> str:
    """The stage of one sampled stack (outermost frame first)."""
    for frame in reversed(stack):
        match = _FRAME.match(frame)
        if match is None:
            continue
        file = match["file"]
        for stage, patterns in _COMPILED:
            if any(p.search(file) for p in patterns):
                return stage
    return OTHER


def tally(raw: str) -> tuple[Counter[str], int, int]:
    """Samples per stage in the candle loop, samples in the loop, samples in all, from py-spy's raw output."""
    stages: Counter[str] = Counter()
    in_loop = total = 0
    for line in raw.splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        if IN_LOOP not in stack_text:
            continue
        in_loop += count
        stack = stack_text.split(";")
        loop_at = max(i for i, frame in enumerate(stack) if frame.startswith(IN_LOOP))
        stages[stage_of(stack[loop_at:])] += count
    return stages, in_loop, total


def py_spy() -> str:
    """The py-spy executable beside this Python (the dev extra installs it), or on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("--profile needs py-spy: .venv/bin/python -m pip install -e '.[dev]' (or pip install py-spy)")
    return found


def profile(generate: Callable[[Path, int], None], candles: int, repeat: int) -> None:
    """Print the stage table for a replay of `candles` synthetic candles, 1 strategy, candle events on."""
    if candles <= SMALL:
        raise SystemExit(f"--profile needs more than {SMALL:,} candles (start-up is the difference from a {SMALL:,}-candle run)")
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        work = Path(tmp)
        full, small = work / "SYN-USD_1m.csv", work / "SYN-USD_1m-small.csv"
        generate(full, candles)
        generate(small, SMALL)
        fast, slow = EMA_PAIRS[0]
        config = write_config(work / "config", full, [ema_spec(fast, slow)])
        per_candle = []
        for _ in range(repeat):
            small_run = timed(replay_command(config, small, work / "out-small"))
            full_run = timed(replay_command(config, full, work / "out"))
            per_candle.append((full_run.seconds - small_run.seconds) / (candles - SMALL) * 1e6)
        us_per_candle = statistics.median(per_candle)
        raw = work / "profile.txt"
        command = [py_spy(), "record", "--format", "raw", "--rate", str(RATE_HZ), "--output", str(raw), "--"]
        done = subprocess.run(command + replay_command(config, full, work / "out-profiled"), capture_output=True, text=True, check=False)
        if done.returncode != 0 or not raw.exists():
            raise SystemExit(f"py-spy could not profile the replay (it needs ptrace on its child):\n{done.stderr[-2000:]}")
        stages, in_loop, total = tally(raw.read_text())
    if not in_loop:
        raise SystemExit("py-spy took no sample in the candle loop: raise --candles")
    print(
        f"profile of `bot replay`: {candles:,} synthetic 1m candles, 1 strategy (ema_cross {fast}/{slow} analyzer), candle events on;"
        f" py-spy at {RATE_HZ} Hz, {in_loop:,} of {total:,} samples in the candle loop (the rest is start-up and finish, left out)"
    )
    print(
        f"us per candle = stage's share of the loop's samples x {us_per_candle:.2f} us, the time per candle measured without the profiler"
        f" (median of {repeat}, start-up excluded: difference from a {SMALL:,}-candle run)"
    )
    print()
    print(f"| {'stage':<46} | {'us per candle':>13} | {'share':>6} |")
    print(f"|{'-' * 48}|{'-' * 14}:|{'-' * 7}:|")
    for stage in [name for name, _ in STAGES] + [OTHER]:
        share = stages[stage] / in_loop
        print(f"| {stage:<46} | {share * us_per_candle:>13.2f} | {share:>6.1%} |")
    print(f"| {'total':<46} | {us_per_candle:>13.2f} | {1:>6.0%} |")
