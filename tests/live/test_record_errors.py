"""`bot record`'s Recorder on the fake exchange through the real ccxt client: a ccxt failure says "exchange
unreachable" only while the start backfill is not done; one after it says the recording stopped, and what was
written stays on disk."""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import ccxt
import pytest

from bot.config.exchange import ExchangeConfig
from bot.live.ccxt_feed import LiveCandleFeed
from bot.live.exchange_errors import translate
from bot.live.markets import ExchangeUnreachable
from bot.live.recorder import Recorder, RecordingFailed
from tests.fake_exchange import FakeBinance
from tests.live.support import ETH
from tests.support import ETH_1M

DOWN = 10**6  # REST requests the fake refuses with 503


class FailsOnceStreaming(LiveCandleFeed):
    """The real feed, whose streaming part (a task started after the start backfill) fails as a ccxt request does (translated)."""

    async def _watchdog(self) -> None:
        raise translate(ccxt.ExchangeNotAvailable("binance GET https://api.binance.com/api/v3/klines 503 Service Unavailable"))


class OnLog(logging.Handler):
    """Runs `action` once, when a record containing `text` is logged: the fake changes at that point of the feed's start
    (its logger must let the record through)."""

    def __init__(self, text: str, action: Callable[[], None]) -> None:
        super().__init__()
        self._text = text
        self._action: Callable[[], None] | None = action

    def emit(self, record: logging.LogRecord) -> None:
        if self._action is not None and self._text in record.getMessage():
            action, self._action = self._action, None
            action()


def _rows(path: Path) -> int:
    return path.read_bytes().count(b"\n") - 1


@pytest.mark.asyncio
async def test_a_ccxt_failure_after_the_start_backfill_is_not_called_an_unreachable_exchange(tmp_path: Path) -> None:
    logger = logging.getLogger("test.record.after")
    async with FakeBinance({ETH: ETH_1M}, start=3000) as fake:
        config = ExchangeConfig.model_validate(fake.exchange_config(feed={"reconnect_min_s": 0.05}))
        recorder = Recorder(config, [ETH], tmp_path / "out", logger, {}, since_ms=fake.market(ETH).series.stamps[0], feed_type=FailsOnceStreaming)
        with pytest.raises(RecordingFailed) as failed:
            await recorder.run()
    assert str(failed.value) == (
        "recording stopped by an exchange error: ExchangeNotAvailable: binance GET https://api.binance.com/api/v3/klines "
        "503 Service Unavailable (the files hold every candle written before it)"
    )
    assert _rows(tmp_path / "out" / "ETH-BTC_1m.csv") == 3000  # the backfill, on disk


@pytest.mark.asyncio
async def test_a_start_request_still_failing_after_its_retries_is_an_unreachable_exchange(tmp_path: Path) -> None:
    """The markets load; from the first candle request of the backfill on, every REST request fails with 503."""
    logger = logging.getLogger("test.record.start")
    logger.setLevel(logging.INFO)  # the state change the fault waits for is logged at INFO
    async with FakeBinance({ETH: ETH_1M}, start=3000) as fake:
        handler = OnLog("backfilling", lambda: fake.faults.rest_errors(503, DOWN))
        logger.addHandler(handler)
        try:
            config = ExchangeConfig.model_validate(fake.exchange_config(feed={"reconnect_min_s": 0.01, "reconnect_max_s": 0.02, "rest_retries": 2}))
            recorder = Recorder(config, [ETH], tmp_path / "out", logger, {}, since_ms=fake.market(ETH).series.stamps[0])
            with pytest.raises(ExchangeUnreachable) as failed:
                await recorder.run()
        finally:
            logger.removeHandler(handler)
    assert str(failed.value).startswith("exchange unreachable: OperationFailed: binance {\"code\":-1001,")
    assert str(failed.value).endswith("(still failing after exchange.feed.rest_retries retries)")
    assert _rows(tmp_path / "out" / "ETH-BTC_1m.csv") == 0
