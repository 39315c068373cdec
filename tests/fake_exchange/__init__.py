"""A fake Binance (spot, USDT-M and COIN-M perpetuals) for tests: REST and kline websockets on 127.0.0.1, recorded candles."""
from tests.fake_exchange.faults import Faults, RestFault
from tests.fake_exchange.markets import COINM, SPOT, USDM, FakeMarket, Venue
from tests.fake_exchange.series import Series
from tests.fake_exchange.server import FakeBinance
from tests.fake_exchange.stream import BROKEN_JSON, bad_kline

__all__ = ["BROKEN_JSON", "COINM", "SPOT", "USDM", "FakeBinance", "FakeMarket", "Faults", "RestFault", "Series", "Venue", "bad_kline"]
