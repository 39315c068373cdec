"""A fake exchange with the real ccxt client and a LiveCandleFeed on it, for the live tests."""
from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio

from bot.candles.model import Candle
from bot.config.exchange import ExchangeConfig
from bot.live.ccxt_feed import LiveCandleFeed
from bot.live.exchange import build_exchange
from tests.fake_exchange import FakeBinance
from tests.support import ETH_1M

ETH = "ETH/BTC"


async def until(condition: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Wait until `condition()` holds, checking every few milliseconds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await anyio.sleep(0.005)


async def no_wait(delay: float) -> None:
    """A sleep for backoff delays that only yields: tests do not wait out real backoffs."""
    await anyio.sleep(0)


class Rig:
    """A running feed on a fake exchange, with every published candle and state change recorded."""

    def __init__(self, fake: FakeBinance, feed: LiveCandleFeed) -> None:
        self.fake = fake
        self.feed = feed
        self.candles: dict[str, list[Candle]] = {s: [] for s in feed.symbols}
        self.states: list[tuple[str, str, dict[str, Any]]] = []
        self.delays: list[float] = []

    def on_candle(self, symbol: str, timeframe: str, candle: Candle) -> None:
        self.candles[symbol].append(candle)

    def on_state(self, symbol: str, state: str, detail: dict[str, Any]) -> None:
        self.states.append((symbol, state, detail))

    def state_names(self, symbol: str = ETH) -> list[str]:
        return [state for s, state, _ in self.states if s == symbol]

    async def published_through(self, ts: int, symbol: str = ETH, timeout: float = 5.0) -> None:
        """Wait until the candle opening at `ts` has been published."""
        got = self.candles[symbol]
        await until(lambda: bool(got) and got[-1].ts >= ts, timeout, f"{symbol} candle {ts}")


@asynccontextmanager
async def running_feed(
    markets: dict[str, Any] | None = None,
    start: int = 1200,
    backfill: int = 50,
    feed_settings: dict[str, Any] | None = None,
    exchange: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    **feed_kwargs: Any,
) -> AsyncIterator[Rig]:
    """Start a fake exchange at candle `start`, a feed on it (backfilled), and stop both on exit."""
    async with FakeBinance(markets or {ETH: ETH_1M}, start=start) as fake:
        config = ExchangeConfig.model_validate(
            fake.exchange_config(feed={"backfill": backfill, **(feed_settings or {})}, **(exchange or {}))
        )
        client, redact = build_exchange(config, env or {})
        holder: list[Rig] = []

        async def sleep(delay: float) -> None:
            holder[0].delays.append(delay)
            await no_wait(delay)

        if feed_kwargs.get("sleep", sleep) is None:
            feed_kwargs.pop("sleep")  # the real anyio.sleep
        else:
            feed_kwargs.setdefault("sleep", sleep)
        feed = LiveCandleFeed(
            client, list(fake.markets), config.feed,
            lambda *a: holder[0].on_candle(*a), lambda *a: holder[0].on_state(*a),
            logger=logging.getLogger("bot.tests.live"), redact=redact, **feed_kwargs,
        )
        rig = Rig(fake, feed)
        holder.append(rig)
        try:
            with anyio.fail_after(20):
                async with anyio.create_task_group() as tg:
                    await tg.start(feed.run)
                    yield rig
                    feed.stop()
        finally:
            await client.close()
