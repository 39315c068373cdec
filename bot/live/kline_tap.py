"""Reads Binance kline messages as ccxt.pro receives them, keeping the closed flag (`k.x`) ccxt drops."""
from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from bot.candles.model import Candle
from bot.live.rows import BadRow, to_candle
from bot.live.ws_guard import MalformedCallback

# Exchanges whose kline stream is Binance's format, with `k.x` set on a candle's last push: spot,
# and the USDT-M and COIN-M futures (binance itself streams those too, for swap symbols).
BINANCE_LIKE = frozenset({"binance", "binanceus", "binanceusdm", "binancecoinm"})
# Updates kept per (symbol, timeframe) between two reads; older ones are dropped, which the
# feed sees as a hole and fills over REST, so memory stays bounded if a reader stalls.
MAX_PENDING = 10_000

Update = tuple[Candle, bool]


class BinanceKlineTap:
    """Collects every kline update, in arrival order, with its closed flag, for the symbols asked for.

    ccxt.pro's watch_ohlcv returns its cache of rows and forgets whether a row is final; this
    wraps the exchange instance's `handle_ohlcv` to see each raw message first. A message that
    is not a valid kline is reported and not passed on to ccxt either.

    A message names its market by Binance id only, and one id can be several markets (BTCUSDT:
    spot BTC/USDT and the perpetual BTC/USDT:USDT, both loaded by binance). Such a message
    belongs to the market whose klines the connection it came on subscribed to.
    """

    def __init__(self, exchange: Any, tf_ms: dict[str, int], on_malformed: MalformedCallback) -> None:
        self._exchange = exchange
        self._tf_ms = tf_ms
        self._on_malformed = on_malformed
        self._pending: dict[tuple[str, str], deque[Update]] = {}
        original = exchange.handle_ohlcv

        def handle_ohlcv(client: Any, message: Any) -> None:
            try:
                key, update = self._parse(client, message)
            except (BadRow, KeyError, TypeError, ValueError) as exc:
                on_malformed(message, exc)
                return
            pending = self._pending.get(key) if key is not None else None
            if pending is not None:
                pending.append(update)
            original(client, message)

        exchange.handle_ohlcv = handle_ohlcv

    @staticmethod
    def supports(exchange: Any) -> bool:
        """Whether this exchange's kline messages have Binance's shape."""
        return getattr(exchange, "id", None) in BINANCE_LIKE and hasattr(exchange, "handle_ohlcv")

    def watch(self, symbol: str, timeframe: str) -> None:
        """Start collecting updates for a (symbol, timeframe)."""
        self._pending.setdefault((symbol, timeframe), deque(maxlen=MAX_PENDING))

    def pending(self, symbol: str, timeframe: str) -> int:
        """How many updates wait to be drained."""
        return len(self._pending[(symbol, timeframe)])

    def drain(self, symbol: str, timeframe: str) -> list[Update]:
        """Every update collected since the last call, oldest first."""
        pending = self._pending[(symbol, timeframe)]
        updates = list(pending)
        pending.clear()
        return updates

    def _parse(self, client: Any, message: Any) -> tuple[tuple[str, str] | None, Update]:
        k = message["k"]
        timeframe = self._exchange.find_timeframe(k["i"])
        if timeframe is None or timeframe not in self._tf_ms:
            raise ValueError(f"unexpected interval {k['i']!r}")
        market = self._market(client, k["s"], timeframe)
        # COIN-M's `v` counts contracts; its base asset volume, `q`, is what REST candles carry (ccxt's fetch_ohlcv).
        volume = k["q"] if market is not None and market.get("inverse") else k["v"]
        row = [k["t"], float(k["o"]), float(k["h"]), float(k["l"]), float(k["c"]), float(volume)]
        closed = k["x"]
        if type(closed) is not bool:
            raise ValueError(f"closed flag is not a boolean: {closed!r}")
        key = None if market is None else (str(market["symbol"]), timeframe)
        return key, (to_candle(row, self._tf_ms[timeframe]), closed)

    def _market(self, client: Any, market_id: Any, timeframe: str) -> Mapping[str, Any] | None:
        """The ccxt market of a kline message's market id, None for a market nobody here watches."""
        markets = (getattr(self._exchange, "markets_by_id", None) or {}).get(market_id) or []
        if len(markets) == 1:
            return markets[0]
        # ccxt registers a kline subscription on its connection as "ohlcv::<symbol>::<timeframe>".
        subscribed = getattr(client, "subscriptions", None) or {}
        on_connection = [m for m in markets if f"ohlcv::{m['symbol']}::{timeframe}" in subscribed]
        if len(on_connection) == 1:
            return on_connection[0]
        candidates = [m["symbol"] for m in markets]
        if any((symbol, timeframe) in self._pending for symbol in candidates):
            raise ValueError(
                f"market id {market_id} is {', '.join(candidates)}, and the connection it came on "
                f"({getattr(client, 'url', '?')}) has subscribed to klines of {'several' if on_connection else 'none'} of them"
            )
        return None
