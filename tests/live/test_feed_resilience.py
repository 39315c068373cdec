"""LiveCandleFeed when the exchange misbehaves: rate limits, server errors, refused and silent websockets, polling."""
from __future__ import annotations

import pytest

from bot.ohlcv import Candle
from tests.live.support import ETH, running_feed

START = 1200
BACKFILL = 50


@pytest.mark.asyncio
async def test_rate_limited_backfill_waits_at_least_retry_after_then_succeeds(eth: list[Candle]) -> None:
    async with running_feed(start=START) as rig:
        await rig.subscribed()
        rig.fake.faults.skip_range(START + 2, 3)  # the hole makes the feed call REST
        rig.fake.faults.rest_errors(429, count=2, retry_after=7)
        await rig.fake.stream(8)
        await rig.published_through(eth[START + 7].ts)
        assert rig.candles[ETH] == eth[START - BACKFILL:START + 8]
        # Two refused requests, two waits, each at least the server's Retry-After.
        assert rig.delays[:2] == [pytest.approx(7.0), pytest.approx(7.0)]
        assert len(rig.fake.kline_requests()) == 4  # start, then the fill tried three times


@pytest.mark.asyncio
async def test_server_errors_back_off_exponentially_then_succeed(eth: list[Candle]) -> None:
    async with running_feed(start=START, feed_settings={"reconnect_min_s": 0.1, "reconnect_max_s": 1.0}, random=lambda: 0.0) as rig:
        await rig.subscribed()
        rig.fake.faults.skip_range(START + 1, 2)
        rig.fake.faults.rest_errors(503, count=2)
        rig.fake.faults.rest_errors(500, count=2)
        await rig.fake.stream(6)
        await rig.published_through(eth[START + 5].ts)
        assert rig.candles[ETH] == eth[START - BACKFILL:START + 6]
        assert rig.delays[:4] == pytest.approx([0.1, 0.2, 0.4, 0.8])


@pytest.mark.asyncio
async def test_errors_at_start_are_retried_before_the_backfill_completes(eth: list[Candle]) -> None:
    # In place before the feed's first request: exchangeInfo and time fail first.
    async with running_feed(start=START, faults=lambda faults: faults.rest_errors(502, count=3)) as rig:
        assert rig.candles[ETH] == eth[START - BACKFILL:START]
        assert len(rig.delays) == 3


@pytest.mark.asyncio
async def test_refused_websocket_handshakes_are_retried_with_backoff(eth: list[Candle]) -> None:
    async with running_feed(start=START, feed_settings={"reconnect_min_s": 0.05}) as rig:
        await rig.subscribed()
        rig.fake.faults.reject_ws = 2
        rig.fake.faults.disconnect[START + 1] = 0
        await rig.fake.stream(3)
        await rig.subscribed(2)
        await rig.fake.stream(3)
        await rig.published_through(eth[START + 5].ts)
        assert rig.candles[ETH] == eth[START - BACKFILL:START + 6]
        assert rig.state_names().count("reconnecting") == 3  # the cut, then two refusals
        assert rig.fake.faults.reject_ws == 0


@pytest.mark.asyncio
async def test_a_silent_websocket_is_reported_stale_and_reconnected(eth: list[Candle]) -> None:
    async with running_feed(start=START, stale_after_s=0.3) as rig:
        await rig.subscribed()
        await rig.fake.stream(2)
        await rig.published_through(eth[START + 1].ts)
        # The connection stays open but nothing comes: only the watchdog can tell.
        await rig.subscribed(2, timeout=3)
        stale = [d for _, state, d in rig.states if state == "stale"]
        assert stale and stale[0]["last_ts"] == eth[START + 1].ts
        await rig.fake.stream(3)
        await rig.published_through(eth[START + 4].ts)
        assert rig.candles[ETH] == eth[START - BACKFILL:START + 5]
        states = rig.state_names()
        after = states[states.index("stale"):]
        assert after[:2] == ["stale", "reconnecting"] and "connected" in after


@pytest.mark.asyncio
async def test_a_stale_reconnect_fetches_the_candles_the_silent_stream_left_out(eth: list[Candle]) -> None:
    async with running_feed(start=START, stale_after_s=0.3) as rig:
        await rig.subscribed()
        await rig.fake.stream(2)
        await rig.published_through(eth[START + 1].ts)
        # The connection stays open, but these candles never come over it, and nothing after them.
        rig.fake.faults.skip_range(START + 2, 5)
        await rig.fake.stream(5)
        await rig.published_through(eth[START + 6].ts)
        assert rig.candles[ETH] == eth[START - BACKFILL:START + 7]
        states = rig.state_names()
        assert states[states.index("stale"):][:2] == ["stale", "reconnecting"]
        fills = [d for s, state, d in rig.states if state == "backfilling" and d.get("reason") != "start"]
        assert fills and fills[0]["reason"] == "reconnected"


@pytest.mark.asyncio
async def test_polling_fallback_publishes_closed_candles_only(eth: list[Candle]) -> None:
    async with running_feed(start=START, feed_settings={"mode": "poll", "poll_interval_s": 0.01}, sleep=None) as rig:
        assert rig.feed.mode == "poll"
        # Polling: the clock moves (no subscriber needed); candles appear once REST shows them closed.
        await rig.fake.stream(5, pause=0.002)
        await rig.published_through(eth[START + 4].ts)
        assert rig.candles[ETH] == eth[START - BACKFILL:START + 5]
        assert rig.fake.ws.connects == 0
        assert "polling" in rig.state_names()
