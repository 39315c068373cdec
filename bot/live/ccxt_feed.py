"""LiveCandleFeed: closed candles from a ccxt exchange, in order, with holes filled over REST."""
from __future__ import annotations

import asyncio
import logging
import random as _random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal

import anyio
from anyio.abc import TaskStatus

from bot.config.exchange import DEFAULT_START_TIMEOUT_S, LiveFeedConfig
from bot.fmt import format_fields
from bot.live.assembler import CandleAssembler, Fill, Publish
from bot.live.backoff import Backoff
from bot.live.connections import WatchConnections
from bot.live.errors import ExchangeRetryable, ExchangeSetupError, describe
from bot.live.exchange_errors import cut, network_failure, translated
from bot.live.kline_tap import BinanceKlineTap
from bot.live.markets import MarketsAtStart
from bot.live.rest import RestCandles
from bot.live.rows import BadRow, to_candle
from bot.live.ws_guard import install_message_guard
from bot.ohlcv import Candle, timeframe_ms

FeedState = Literal["starting", "backfilling", "connected", "reconnecting", "stale", "polling", "failed", "stopped"]
CandleCallback = Callable[[str, str, Candle], None]
StateCallback = Callable[[str, FeedState, dict[str, Any]], None]
_MAX_LOGGED = 500


class LiveCandleFeed:
    """Publishes closed candles of several symbols of one timeframe from a ccxt exchange.

    First a REST backfill (paginated fetch_ohlcv) up to the newest closed candle, then
    `watch_ohlcv` streaming, or polling with fetch_ohlcv when the exchange has no websocket
    OHLCV or the config asks for it. Per symbol, candles go to `on_candle(symbol, timeframe,
    candle)` strictly in time order, each once; a hole seen in the stream is fetched over REST
    and published before any newer candle, and each time a symbol subscribes (the first time
    too, and after a reconnect) what closed since its last candle is fetched as soon as the
    websocket is open, whether or not the stream says anything; the symbol is `connected` from
    then on, before its first message. Feed state changes go to `on_state(symbol, state,
    detail)`. Both callbacks are synchronous and called from the feed's task. Reconnects back
    off exponentially with jitter; a symbol with no candle for `stale_after_s` (a timeframe plus
    the configured margin) is reported stale and its websocket (not the others) reconnected.
    The markets are loaded first, retried for at most `start_timeout_s` while the exchange
    cannot be reached (then ExchangeUnreachable; `start_problem` says why meanwhile).

    On Binance-like exchanges the raw klines are read for their close flag (`use_close_flag`);
    without that, streamed candles are ccxt's cache rows, whose volume on a COIN-M market counts
    contracts while REST's candles (and the tap's) carry the base asset's volume.
    """

    def __init__(
        self,
        exchange: Any,
        symbols: Sequence[str],
        settings: LiveFeedConfig,
        on_candle: CandleCallback,
        on_state: StateCallback,
        *,
        logger: logging.Logger,
        since: Mapping[str, int] | None = None,
        stale_after_s: float | None = None,
        use_close_flag: bool = True,
        redact: Callable[[str], str] = str,
        on_flush: Callable[[str], None] | None = None,
        random: Callable[[], float] = _random.random,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
    ) -> None:
        if not symbols:
            raise ValueError("a feed needs at least one symbol")
        self._exchange = exchange
        self.symbols = list(dict.fromkeys(symbols))
        self.timeframe = settings.timeframe
        self._tf_ms = timeframe_ms(settings.timeframe)
        self._settings = settings
        self._on_candle = on_candle
        self._on_state = on_state
        self._log = logger
        self._since = dict(since or {})
        self.stale_after_s = stale_after_s if stale_after_s is not None else self._tf_ms / 1000 + settings.stale_margin_s
        self._use_close_flag = use_close_flag
        self._redact = redact
        self._on_flush = on_flush
        self._random = random
        self._sleep = sleep
        self._monotonic = monotonic
        self._rest = RestCandles(
            exchange, self.timeframe, self._tf_ms, settings.page_limit, settings.rest_retries,
            self._backoff, sleep, logger, redact, on_retry=self._rest_retry,
        )
        self._markets = MarketsAtStart(exchange, start_timeout_s, self._backoff, logger, redact=redact, sleep=sleep)
        self._assemblers = {s: CandleAssembler(self._tf_ms, None, flags_closes=False) for s in self.symbols}
        self._tap: BinanceKlineTap | None = None
        self._connections: WatchConnections | None = None
        # Per symbol: the websocket client its subscription rides on (when known).
        self._connection: dict[str, Any] = {}
        self._scope: anyio.CancelScope | None = None
        self._stop_requested = False
        self._unflushed: set[str] = set()
        self._progress: dict[str, float] = {}
        self._seen_tail: dict[str, list[Any]] = {}
        self._stale_rows: dict[str, dict[int, list[Any]]] = {}
        self.mode: Literal["stream", "poll"] | None = None
        # The exchange's clock when the start backfill began: every candle before it was closed.
        self.started_at_ms: int | None = None
        self.states: dict[str, FeedState] = {s: "starting" for s in self.symbols}
        self.details: dict[str, dict[str, Any]] = {s: {} for s in self.symbols}
        self.published: dict[str, int] = {s: 0 for s in self.symbols}
        self.last_ts: dict[str, int | None] = {s: None for s in self.symbols}
        self.malformed = 0

    # -- control ----------------------------------------------------------------------------
    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Backfill every symbol, report started, then stream or poll until `stop` (or cancellation)."""
        with anyio.CancelScope() as scope:
            self._scope = scope
            if self._stop_requested:
                scope.cancel()
            await self._markets.load()
            missing = [s for s in self.symbols if s not in self._exchange.markets]
            if missing:
                raise ExchangeSetupError(f"{self._exchange.id} has no market {', '.join(missing)}")
            self.mode = self._choose_mode()
            if self.mode == "stream":
                self._install_taps()
            now = await self._rest.server_ms()
            self.started_at_ms = now
            start = now - now % self._tf_ms  # open time of the forming candle
            until = now - self._tf_ms + 1  # candles opening before this are closed
            for symbol in self.symbols:
                self._set_state(symbol, "backfilling", reason="start")
                first = self._since.get(symbol, start - self._settings.backfill * self._tf_ms)
                await self._fill(symbol, until, first)
            task_status.started()
            async with anyio.create_task_group() as tg:
                for symbol in self.symbols:
                    tg.start_soon(self._stream if self.mode == "stream" else self._poll, symbol)
                tg.start_soon(self._watchdog)
        for symbol in self.symbols:
            self._set_state(symbol, "stopped")

    def stop(self) -> None:
        """Stop streaming and polling; `run` returns."""
        self._stop_requested = True
        if self._scope is not None:
            self._scope.cancel()

    @property
    def start_problem(self) -> str | None:
        """Why the exchange cannot be reached, while the start retries loading its markets (else None)."""
        return self._markets.problem

    def status(self) -> dict[str, Any]:
        """Per symbol: state, its detail, candles published, last open time; plus the mode."""
        return {
            "mode": self.mode,
            "malformed": self.malformed,
            "symbols": {
                s: {"state": self.states[s], "detail": self.details[s], "published": self.published[s], "last_ts": self.last_ts[s]}
                for s in self.symbols
            },
        }

    # -- publishing -----------------------------------------------------------------------------
    def _publish(self, symbol: str, candle: Candle) -> None:
        last = self.last_ts[symbol]
        if last is not None and candle.ts <= last:
            return  # already published (a REST page overlapping the stream): never twice
        self.last_ts[symbol] = candle.ts
        self._assemblers[symbol].published(candle.ts)
        self.published[symbol] += 1
        self._progress[symbol] = self._monotonic()
        self._unflushed.add(symbol)
        self._on_candle(symbol, self.timeframe, candle)
        if self.states[symbol] == "stale":
            self._set_state(symbol, "connected" if self.mode == "stream" else "polling", recovered=True)

    def _flush(self, symbol: str) -> None:
        if symbol in self._unflushed:
            self._unflushed.discard(symbol)
            if self._on_flush is not None:
                self._on_flush(symbol)

    def _set_state(self, symbol: str, state: FeedState, **detail: Any) -> None:
        self.states[symbol] = state
        self.details[symbol] = detail
        self._log.info("feed %s %s: %s%s", symbol, self.timeframe, state, f" {format_fields(detail)}" if detail else "")
        self._on_state(symbol, state, detail)

    def _malformed(self, message: Any, exc: BaseException) -> None:
        self.malformed += 1
        text = repr(message)
        if len(text) > _MAX_LOGGED:
            text = text[:_MAX_LOGGED] + "..."
        self._log.error("skipped a malformed message from %s: %s (%s)", self._exchange.id, self._redact(text), describe(exc, self._redact))

    def _unfiled(self, problem: str) -> None:
        self._log.error("%s: %s", self._exchange.id, self._redact(problem))

    def _rest_retry(self, what: str, reason: str, delay: float) -> None:
        self._log.debug("REST retry: %s: %s (%.2f s)", what, reason, delay)

    def _backoff(self) -> Backoff:
        return Backoff(self._settings.reconnect_min_s, max(self._settings.reconnect_min_s, self._settings.reconnect_max_s), random=self._random)

    # -- REST -----------------------------------------------------------------------------------
    async def _fill(self, symbol: str, until: int, first: int | None = None) -> None:
        """Publish, from REST, every candle after the last published one that opens before `until`."""
        assembler = self._assemblers[symbol]
        since = assembler.next_ts if assembler.next_ts is not None else first
        if since is None:
            return
        if since >= until:
            # Nothing closed to fetch yet (a resume right after its last candle): still, candles
            # from `since` on are the ones expected next, for the catch-ups and the hole checks.
            assembler.filled(since)
            return
        async for page in self._rest.pages(symbol, since, until):
            for candle in page:
                self._publish(symbol, candle)
            self._flush(symbol)
        assembler.filled(until)

    # -- modes ----------------------------------------------------------------------------------
    def _choose_mode(self) -> Literal["stream", "poll"]:
        has_ws = bool(self._exchange.has.get("watchOHLCV")) and hasattr(self._exchange, "watch_ohlcv")
        wanted = self._settings.mode
        if wanted == "stream" and not has_ws:
            raise ExchangeSetupError(f"exchange.feed.mode: {self._exchange.id} has no websocket OHLCV (watchOHLCV); use poll or auto")
        return "stream" if wanted == "stream" or (wanted == "auto" and has_ws) else "poll"

    def _install_taps(self) -> None:
        install_message_guard(self._exchange, self._malformed)
        self._connections = WatchConnections(self._exchange)
        if self._use_close_flag and BinanceKlineTap.supports(self._exchange):
            self._tap = BinanceKlineTap(self._exchange, {self.timeframe: self._tf_ms}, self._malformed, self._unfiled)
            for symbol in self.symbols:
                self._tap.watch(symbol, self.timeframe)
                # With the exchange's own close flag, a candle that ends without it is re-fetched.
                self._assemblers[symbol].flags_closes = True

    async def _watch(self, symbol: str) -> list[Any]:
        try:
            with translated(self._exchange):
                return list(await self._exchange.watch_ohlcv(symbol, self.timeframe))
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # we are being cancelled: never swallow that
            # ccxt cancels its pending futures when a client closes: that is a disconnect.
            raise network_failure("websocket closed while waiting for candles") from None

    async def _stream(self, symbol: str) -> None:
        assembler = self._assemblers[symbol]
        backoff = self._backoff()
        # Whether the current subscription has delivered (its first rows): until then a cut
        # keeps growing the backoff, so a server that drops every new connection is not hammered.
        delivered = False
        # Why the next subscription's catch-up may find candles closed: the start backfill ended
        # at a clock reading taken before this subscription, or the symbol was disconnected.
        subscribing = "subscribed"
        self._progress[symbol] = self._monotonic()
        while True:
            try:
                if delivered:
                    # Updates that arrived while we were busy (a REST fill) resolved no future: take
                    # them before waiting, or they would sit there until the next message.
                    if self._pending(symbol):
                        rows = []
                    elif not self._still_connected(symbol):
                        # Cut while we were busy: no watch call saw it fail, and the next one would
                        # quietly reconnect without the catch-up.
                        raise network_failure("websocket closed while candles were being processed")
                    else:
                        rows = await self._watch(symbol)
                else:
                    rows = await self._subscribe(symbol, subscribing)
                    delivered = True
                    backoff.reset()
                    if self.states[symbol] != "connected":
                        self._set_state(symbol, "connected")
                for candle, closed in self._updates(symbol, rows):
                    for step in assembler.update(candle, closed):
                        if isinstance(step, Publish):
                            self._publish(symbol, step.candle)
                        else:
                            await self._fill_hole(symbol, step)
                self._flush(symbol)
            except Exception as exc:  # noqa: BLE001  a feed reports every failure in its state; a retryable one reconnects
                self._flush(symbol)
                if not isinstance(exc, ExchangeRetryable):
                    self._log.exception("feed %s stopped by an error", symbol)
                    self._set_state(symbol, "failed", error=describe(exc, self._redact))
                    return
                # The forming candle's later updates, maybe its close, went with the connection.
                assembler.disconnected()
                self._cut_rows(symbol)
                delivered = False
                subscribing = "reconnected"
                delay = backoff.next_delay()
                self._set_state(symbol, "reconnecting", error=describe(exc, self._redact), attempt=backoff.attempts, delay_s=round(delay, 3))
                await self._sleep(delay)

    async def _subscribe(self, symbol: str, reason: str) -> list[Any]:
        """Watch the symbol anew and return the first rows; once its websocket is open, catch up over REST first.

        Candles that closed while the symbol had no subscription (after the start backfill's
        clock reading, during a cut, before a stale reconnect) would otherwise be fetched only
        when a later message shows the hole: never, if the stream stays quiet. The symbol is
        reported connected after that catch-up, before any rows arrive: its subscription is on
        its way, and nothing closed is missing.
        """
        watch = asyncio.ensure_future(self._watch(symbol))
        connections = self._connections
        try:
            if connections is not None and await connections.opened(watch):
                self._connection[symbol] = connections.client_of(watch)
                await self._catch_up(symbol, reason)
                if self.states[symbol] != "connected":
                    self._set_state(symbol, "connected")
            rows = await watch
            if connections is not None:
                self._connection[symbol] = connections.client_of(watch)
            return rows
        finally:
            if not watch.done():
                watch.cancel()
            elif not watch.cancelled():
                watch.exception()  # retrieved: raised above, or superseded by the catch-up's own error

    def _still_connected(self, symbol: str) -> bool:
        """Whether the websocket the symbol's subscription rides on is still open (True when unknown)."""
        connection = self._connection.get(symbol)
        return connection is None or self._connections is None or self._connections.is_current(connection)

    async def _catch_up(self, symbol: str, reason: str) -> None:
        """Publish from REST every candle closed now that is not published yet (`reason`: the state's)."""
        until = await self._rest.closed_until()
        next_ts = self._assemblers[symbol].next_ts
        if next_ts is None or next_ts >= until:
            return
        self._set_state(symbol, "backfilling", reason=reason, until=until)
        await self._fill(symbol, until)

    def _cache(self, symbol: str) -> Any:
        # ccxt.pro keeps every symbol's rows in `exchange.ohlcvs[symbol][timeframe]`, updated in place.
        return ((getattr(self._exchange, "ohlcvs", None) or {}).get(symbol) or {}).get(self.timeframe)

    def _pending(self, symbol: str) -> bool:
        """Whether updates arrived that no watch call returned (they resolve no future while we are busy)."""
        if self._tap is not None:
            return self._tap.pending(symbol, self.timeframe) > 0
        cache = self._cache(symbol)
        return bool(cache) and list(cache[-1]) != self._seen_tail.get(symbol)

    def _cut_rows(self, symbol: str) -> None:
        """Remember the cache rows seen before a disconnect: ccxt keeps them, but a partial one is stale now."""
        cache = self._cache(symbol) if self._tap is None else None
        last = self.last_ts[symbol]
        self._stale_rows[symbol] = {row[0]: list(row) for row in (cache or ()) if last is None or row[0] > last}

    def _updates(self, symbol: str, rows: list[Any]) -> list[tuple[Candle, bool | None]]:
        if self._tap is not None:
            return list(self._tap.drain(symbol, self.timeframe))
        cache = self._cache(symbol)
        if cache:
            # Read the cache's tail, not only the rows returned: it also holds what arrived since.
            last = self.last_ts[symbol]
            tail: list[Any] = []
            stale = self._stale_rows.get(symbol, {})
            for row in reversed(cache):
                if last is not None and isinstance(row[0], int) and row[0] <= last:
                    break
                if stale.get(row[0]) != list(row):
                    tail.append(list(row))
            rows = tail[::-1]
            self._seen_tail[symbol] = list(cache[-1])
        updates: list[tuple[Candle, bool | None]] = []
        for row in rows:
            try:
                updates.append((to_candle(row, self._tf_ms), None))
            except BadRow as exc:
                self._malformed(row, exc)
        return updates

    async def _fill_hole(self, symbol: str, step: Fill) -> None:
        self._set_state(symbol, "backfilling", reason=step.reason, until=step.until)
        await self._fill(symbol, step.until)
        self._set_state(symbol, "connected")

    async def _poll(self, symbol: str) -> None:
        settings = self._settings
        interval = settings.poll_interval_s or min(10.0, max(1.0, self._tf_ms / 10_000))
        backoff = self._backoff()
        self._progress[symbol] = self._monotonic()
        self._set_state(symbol, "polling", interval_s=interval)
        while True:
            try:
                await self._fill(symbol, await self._rest.closed_until())
                self._flush(symbol)
                if backoff.attempts:
                    backoff.reset()
                    self._set_state(symbol, "polling", interval_s=interval)
                await self._sleep(interval)
            except Exception as exc:  # noqa: BLE001  a feed reports every failure in its state; a retryable one polls again
                if not isinstance(exc, ExchangeRetryable):
                    self._log.exception("feed %s stopped by an error", symbol)
                    self._set_state(symbol, "failed", error=describe(exc, self._redact))
                    return
                delay = backoff.next_delay()
                self._set_state(symbol, "reconnecting", error=describe(exc, self._redact), attempt=backoff.attempts, delay_s=round(delay, 3))
                await self._sleep(delay)

    async def _watchdog(self) -> None:
        check = min(1.0, self.stale_after_s / 4)
        while True:
            await anyio.sleep(check)
            now = self._monotonic()
            for symbol in self.symbols:
                if self.states[symbol] == "failed":
                    continue
                quiet = now - self._progress.get(symbol, now)
                if quiet > self.stale_after_s:
                    self._progress[symbol] = now  # report again only after another full period
                    self._set_state(symbol, "stale", quiet_s=round(quiet, 3), last_ts=self.last_ts[symbol])
                    if self.mode == "stream":
                        self._reconnect(symbol, f"stale feed: no {symbol} candle for {quiet:.1f} s")

    def _reconnect(self, symbol: str, reason: str) -> None:
        """Drop the websocket `symbol` rides on (every websocket of the exchange when that is not known yet).

        The stream loops of the symbols on it then reconnect and catch up what they missed.
        Symbols of other venues ride other websockets (a pair's spot market and its perpetual,
        say): a quiet one must not cut them, nor make them catch up for nothing.
        """
        connection = self._connection.get(symbol)
        clients = [connection] if connection is not None else list((getattr(self._exchange, "clients", None) or {}).values())
        for client in clients:
            cut(client, reason)
