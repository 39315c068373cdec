"""Reads Binance kline messages as ccxt.pro receives them, keeping the closed flag (`k.x`) ccxt drops."""
from __future__ import annotations

from collections import deque
from typing import Any

from bot.candles.model import Candle
from bot.live.rows import BadRow, to_candle
from bot.live.ws_guard import MalformedCallback

# Exchanges whose kline stream is Binance's spot format, with `k.x` set on a candle's last push.
BINANCE_LIKE = frozenset({"binance", "binanceus"})
# Updates kept per (symbol, timeframe) between two reads; older ones are dropped, which the
# feed sees as a hole and fills over REST, so memory stays bounded if a reader stalls.
MAX_PENDING = 10_000

Update = tuple[Candle, bool]


class BinanceKlineTap:
    """Collects every kline update, in arrival order, with its closed flag, for the symbols asked for.

    ccxt.pro's watch_ohlcv returns its cache of rows and forgets whether a row is final; this
    wraps the exchange instance's `handle_ohlcv` to see each raw message first. A message that
    is not a valid kline is reported and not passed on to ccxt either.
    """

    def __init__(self, exchange: Any, tf_ms: dict[str, int], on_malformed: MalformedCallback) -> None:
        self._exchange = exchange
        self._tf_ms = tf_ms
        self._on_malformed = on_malformed
        self._pending: dict[tuple[str, str], deque[Update]] = {}
        original = exchange.handle_ohlcv

        def handle_ohlcv(client: Any, message: Any) -> None:
            try:
                key, update = self._parse(message)
            except (BadRow, KeyError, TypeError, ValueError) as exc:
                on_malformed(message, exc)
                return
            pending = self._pending.get(key)
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

    def _parse(self, message: Any) -> tuple[tuple[str, str], Update]:
        k = message["k"]
        exchange = self._exchange
        timeframe = exchange.find_timeframe(k["i"])
        symbol = exchange.safe_symbol(k["s"], None, None, "spot")
        if timeframe is None or timeframe not in self._tf_ms:
            raise ValueError(f"unexpected interval {k['i']!r}")
        row = [k["t"], float(k["o"]), float(k["h"]), float(k["l"]), float(k["c"]), float(k["v"])]
        closed = k["x"]
        if type(closed) is not bool:
            raise ValueError(f"closed flag is not a boolean: {closed!r}")
        return (symbol, timeframe), (to_candle(row, self._tf_ms[timeframe]), closed)
