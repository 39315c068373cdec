"""A fake exchange with the real ccxt client and a LiveCandleFeed on it, for the live tests."""
from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel

from bot.config.exchange import ExchangeConfig
from bot.live.ccxt_feed import LiveCandleFeed
from bot.live.exchange import build_exchange
from bot.ohlcv import Candle
from tests.fake_exchange import FakeBinance, Faults, Series
from tests.fake_exchange.orders import Order as FakeOrder
from tests.support import ETH_1M

ETH = "ETH/BTC"


async def until(condition: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Wait until `condition()` holds, checking every few milliseconds; fail after `timeout` seconds.

    For conditions on objects that announce no change (the fake's orders, a gateway's state);
    the feed's candles and states have `Rig.wait`, woken by each change.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await anyio.sleep(0.005)


def trigger(order: FakeOrder) -> float:
    """The trigger price of one of the fake's STOP_LOSS orders, as a float."""
    assert order.stop_price is not None, order
    return float(order.stop_price)


async def no_wait(delay: float) -> None:
    """A sleep for backoff delays that only yields: tests do not wait out real backoffs."""
    await anyio.lowlevel.checkpoint()


def served(series: Series, first: int, stop: int) -> list[Candle]:
    """Candles `first` to `stop` (excluded) of a served series, as the feed publishes them."""
    return [Candle(series.stamps[i], *(float(v) for v in series.values[i])) for i in range(first, stop)]


class Rig:
    """A running feed on a fake exchange, with every published candle and state change recorded.

    The feed's backoff sleeps (reconnects, REST retries) only yield, unless a test holds them
    (`hold_backoff`): then they wait until `release_backoff`, so a test decides when the feed
    reconnects.
    """

    def __init__(self, fake: FakeBinance, feed: LiveCandleFeed) -> None:
        self.fake = fake
        self.feed = feed
        self.candles: dict[str, list[Candle]] = {s: [] for s in feed.symbols}
        self.states: list[tuple[str, str, dict[str, Any]]] = []
        self.delays: list[float] = []
        # Backoff sleeps waiting for `release_backoff`.
        self.held = 0
        self._released = anyio.Event()
        self._released.set()
        self._changed = anyio.Event()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def on_candle(self, symbol: str, timeframe: str, candle: Candle) -> None:
        self.candles[symbol].append(candle)
        self._notify()

    def on_state(self, symbol: str, state: str, detail: dict[str, Any]) -> None:
        self.states.append((symbol, state, detail))
        self._notify()

    def state_names(self, symbol: str = ETH) -> list[str]:
        return [state for s, state, _ in self.states if s == symbol]

    async def wait(self, condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
        """Wait until `condition()` holds, checking it after each candle, state change or held backoff."""
        try:
            with anyio.fail_after(timeout):
                while not condition():
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None

    async def subscribed(self, count: int | None = None, timeout: float = 5.0) -> None:
        """Wait until the fake has seen `count` subscriptions in all (default: one per symbol) and every symbol is connected.

        A symbol is connected once the REST catch-up that follows its websocket's opening is
        done: a test moving the fake's clock after this wait races no catch-up still asking.
        """
        await self.fake.wait_subscribed(len(self.feed.symbols) if count is None else count, timeout)
        symbols = self.feed.symbols
        await self.wait(lambda: all(self.feed.states[s] == "connected" for s in symbols), "every symbol connected", timeout)

    async def published_through(self, ts: int, symbol: str = ETH, timeout: float = 5.0) -> None:
        """Wait until the candle opening at `ts` has been published."""
        got = self.candles[symbol]
        await self.wait(lambda: bool(got) and got[-1].ts >= ts, f"{symbol} candle {ts}", timeout)

    def hold_backoff(self) -> None:
        """Make the feed's next backoff sleeps wait until `release_backoff`."""
        if self._released.is_set():
            self._released = anyio.Event()

    def release_backoff(self) -> None:
        """Let held and later backoff sleeps go on at once."""
        self._released.set()

    async def backoff_sleep(self, delay: float) -> None:
        """The feed's sleep: records the delay, waits while held, and otherwise only yields."""
        self.delays.append(delay)
        released = self._released
        if not released.is_set():
            self.held += 1
            self._notify()
            try:
                await released.wait()
            finally:
                self.held -= 1
        await no_wait(delay)


@asynccontextmanager
async def running_feed(
    markets: Mapping[str, Path | Series] | None = None,
    start: int = 1200,
    backfill: int = 50,
    feed_settings: dict[str, Any] | None = None,
    exchange: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    exchange_id: str = "binance",
    symbols: list[str] | None = None,
    faults: Callable[[Faults], None] | None = None,
    **feed_kwargs: Any,
) -> AsyncIterator[Rig]:
    """Start a fake exchange at candle `start`, a feed on it (backfilled) through ccxt's `exchange_id`, and stop both on exit.

    The feed streams `symbols` (default: every market of the fake); `faults` are scheduled
    before the feed's first request.
    """
    async with FakeBinance(markets or {ETH: ETH_1M}, start=start) as fake:
        if faults is not None:
            faults(fake.faults)
        config = ExchangeConfig.model_validate(
            fake.exchange_config(exchange_id, feed={"backfill": backfill, **(feed_settings or {})}, **(exchange or {}))
        )
        client, redact = build_exchange(config, env or {})
        holder: list[Rig] = []

        async def sleep(delay: float) -> None:
            await holder[0].backoff_sleep(delay)

        if feed_kwargs.get("sleep", sleep) is None:
            feed_kwargs.pop("sleep")  # the real anyio.sleep
        else:
            feed_kwargs.setdefault("sleep", sleep)
        feed = LiveCandleFeed(
            client, symbols or list(fake.markets), config.feed,
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
