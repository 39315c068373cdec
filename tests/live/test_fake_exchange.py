"""The fake exchange's klines endpoint follows Binance's rules (so the feed is tested against them)."""
from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from bot.ohlcv import Candle
from tests.fake_exchange import FakeBinance
from tests.live.support import ETH
from tests.support import ETH_1M


async def klines(fake: FakeBinance, **query: Any) -> tuple[int, Any]:
    params = {"symbol": "ETHBTC", "interval": "1m", **{k: str(v) for k, v in query.items()}}
    async with aiohttp.ClientSession() as session, session.get(f"{fake.http_url}/api/v3/klines", params=params) as response:
        return response.status, await response.json()


@pytest.mark.asyncio
async def test_klines_window_limit_and_now(eth: list[Candle]) -> None:
    async with FakeBinance({ETH: ETH_1M}, start=2000) as fake:
        status, rows = await klines(fake)
        assert status == 200 and len(rows) == 500  # default limit: the most recent
        assert rows[-1][0] == eth[2000].ts  # the forming candle is there, partial
        assert rows[-1][4] == rows[-1][1] and rows[-1][5] == "0.0"
        assert rows[-2][:6] == [eth[1999].ts, *ETH_1M.read_text().splitlines()[2000].split(",")[1:]]
        assert rows[-2][6] == eth[1999].ts + 59_999
        _, rows = await klines(fake, startTime=eth[10].ts, limit=3)
        assert [r[0] for r in rows] == [eth[10].ts, eth[11].ts, eth[12].ts]
        _, rows = await klines(fake, startTime=eth[10].ts, endTime=eth[11].ts)
        assert [r[0] for r in rows] == [eth[10].ts, eth[11].ts]  # both ends inclusive
        _, rows = await klines(fake, endTime=eth[10].ts, limit=2)
        assert [r[0] for r in rows] == [eth[9].ts, eth[10].ts]
        _, rows = await klines(fake, startTime=eth[1990].ts, limit=1000)
        assert rows[-1][0] == eth[2000].ts  # nothing from the fake's future
        assert (await klines(fake, limit=1001))[0] == 400
        assert (await klines(fake, symbol="NOPE"))[1]["code"] == -1121
        assert (await klines(fake, interval="5m"))[1]["code"] == -1120
        fake.faults.rest_errors(429, count=1, retry_after=3)
        async with aiohttp.ClientSession() as session, session.get(f"{fake.http_url}/api/v3/ping") as response:
            assert response.status == 429 and response.headers["Retry-After"] == "3"
        assert (await klines(fake, limit=1))[0] == 200
