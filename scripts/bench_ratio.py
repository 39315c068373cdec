"""The bench's stable figures: the bot's replay throughput as a ratio of the reference loop's, and the cost of one market order.

Absolute figures on a shared machine move by 30 % from run to run; the bot and the loop run
interleaved in the same bench, so their ratio moves far less. Start-up is left out of both
rates: each is (N - n) candles / (time of the N-candle run - time of the n-candle run), n = 1,000.
"""
from __future__ import annotations

import json
import math
import statistics
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_replays import (
    EMA_PAIRS,
    QUANTITY,
    Timed,
    ema_spec,
    order_spec,
    orders_filled,
    reference_command,
    replay_command,
    timed,
    trades_written,
    write_config,
)

SMALL = 1_000
Generate = Callable[[Path, int], None]


@dataclass(frozen=True, slots=True)
class RatioCase:
    """A row of the ratio table: the EMA pairs the bot and the loop both run."""

    label: str
    pairs: tuple[tuple[int, int], ...]


RATIO_CASES = (
    RatioCase("replay, 1 strategy (10/30)", EMA_PAIRS[:1]),
    RatioCase("replay, 10 strategies, 1 symbol", EMA_PAIRS),
)


def spread(values: Sequence[float], unit: Callable[[float], str]) -> str:
    """Median and (min-max) of several runs, each formatted by `unit`."""
    if len(values) == 1:
        return unit(values[0])
    return f"{unit(statistics.median(values))} ({unit(min(values))}-{unit(max(values))})"


def kilo(value: float) -> str:
    """A rate in thousands per second."""
    return f"{value / 1000:,.1f}k"


def rate(candles: int, full: Timed, small: Timed) -> float:
    """Candles per second with start-up left out (nan when noise made the difference non-positive: too few candles)."""
    extra = full.seconds - small.seconds
    return (candles - SMALL) / extra if extra > 0 else math.nan


def ratio_suite(generate: Generate, candles: int, repeat: int) -> dict[str, Any]:
    """The bot against the reference loop, 1 and 10 strategies, candle events on; prints the table."""
    if candles <= SMALL:
        raise SystemExit(f"--suite ratio needs more than {SMALL:,} candles (start-up is the difference from a {SMALL:,}-candle run)")
    with tempfile.TemporaryDirectory(prefix="bench-ratio-") as tmp:
        work = Path(tmp)
        full, small = work / "SYN-USD_1m.csv", work / "SYN-USD_1m-small.csv"
        generate(full, candles)
        generate(small, SMALL)
        configs = [write_config(work / f"config-{i}", full, [ema_spec(f, s) for f, s in case.pairs]) for i, case in enumerate(RATIO_CASES)]
        runs: list[list[dict[str, Any]]] = [[] for _ in RATIO_CASES]
        # Interleaved: run r of every case, then run r + 1, so a noisy spell hits every case alike.
        for _ in range(repeat):
            for case, config, rows in zip(RATIO_CASES, configs, runs):
                pairs = list(case.pairs)
                loop_small = timed(reference_command(small, pairs))
                bot_small = timed(replay_command(config, small, work / "out-small"))
                bot_full = timed(replay_command(config, full, work / "out"))
                loop_full = timed(reference_command(full, pairs))
                bot_rate = rate(candles, bot_full, bot_small)
                loop_rate = rate(candles, loop_full, loop_small)
                rows.append(
                    {
                        "bot_candles_per_s": bot_rate,
                        "bot_deliveries_per_s": bot_rate * len(pairs),
                        "loop_candles_per_s": loop_rate,
                        "ratio": bot_rate / loop_rate,
                        "bot_peak_rss_mb": bot_full.peak_rss_mb,
                        "loop_peak_rss_mb": loop_full.peak_rss_mb,
                        "bot_seconds": bot_full.seconds,
                        "bot_small_seconds": bot_small.seconds,
                        "loop_seconds": loop_full.seconds,
                        "loop_small_seconds": loop_small.seconds,
                        "bot_trades": trades_written(work / "out"),
                        "loop_trades": json.loads(loop_full.stdout)["trades"],
                    }
                )
    print(
        f"bot vs reference loop: {candles:,} synthetic 1m candles, candle events on, quantity {QUANTITY}, no fees, next-open fills;"
        f" rates exclude start-up ((N - {SMALL:,}) candles / (time of N - time of {SMALL:,})); median (min-max) of {repeat} interleaved runs"
    )
    print(f"  {'case':<32} {'bot candles/s':>26} {'bot deliveries/s':>26} {'loop candles/s':>26} {'bot/loop':>20} {'bot MB':>6} {'loop MB':>7} {'trades':>7}")
    for case, rows in zip(RATIO_CASES, runs):

        def column(key: str, rows: list[dict[str, Any]] = rows) -> list[float]:
            return [row[key] for row in rows]

        trades = {(row["bot_trades"], row["loop_trades"]) for row in rows}
        bot_trades, loop_trades = next(iter(trades))
        same = len(trades) == 1 and bot_trades == loop_trades
        print(
            f"  {case.label:<32} {spread(column('bot_candles_per_s'), kilo):>26} {spread(column('bot_deliveries_per_s'), kilo):>26}"
            f" {spread(column('loop_candles_per_s'), kilo):>26} {spread(column('ratio'), lambda v: f'{v:.3f}'):>20}"
            f" {max(column('bot_peak_rss_mb')):>6.1f} {max(column('loop_peak_rss_mb')):>7.1f}"
            f" {bot_trades if same else f'{bot_trades}!={loop_trades}':>7}"
        )
        if not same:
            print(f"  WARNING: {case.label}: the bot's trades ({sorted(trades)}) differ from the loop's: the ratio compares unlike work")
    figures = {case.label: rows for case, rows in zip(RATIO_CASES, runs)}
    print(json.dumps({"candles": candles, "small": SMALL, "cases": figures}))
    return figures


def order_suite(generate: Generate, candles: int, repeat: int) -> dict[str, Any]:
    """Cost of one market order through the whole path: (time with a strategy that trades every candle
    - time with one that never trades) / orders filled; prints it."""
    with tempfile.TemporaryDirectory(prefix="bench-order-") as tmp:
        work = Path(tmp)
        data = work / "SYN-USD_1m.csv"
        generate(data, candles)
        flip = write_config(work / "flip", data, [order_spec("FlipEveryCandle")])
        idle = write_config(work / "idle", data, [order_spec("NeverTrade")])
        rows: list[dict[str, Any]] = []
        for _ in range(repeat):
            quiet = timed(replay_command(idle, data, work / "out-idle"))
            trading = timed(replay_command(flip, data, work / "out-flip"))
            orders = orders_filled(work / "out-flip")
            if orders_filled(work / "out-idle"):
                raise RuntimeError("the strategy that never trades filled orders")
            rows.append(
                {
                    "orders": orders,
                    "us_per_order": (trading.seconds - quiet.seconds) / orders * 1e6,
                    "trading_seconds": trading.seconds,
                    "idle_seconds": quiet.seconds,
                    "trading_peak_rss_mb": trading.peak_rss_mb,
                }
            )
    print(
        f"market order through the whole path (action queued -> risk -> paper fill -> position -> portfolio -> events written):"
        f" {candles:,} synthetic 1m candles, candle events on, 1 strategy opening or closing on every candle;"
        f" (time of run - time of the same run with a strategy that never trades) / orders filled; median (min-max) of {repeat} interleaved runs"
    )
    print(
        f"  orders filled {rows[0]['orders']:,}   us per order {spread([r['us_per_order'] for r in rows], lambda v: f'{v:.1f}')}"
        f"   run {spread([r['trading_seconds'] for r in rows], lambda v: f'{v:.2f}')} s"
        f"   never-trading run {spread([r['idle_seconds'] for r in rows], lambda v: f'{v:.2f}')} s"
    )
    result = {"candles": candles, "runs": rows}
    print(json.dumps(result))
    return result
