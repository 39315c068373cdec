"""Live-feed latency (imported by scripts/bench.py): a kline websocket message arriving at the feed to its effect.

The fake Binance (tests/fake_exchange) pushes recorded ETH/BTC candles over loopback to the real
ccxt.pro client; the LiveCandleFeed publishes each closed candle into a candle hub on which
N strategies are active. Measured per closing message: from ccxt handing the raw message to
the exchange (arrival at the feed) to the hub's ingest returning, by which time every
strategy has processed the candle and put its action, if any, on its action queue.
"""
from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _pct(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def live_latency(candles: int = 600, strategies: int = 10) -> dict[str, Any]:
    """Stream `candles` candles through the fake exchange; latency percentiles in ms."""
    sys.path.insert(0, str(REPO))
    import anyio

    from bot.config.exchange import ExchangeConfig
    from bot.live.ccxt_feed import LiveCandleFeed
    from bot.live.exchange import build_exchange
    from tests.fake_exchange import FakeBinance
    from tests.support import ETH_1M, Rig, strategy

    rig = Rig(feeds={"ETH/BTC": "1m"})
    specs = [
        strategy(id=f"s{i}", symbol="ETH/BTC", quantity=1.0, analyzers=[{"type": "ema_cross", "params": {"fast": 3 + i % 5, "slow": 12 + i}}])
        for i in range(strategies)
    ]
    rig.start(*specs)
    latencies: list[float] = []
    arrived: dict[int, float] = {}

    def on_candle(symbol: str, timeframe: str, candle: Any) -> None:
        rig.services.hub.ingest(symbol, candle)
        start = arrived.pop(candle.ts, None)
        if start is not None:
            latencies.append((time.perf_counter() - start) * 1000)

    async def main() -> None:
        async with FakeBinance({"ETH/BTC": ETH_1M}, start=2000) as fake:
            config = ExchangeConfig.model_validate(fake.exchange_config(feed={"backfill": 500}))
            exchange, _ = build_exchange(config, {})
            handle = exchange.handle_message

            def stamp(client: Any, message: Any) -> None:
                k = message.get("k") if isinstance(message, dict) else None
                if k and k.get("x"):
                    arrived[k["t"]] = time.perf_counter()
                handle(client, message)

            exchange.handle_message = stamp  # before the feed wraps it: the outermost layer
            feed = LiveCandleFeed(exchange, ["ETH/BTC"], config.feed, on_candle, lambda *a: None, logger=logging.getLogger("bench.live"))
            try:
                async with anyio.create_task_group() as tg:
                    await tg.start(feed.run)
                    await fake.wait_subscribed()
                    for _ in range(candles):
                        # One candle at a time, as on a real exchange: no backlog inflates the figure.
                        await fake.stream(1)
                        await asyncio.sleep(0.001)
                    feed.stop()
            finally:
                await exchange.close()

    asyncio.run(main())
    actions = sum(len(rig.of_type(t)) for t in ("order_placed", "position_opened", "position_closed"))
    return {
        "strategies": strategies,
        "candles": len(latencies),
        "p50_ms": _pct(latencies, 0.50),
        "p99_ms": _pct(latencies, 0.99),
        "max_ms": max(latencies),
        "mean_ms": statistics.fmean(latencies),
        "trading_events": actions,
    }


if __name__ == "__main__":
    print(live_latency())
