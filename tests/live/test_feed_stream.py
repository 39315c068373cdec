"""LiveCandleFeed against the fake Binance through the real ccxt client: what comes out, in what order."""
from __future__ import annotations

import asyncio
import logging

import pytest

from bot.ohlcv import Candle
from tests.fake_exchange import BROKEN_JSON, bad_kline
from tests.live.support import ETH, running_feed
from tests.support import SHARED_DATA

START = 1200  # the fake's clock starts at the open of this candle
BACKFILL = 50


@pytest.mark.asyncio
async def test_backfill_then_stream_publishes_the_recorded_candles_exactly(eth: list[Candle]) -> None:
    async with running_feed(start=START, backfill=BACKFILL) as rig:
        assert rig.candles[ETH] == eth[START - BACKFILL:START]  # backfilled before run() reported started
        await rig.subscribed()
        await rig.fake.stream(30)
        await rig.published_through(eth[START + 29].ts)
        assert rig.candles[ETH] == eth[START - BACKFILL:START + 30]
        assert rig.state_names()[:2] == ["backfilling", "connected"]
        # Only the closing pushes were published: one REST page at the start, none after.
        assert len(rig.fake.kline_requests()) == 1


@pytest.mark.asyncio
async def test_a_disconnect_mid_candle_loses_nothing_and_publishes_no_partial_candle(eth: list[Candle]) -> None:
    async with running_feed(start=START) as rig:
        await rig.subscribed()
        rig.fake.faults.disconnect[START + 3] = 1  # after the first of the candle's three pushes
        await rig.fake.stream(8)  # candles pushed while nobody listens are lost to the stream
        await rig.subscribed(2)
        await rig.fake.stream(5)
        await rig.published_through(eth[START + 12].ts)
        assert rig.candles[ETH] == eth[START - BACKFILL:START + 13]
        states = rig.state_names()
        assert "reconnecting" in states
        assert states.index("reconnecting") < states.index("backfilling", 1)
        # The missing candles came from REST, from the first one not published.
        fill = rig.fake.kline_requests()[1]
        assert int(fill["startTime"]) == eth[START + 3].ts


@pytest.mark.asyncio
@pytest.mark.parametrize("use_close_flag", [True, False])
async def test_candles_closed_while_disconnected_are_fetched_at_the_reconnect_though_the_stream_stays_quiet(
    eth: list[Candle], use_close_flag: bool
) -> None:
    async with running_feed(start=START, use_close_flag=use_close_flag) as rig:
        await rig.subscribed()
        await rig.fake.stream(2)
        # Without the flag, START + 1 is published only once START + 2 starts.
        last = START + 1 if use_close_flag else START
        await rig.published_through(eth[last].ts)
        rig.hold_backoff()
        await rig.fake.ws.disconnect_all()
        await rig.wait(lambda: rig.held > 0, "the feed waiting to reconnect")
        await rig.fake.stream(5)  # candles close while the feed is away
        fills = len(rig.fake.kline_requests())
        rig.release_backoff()
        # Nothing is pushed after the reconnect: only REST can bring these candles.
        await rig.published_through(eth[START + 6].ts)
        assert rig.candles[ETH] == eth[START - BACKFILL:START + 7]
        assert rig.fake.ws.subscriptions == 2
        assert int(rig.fake.kline_requests()[fills]["startTime"]) == eth[last + 1].ts
        states = rig.state_names()
        assert states[states.index("reconnecting"):][-2:] == ["backfilling", "connected"]


@pytest.mark.asyncio
@pytest.mark.parametrize("resumed", [False, True])
async def test_candles_closed_before_the_first_subscription_are_fetched_though_the_stream_stays_quiet(
    eth: list[Candle], resumed: bool
) -> None:
    # resumed: a feed told to start at the fake's forming candle (a recorder resuming right after
    # its last row) has nothing to backfill, and must still catch up at its first subscription.
    since = {ETH: eth[START].ts} if resumed else None
    gates: list[asyncio.Event] = []
    async with running_feed(start=START, since=since, faults=lambda faults: gates.append(faults.hold_handshakes())) as rig:
        first = START if resumed else START - BACKFILL
        assert rig.candles[ETH] == eth[first:START]
        await rig.fake.stream(5)  # these close while the feed's websocket is not open: nobody hears their pushes
        fills = len(rig.fake.kline_requests())
        gates[0].set()
        # Nothing is pushed after the subscription: only REST can bring these candles.
        await rig.published_through(eth[START + 4].ts)
        assert rig.candles[ETH] == eth[first:START + 5]
        assert [int(r["startTime"]) for r in rig.fake.kline_requests()[fills:]] == [eth[START].ts]
        assert rig.state_names() == ["backfilling", "backfilling", "connected"]
        assert rig.states[1][2] == {"reason": "subscribed", "until": eth[START + 4].ts + 1}


@pytest.mark.asyncio
async def test_a_cut_while_the_feed_is_busy_filling_a_hole_is_a_reconnect_with_its_catch_up(eth: list[Candle]) -> None:
    # No watch call is waiting when the websocket closes, so none fails: ccxt's next one would
    # quietly open a new connection, and what closed meanwhile would wait for the next message.
    async with running_feed(start=START) as rig:
        await rig.subscribed()
        rig.fake.faults.skip.add(START + 2)
        rig.fake.faults.rest_errors(500, count=1)  # the hole's fill fails once: the feed waits to retry
        rig.hold_backoff()
        await rig.fake.stream(4)
        await rig.wait(lambda: rig.held > 0, "the feed waiting to retry the fill")
        await rig.fake.ws.disconnect_all()
        await rig.fake.stream(5)  # candles close while the feed is away
        rig.release_backoff()
        await rig.published_through(eth[START + 8].ts)  # nothing more is pushed: only REST has them
        assert rig.candles[ETH] == eth[START - BACKFILL:START + 9]
        assert "reconnecting" in rig.state_names()


@pytest.mark.asyncio
async def test_a_hole_in_the_stream_is_backfilled_before_newer_candles(eth: list[Candle]) -> None:
    async with running_feed(start=START) as rig:
        await rig.subscribed()
        rig.fake.faults.skip_range(START + 5, 4)
        await rig.fake.stream(15)
        await rig.published_through(eth[START + 14].ts)
        assert rig.candles[ETH] == eth[START - BACKFILL:START + 15]
        holes = [d for s, state, d in rig.states if state == "backfilling" and d.get("reason") != "start"]
        assert holes == [{"reason": f"candles missing before {eth[START + 9].ts}", "until": eth[START + 9].ts}]


@pytest.mark.asyncio
async def test_duplicated_and_out_of_order_messages_are_dropped(eth: list[Candle]) -> None:
    async with running_feed(start=START) as rig:
        await rig.subscribed()
        rig.fake.faults.duplicate.update({START + 2, START + 3})
        rig.fake.faults.late.add(START + 6)  # its close arrives after the next candle started
        await rig.fake.stream(12)
        await rig.published_through(eth[START + 11].ts)
        assert rig.candles[ETH] == eth[START - BACKFILL:START + 12]
        assert rig.feed._assemblers[ETH].ignored >= 3


@pytest.mark.asyncio
async def test_a_malformed_message_is_logged_and_skipped_and_the_feed_goes_on(
    eth: list[Candle], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="bot.tests.live")
    async with running_feed(start=START) as rig:
        await rig.subscribed()
        market = rig.fake.market(ETH)
        rig.fake.faults.malformed[START + 2] = [BROKEN_JSON, bad_kline(market, START + 2), '{"e":"kline","s":"ETHBTC"}']
        await rig.fake.stream(6)
        await rig.published_through(eth[START + 5].ts)
        assert rig.candles[ETH] == eth[START - BACKFILL:START + 6]
        assert rig.feed.malformed == 3
        assert "reconnecting" not in rig.state_names()  # one bad message does not cost the connection
    logged = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
    assert len(logged) == 3
    assert BROKEN_JSON in logged[0]
    assert "not-a-number" in logged[1]


@pytest.mark.asyncio
async def test_a_close_lost_in_a_bad_message_is_fetched_over_rest(eth: list[Candle]) -> None:
    # The garbage replaces the candle's closing push: its final values must come from REST.
    async with running_feed(start=START) as rig:
        await rig.subscribed()
        rig.fake.faults.skip.add(START + 4)
        rig.fake.faults.malformed[START + 4] = [bad_kline(rig.fake.market(ETH), START + 4)]
        await rig.fake.stream(8)
        await rig.published_through(eth[START + 7].ts)
        assert rig.candles[ETH] == eth[START - BACKFILL:START + 8]


@pytest.mark.asyncio
async def test_without_the_close_flag_a_candle_closes_when_the_next_starts(eth: list[Candle]) -> None:
    # The path for exchanges whose stream has no close flag: ccxt's own cache rows only.
    async with running_feed(start=START, use_close_flag=False) as rig:
        await rig.subscribed()
        rig.fake.faults.skip_range(START + 4, 2)
        await rig.fake.stream(10)
        await rig.published_through(eth[START + 8].ts)
        assert rig.candles[ETH] == eth[START - BACKFILL:START + 9]


@pytest.mark.asyncio
async def test_several_symbols_share_one_connection(eth: list[Candle]) -> None:
    from bot.candles.reader import read_candles

    xmr_path = SHARED_DATA / "XMR-BTC_1m.csv"
    xmr = list(read_candles(xmr_path))
    markets = {ETH: SHARED_DATA / "ETH-BTC_1m.csv", "XMR/BTC": xmr_path}
    async with running_feed(markets=markets, start=START) as rig:
        await rig.subscribed(2)
        rig.fake.faults.disconnect[START + 4] = 2
        await rig.fake.stream(8)
        await rig.subscribed(4)
        await rig.fake.stream(6)
        await rig.published_through(eth[START + 13].ts)
        end = eth[START + 13].ts
        await rig.published_through(max(c.ts for c in xmr if c.ts <= end), "XMR/BTC")
        assert rig.candles[ETH] == eth[START - BACKFILL:START + 14]
        first = rig.candles["XMR/BTC"][0].ts
        assert rig.candles["XMR/BTC"] == [c for c in xmr if first <= c.ts <= end]
        assert rig.fake.ws.connects == 2


@pytest.mark.asyncio
async def test_without_the_close_flag_a_disconnect_discards_the_partial_candle(eth: list[Candle]) -> None:
    async with running_feed(start=START, use_close_flag=False) as rig:
        await rig.subscribed()
        rig.fake.faults.disconnect[START + 3] = 1  # candle START+3 seen only partially
        await rig.fake.stream(5)
        await rig.subscribed(2)
        await rig.fake.stream(4)
        await rig.published_through(eth[START + 7].ts)
        # START + 8 closed too: the catch-up after the reconnect may have fetched it already.
        got = rig.candles[ETH]
        assert got == eth[START - BACKFILL:START - BACKFILL + len(got)] and len(got) in (BACKFILL + 8, BACKFILL + 9)
