"""Building the ccxt exchange from config: overrides, sandbox, and keys that never show."""
from __future__ import annotations

import logging

import pytest

from bot.config.exchange import ExchangeConfig
from bot.config.models import BotConfig
from bot.live.errors import ExchangeSetupError
from bot.live.exchange import build_exchange
from tests.fake_exchange import FakeBinance
from tests.live.support import ETH, running_feed
from tests.support import ETH_1M

KEY = "k3y-VALUE-never-shown-0123456789"
SECRET = "s3cret-VALUE-never-shown-9876543210"
ENV = {"BOT_TEST_KEY": KEY, "BOT_TEST_SECRET": SECRET}


@pytest.mark.asyncio
async def test_urls_and_options_are_merged_over_ccxt_defaults_and_rate_limit_applies() -> None:
    config = ExchangeConfig(id="binance", urls={"api": {"public": "http://127.0.0.1:1/api/v3"}}, options={"defaultType": "spot"}, rate_limit_ms=7)
    exchange, _ = build_exchange(config, {})
    try:
        assert exchange.urls["api"]["public"] == "http://127.0.0.1:1/api/v3"
        assert exchange.urls["api"]["private"] == "https://api.binance.com/api/v3"  # untouched default
        assert exchange.options["defaultType"] == "spot"
        assert "fetchMarkets" in exchange.options  # ccxt's own options kept
        assert exchange.rateLimit == 7 and exchange.tokenBucket["refillRate"] == pytest.approx(1 / 7)
        assert exchange.has["watchOHLCV"]  # ccxt.pro when streaming
    finally:
        await exchange.close()


@pytest.mark.asyncio
async def test_sandbox_uses_the_testnet_and_explicit_urls_still_win() -> None:
    exchange, _ = build_exchange(ExchangeConfig(id="binance", sandbox=True, urls={"api": {"private": "http://127.0.0.1:2/x"}}), {})
    try:
        assert "testnet" in exchange.urls["api"]["public"]
        assert exchange.urls["api"]["private"] == "http://127.0.0.1:2/x"
    finally:
        await exchange.close()


def test_unknown_exchange_and_missing_sandbox_are_setup_errors_naming_the_field() -> None:
    with pytest.raises(ExchangeSetupError, match="exchange.id: ccxt has no exchange 'nosuchexchange'"):
        build_exchange(ExchangeConfig(id="nosuchexchange"), {})
    with pytest.raises(ExchangeSetupError, match="exchange.sandbox"):
        build_exchange(ExchangeConfig(id="bitstamp", sandbox=True), {})


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"exchange\.api_key_env"):
        BotConfig.model_validate({"exchange": {"id": "binance", "api_key_env": "not a variable name!"}})
    with pytest.raises(ValueError, match=r"exchange\.feed\.timeframe"):
        BotConfig.model_validate({"exchange": {"id": "binance", "feed": {"timeframe": "7m"}}})
    with pytest.raises(ValueError, match=r"exchange\.id"):
        BotConfig.model_validate({"exchange": {"id": "Binance Spot"}})
    assert BotConfig.model_validate({"feed": {"source": "ccxt"}, "exchange": {"id": "binance"}}).feed.source == "ccxt"


def test_a_missing_key_variable_is_named_and_its_value_never_shown() -> None:
    config = ExchangeConfig(id="binance", api_key_env="BOT_TEST_KEY", secret_env="BOT_TEST_MISSING")
    with pytest.raises(ExchangeSetupError) as error:
        build_exchange(config, {"BOT_TEST_KEY": KEY})
    assert "BOT_TEST_MISSING" in str(error.value)
    assert KEY not in str(error.value) and KEY not in repr(error.value)


@pytest.mark.asyncio
async def test_keys_never_appear_in_logs_errors_states_or_reprs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    credentials = {"api_key_env": "BOT_TEST_KEY", "secret_env": "BOT_TEST_SECRET"}
    shown: list[str] = []
    async with FakeBinance({ETH: ETH_1M}, start=1200) as fake:
        config = ExchangeConfig.model_validate(fake.exchange_config(**credentials))
        exchange, redact = build_exchange(config, ENV)
        try:
            assert exchange.apiKey == KEY and exchange.secret == SECRET  # they did reach ccxt
            shown += [repr(exchange), str(exchange), repr(config), config.model_dump_json(), repr(redact)]
            assert redact(f"boom {KEY} {SECRET}") == "boom *** ***"
            # A signed request the fake does not serve: ccxt's error carries the request url.
            with pytest.raises(Exception) as signed:
                await exchange.fetch_balance()
            shown += [str(signed.value), repr(signed.value)]
        finally:
            await exchange.close()
    # A feed through rate limits, a disconnect and malformed messages: every log line and state.
    async with running_feed(start=1200, exchange=credentials, env=ENV) as rig:
        await rig.subscribed()
        rig.fake.faults.rest_errors(429, count=1, retry_after=0)
        rig.fake.faults.skip_range(1201, 2)
        rig.fake.faults.disconnect[1204] = 1
        rig.fake.faults.malformed[1203] = ['{"broken', f'{{"e":"kline","k":"{KEY}"}}']
        await rig.fake.stream(6)
        shown += [repr(rig.states), repr(rig.feed.status())]
    shown += [record.getMessage() for record in caplog.records]
    assert len(shown) > 20
    for text in shown:
        assert KEY not in text and SECRET not in text, text


def test_an_error_is_masked_before_it_is_cut_so_a_secret_across_the_cut_never_shows() -> None:
    import ccxt

    from bot.live.errors import describe
    from bot.live.exchange import Redactor

    secret = "S3CRETKEY0123456789"
    exc = ccxt.ExchangeError("x" * 290 + secret + " and more")
    text = describe(exc, Redactor([secret]))
    assert "***" in text and secret[:10] not in text and text.startswith("ExchangeError: ")
    # Unmasked, the cut would have left the secret's first characters in the line.
    assert secret[:10] in describe(exc)
