"""USDT-M perpetuals (BTC/USDT:USDT) stream end to end: fapi REST and the futures websocket, through the real ccxt client."""
from __future__ import annotations

import pytest

from tests.fake_exchange import COINM, SPOT, USDM, Series
from tests.live.support import running_feed, served
from tests.support import BTC_1M

PERP = "BTC/USDT:USDT"
SPOT_BTC = "BTC/USDT"
START = 1200
BACKFILL = 50
DAY_MS = 86_400_000


@pytest.mark.asyncio
@pytest.mark.parametrize("exchange_id", ["binanceusdm", "binance"])
async def test_a_perpetual_streams_its_closed_candles_under_its_own_symbol(exchange_id: str) -> None:
    perp = Series.load(BTC_1M, "1m")
    # binance loads spot and swap markets: BTCUSDT is then the id of both, and only the perpetual is streamed.
    markets = {PERP: perp, **({SPOT_BTC: perp.shifted(-DAY_MS)} if exchange_id == "binance" else {})}
    async with running_feed(markets=markets, symbols=[PERP], start=START, exchange_id=exchange_id) as rig:
        assert rig.candles[PERP] == served(perp, START - BACKFILL, START)
        await rig.subscribed()
        rig.fake.faults.skip_range(START + 4, 2)  # a hole, filled from /fapi/v1/klines
        await rig.fake.stream(10)
        await rig.published_through(perp.stamps[START + 9], PERP)
        assert rig.candles[PERP] == served(perp, START - BACKFILL, START + 10)
        assert rig.fake.kline_requests(SPOT) == []
        assert [int(r["startTime"]) for r in rig.fake.kline_requests(USDM)][1:] == [perp.stamps[START + 4]]
        assert "stale" not in rig.state_names(PERP)


@pytest.mark.asyncio
async def test_spot_and_perpetual_of_one_pair_each_get_their_own_candles() -> None:
    # BTCUSDT is the id of both markets: only the connection a message came on tells them apart.
    # The spot market serves the same recording a day later, so no candle of one equals the other's.
    perp = Series.load(BTC_1M, "1m")
    spot = perp.shifted(-DAY_MS)
    async with running_feed(markets={PERP: perp, SPOT_BTC: spot}, start=START) as rig:
        await rig.subscribed(2)
        rig.fake.faults.disconnect[START + 3] = 2
        await rig.fake.stream(6)
        await rig.subscribed(4)
        await rig.fake.stream(6)
        end = perp.stamps[START + 11]
        await rig.published_through(end, PERP)
        await rig.published_through(end, SPOT_BTC)
        at = spot.index_at_or_after(perp.stamps[START])
        assert rig.candles[PERP] == served(perp, START - BACKFILL, START + 12)
        assert rig.candles[SPOT_BTC] == served(spot, at - BACKFILL, at + 12)
        assert rig.fake.ws.connects == 4  # a spot and a futures websocket, each connected twice


@pytest.mark.asyncio
async def test_a_coin_margined_perpetual_streams_under_its_own_symbol() -> None:
    perp = Series.load(BTC_1M, "1m")
    async with running_feed(markets={"BTC/USD:BTC": perp}, start=START, exchange_id="binancecoinm") as rig:
        await rig.subscribed()
        await rig.fake.stream(5)
        await rig.published_through(perp.stamps[START + 4], "BTC/USD:BTC")
        assert rig.candles["BTC/USD:BTC"] == served(perp, START - BACKFILL, START + 5)
        assert len(rig.fake.kline_requests(COINM)) == 1 == len(rig.fake.kline_requests())


@pytest.mark.asyncio
async def test_a_quiet_perpetual_is_reconnected_alone_and_the_spot_stream_of_its_pair_stays_up() -> None:
    perp = Series.load(BTC_1M, "1m")
    spot = perp.shifted(-DAY_MS)
    at = spot.index_at_or_after(perp.stamps[START])
    # The feed's clock is the test's: the perpetual is quiet past the stale bound, the spot market not.
    clock = [0.0]
    async with running_feed(markets={PERP: perp, SPOT_BTC: spot}, start=START, stale_after_s=0.4, monotonic=lambda: clock[0]) as rig:
        await rig.subscribed(2)
        rig.fake.faults.muted.add(PERP)  # its websocket stays open, and says nothing
        clock[0] = 0.25
        await rig.fake.stream(1)
        await rig.published_through(spot.stamps[at], SPOT_BTC)
        clock[0] = 0.5
        await rig.subscribed(3)  # the perpetual subscribed again, and caught up over REST
        assert rig.candles[PERP] == served(perp, START - BACKFILL, START + 1)
        assert rig.state_names(PERP)[-4:] == ["stale", "reconnecting", "backfilling", "connected"]
        await rig.fake.stream(1)
        await rig.published_through(spot.stamps[at + 1], SPOT_BTC)
        assert rig.candles[SPOT_BTC] == served(spot, at - BACKFILL, at + 2)
        assert rig.state_names(SPOT_BTC) == ["backfilling", "connected"]
        assert rig.fake.ws.connects_by_venue == {"spot": 1, "usdm": 2}
