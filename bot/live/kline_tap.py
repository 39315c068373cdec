"""Reads Binance kline messages as ccxt.pro receives them, keeping the closed flag (`k.x`) ccxt drops."""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from bot.live.rows import BadRow, to_candle
from bot.live.ws_guard import MalformedCallback
from bot.ohlcv import Candle

# Exchanges whose kline stream is Binance's format, with `k.x` set on a candle's last push: spot,
# and the USDT-M and COIN-M futures (binance itself streams those too, for swap symbols).
BINANCE_LIKE = frozenset({"binance", "binanceus", "binanceusdm", "binancecoinm"})
# Updates kept per (symbol, timeframe) between two reads; older ones are dropped, which the
# feed sees as a hole and fills over REST, so memory stays bounded if a reader stalls.
MAX_PENDING = 10_000
# What ccxt versions without `is_spot_url` (older than this project's floor: 4.5.0, 4.3.50)
# look for in a connection's url, inline in their handle_ohlcv: Binance streams spot from stream.binance.com (4.3.50 also knew
# the testnet's testnet.binance.vision), futures from fstream.* and dstream.* hosts.
SPOT_URL_MARKS = ("/stream", "/testnet.binance")

Update = tuple[Candle, bool]
# Told, once per (market id, connection url), that a kline could not be filed under a market.
UnfiledCallback = Callable[[str], None]


class UndecidedMarket(Exception):
    """A kline's market id names several markets, and its connection does not tell which one."""


class BinanceKlineTap:
    """Collects every kline update, in arrival order, with its closed flag, for the symbols asked for.

    ccxt.pro's watch_ohlcv returns its cache of rows and forgets whether a row is final; this
    wraps the exchange instance's `handle_ohlcv` to see each raw message first. A message that
    is not a valid kline is reported and not passed on to ccxt either.

    A message names its market by Binance id only, and one id can be several markets (BTCUSDT:
    spot BTC/USDT and the perpetual BTC/USDT:USDT, both loaded by binance). Binance streams them
    from different hosts, and ccxt files such a message by its connection's url (spot or not):
    so does this, whatever key the ccxt version subscribes under (`ohlcv::BTC/USDT::1m` now,
    `btcusdt@kline_1m` up to at least 4.3.50: the same on both connections). A message whose
    market still cannot be decided is passed on to ccxt all the same, and `on_unfiled` told once.
    """

    def __init__(
        self, exchange: Any, tf_ms: dict[str, int], on_malformed: MalformedCallback, on_unfiled: UnfiledCallback,
    ) -> None:
        self._exchange = exchange
        self._tf_ms = tf_ms
        self._on_unfiled = on_unfiled
        self._pending: dict[tuple[str, str], deque[Update]] = {}
        self._unfiled: set[tuple[str, str]] = set()
        original = exchange.handle_ohlcv

        def handle_ohlcv(client: Any, message: Any) -> None:
            try:
                key, update = self._parse(client, message)
            except UndecidedMarket as exc:
                self._report_unfiled(client, message, exc)
            except (BadRow, KeyError, TypeError, ValueError) as exc:
                on_malformed(message, exc)
                return
            else:
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
        closed = k["x"]
        if type(closed) is not bool:
            raise ValueError(f"closed flag is not a boolean: {closed!r}")
        prices = [k["t"], float(k["o"]), float(k["h"]), float(k["l"]), float(k["c"])]
        # Checked before its market is looked for: a bad kline is malformed whichever market it is of.
        candle = to_candle([*prices, float(k["v"])], self._tf_ms[timeframe])
        market = self._market(client, k["s"], timeframe)
        if market is None:
            return None, (candle, closed)
        if market.get("inverse"):
            # COIN-M's `v` counts contracts; its base asset volume, `q`, is what REST candles carry (ccxt's fetch_ohlcv).
            candle = to_candle([*prices, float(k["q"])], self._tf_ms[timeframe])
        return (str(market["symbol"]), timeframe), (candle, closed)

    def _market(self, client: Any, market_id: Any, timeframe: str) -> Mapping[str, Any] | None:
        """The ccxt market of a kline message's market id, None for a market nobody here watches."""
        # ccxt's untyped market dicts, typed here once.
        markets: list[Mapping[str, Any]] = (getattr(self._exchange, "markets_by_id", None) or {}).get(market_id) or []
        if len(markets) == 1:
            return markets[0]
        # ccxt's handle_ohlcv passes the same kind to safe_market, which takes the first market of it;
        # this takes the only one, or reports.
        kind = "spot" if self._is_spot(client) else "contract"
        of_kind = [m for m in markets if m.get(kind) is True]
        if len(of_kind) == 1:
            return of_kind[0]
        candidates = [str(m["symbol"]) for m in markets]
        if any((symbol, timeframe) in self._pending for symbol in candidates):
            raise UndecidedMarket(
                f"market id {market_id} names {', '.join(candidates)}, and the {kind} connection it came on "
                f"({getattr(client, 'url', '?')}) matches {len(of_kind)} of them"
            )
        return None

    def _is_spot(self, client: Any) -> bool:
        """Whether `client` is a spot connection, by its url, as the exchange's own handle_ohlcv decides."""
        is_spot_url = getattr(self._exchange, "is_spot_url", None)
        if callable(is_spot_url):
            return bool(is_spot_url(client))
        url = str(getattr(client, "url", ""))
        return any(mark in url for mark in SPOT_URL_MARKS)

    def _report_unfiled(self, client: Any, message: Any, exc: UndecidedMarket) -> None:
        key = (str(message["k"]["s"]), str(getattr(client, "url", "")))
        if key not in self._unfiled:
            self._unfiled.add(key)
            self._on_unfiled(f"{exc}: its klines are left to ccxt and not published (reported once)")
