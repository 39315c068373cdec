"""Daemon benchmarks (imported by scripts/bench.py): hot-switch latency, idle memory, live latency."""
from __future__ import annotations

import gc
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "BTC-USD-PERP_1m.csv"


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * 4096 / 1024 / 1024


def _pct(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _strategy(sid: str, symbol: str = "BTC/USD", fast: int = 5, slow: int = 13) -> dict[str, Any]:
    return {
        "id": sid,
        "symbol": symbol,
        "timeframe": "1m",
        "quantity": 0.01,
        "analyzers": [{"type": "ema_cross", "params": {"fast": fast, "slow": slow}}],
    }


def switch_latency(switches: int = 200) -> dict[str, float]:
    """Switch back and forth through the real socket while the feed plays; time reply and first candle."""
    from bot.control.client import ControlClient
    from bot.kernel.daemon import Daemon
    from bot.log import BotLogger
    from bot.replay.sources import resolve_sources
    from bot.strategy.config_load import load_config

    work = Path(tempfile.mkdtemp(prefix="bsw-", dir="/tmp"))
    (work / "strategies").mkdir()
    for sid in ("A", "B"):
        (work / "strategies" / f"{sid}.json").write_text(json.dumps(_strategy(sid)))
    config = {
        "mode": "paper",
        "replay": {"candles": {"BTC/USD": {"path": str(DATA), "timeframe": "1m"}}},
        "feed": {"speed": 60_000, "loop": True, "backfill": 500},
        "control": {"socket": "bot.sock"},
        "strategies": [{"file": "strategies/A.json"}],
    }
    (work / "config.json").write_text(json.dumps(config))
    loaded = load_config(work / "config.json")
    sources, _ = resolve_sources(loaded)
    daemon = Daemon(loaded, sources, BotLogger.to_stderr(level=40, name="bench.switch"))
    replies: list[float] = []
    first_candles: list[float] = []

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            while not daemon.socket_path.exists():
                await anyio.sleep(0.01)
            await anyio.sleep(0.2)
            async with ControlClient(daemon.socket_path) as client:
                assert (await client.call("load", {"file": "strategies/B.json"}))["ok"]
                pair = ("A", "B")
                for i in range(switches):
                    source, target = pair[i % 2], pair[(i + 1) % 2]
                    metrics_before = (await client.call("metrics"))["result"]["strategies"][target]["candles"]
                    started = time.perf_counter()
                    reply = await client.call("switch", {"from": source, "to": target})
                    replied = time.perf_counter()
                    assert reply["ok"], reply
                    replies.append(replied - started)
                    # First candle processed by the target: poll its counter (each poll is a round trip,
                    # so this figure is an upper bound).
                    while (await client.call("metrics"))["result"]["strategies"][target]["candles"] == metrics_before:
                        pass
                    first_candles.append(time.perf_counter() - started)
                await client.call("shutdown")

    anyio.run(main)
    shutil.rmtree(work, ignore_errors=True)
    return {
        "switches": switches,
        "reply_p50_ms": 1000 * _pct(replies, 0.5),
        "reply_p99_ms": 1000 * _pct(replies, 0.99),
        "first_candle_p50_ms": 1000 * _pct(first_candles, 0.5),
        "first_candle_p99_ms": 1000 * _pct(first_candles, 0.99),
    }


def idle_memory(count: int = 1000) -> dict[str, float]:
    """RSS growth from loading `count` dormant strategies."""
    from bot.config.models import BotConfig, StrategyConfig
    from bot.kernel import build_bot
    from bot.log import BotLogger

    bot = build_bot(BotConfig(), "replay", logger=BotLogger.to_stderr(level=40, name="bench.memory"))
    bot.services.hub.add_feed("BTC/USD", "1m")
    manager = bot.manager
    specs = [StrategyConfig.model_validate(_strategy(f"s{i}", fast=5 + i % 7, slow=20 + i % 11)) for i in range(count)]
    gc.collect()
    before = _rss_mb()
    for spec in specs:
        manager.load(spec)
    gc.collect()
    after = _rss_mb()
    return {"strategies": count, "rss_growth_mb": after - before, "per_strategy_kb": (after - before) * 1024 / count}


def live_latency(strategies: int = 1000, symbols: int = 10, rounds: int = 60) -> dict[str, float]:
    """1,000 active strategies over 10 symbols with per-strategy inboxes: publish-to-decision latency."""
    from bot.candles.reader import read_candles
    from bot.config.models import BotConfig, StrategyConfig
    from bot.daemon import heap
    from bot.daemon.delivery import InboxDelivery
    from bot.kernel import Seams, build_bot
    from bot.log import BotLogger
    from bot.ohlcv import Candle
    from bot.services import BotServices
    from bot.strategy.delivery import CandleHandler, CandleOwner, HandlerErrorHook

    candles = [c for _, c in zip(range(rounds + 200), read_candles(DATA))]
    names = [f"SYM{i}/USD" for i in range(symbols)]
    latencies: list[float] = []
    published: dict[tuple[str, int], float] = {}

    class TimedInboxes:
        """The daemon's inbox delivery, each candle timed from its publication to the end of the strategy's handler."""

        def __init__(self, inboxes: InboxDelivery) -> None:
            self._inboxes = inboxes

        def wrap(self, owner: CandleOwner, handler: CandleHandler) -> CandleHandler:
            def timed(symbol: str, timeframe: str, candle: Candle, ts: int) -> None:
                handler(symbol, timeframe, candle, ts)
                latencies.append(time.perf_counter() - published[(symbol, candle.ts)])

            return self._inboxes.wrap(owner, timed)

        def reset(self, owner: CandleOwner) -> list[tuple[str, str, Candle, int]]:
            return self._inboxes.reset(owner)

        def detach(self, owner: CandleOwner) -> None:
            self._inboxes.detach(owner)

    async def main() -> None:
        async with anyio.create_task_group() as tg:

            def on_error(owner: Any, handler: Any, exc: Exception) -> None:
                raise exc

            delivery = InboxDelivery(tg, 1000, on_error)  # a strategy error fails the benchmark, not the strategy

            def timed_inboxes(_services: BotServices, _on_handler_error: HandlerErrorHook) -> TimedInboxes:
                return TimedInboxes(delivery)

            seams = Seams(delivery=timed_inboxes)
            bot = build_bot(BotConfig(), "paper", seams, BotLogger.to_stderr(level=40, name="bench.live"))
            services, manager = bot.services, bot.manager
            for name in names:
                services.hub.add_feed(name, "1m")
            for i in range(strategies):
                manager.load(StrategyConfig.model_validate(_strategy(f"s{i}", names[i % symbols], 5 + i % 7, 20 + i % 11)))
            # Warm-up candles (not timed), then activate, then timed rounds at one minute each.
            for candle in candles[:200]:
                for name in names:
                    services.hub.ingest(name, candle)
            for i in range(strategies):
                manager.activate(f"s{i}")
            heap.settle()  # as the daemon does after start-up
            for candle in candles[200:]:
                now = time.perf_counter()
                for name in names:
                    published[(name, candle.ts)] = now
                    services.hub.ingest(name, candle)
                await delivery.drain()
                await anyio.lowlevel.checkpoint()
            delivery.close_all()

    anyio.run(main)
    return {
        "strategies": strategies,
        "symbols": symbols,
        "decisions": len(latencies),
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * _pct(latencies, 0.99),
        "max_ms": 1000 * max(latencies),
    }
