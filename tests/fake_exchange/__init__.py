"""A fake Binance spot exchange for tests: REST and kline websocket on 127.0.0.1, recorded candles."""
from tests.fake_exchange.faults import Faults, RestFault
from tests.fake_exchange.server import FakeBinance, FakeMarket
from tests.fake_exchange.stream import BROKEN_JSON, bad_kline

__all__ = ["BROKEN_JSON", "FakeBinance", "FakeMarket", "Faults", "RestFault", "bad_kline"]
