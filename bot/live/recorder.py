"""Record closed candles from an exchange to CSV files replay can read, resuming where a previous run stopped."""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from bot.config.exchange import ExchangeConfig
from bot.errors import BotError
from bot.fmt import format_time
from bot.live.candle_csv import CandleCsv, csv_name
from bot.live.ccxt_feed import LiveCandleFeed
from bot.live.errors import ExchangeRetryable, describe
from bot.live.exchange import build_exchange
from bot.live.markets import ExchangeUnreachable
from bot.ohlcv import Candle, timeframe_ms


class RecordingFailed(BotError):
    """The exchange failed the recording after its start (the files hold every candle written before)."""


@dataclass(slots=True)
class RecordResult:
    """What one recording run wrote."""

    files: dict[str, Path]
    rows: dict[str, int]
    resumed_from: dict[str, int | None] = field(default_factory=dict)


class Recorder:
    """Writes every closed candle of `symbols` to `<out>/<SYMBOL>_<tf>.csv` until `until` (exclusive) or `stop`.

    Each file resumes after its last complete row (else starts at `since`, else at the feed's
    backfill); every REST page and every streamed candle is flushed and fsynced before the next.
    A stop at any time, the start included (markets, backfill), ends the run normally with what
    was written on disk; an exchange that cannot be reached at start raises ExchangeUnreachable,
    a ccxt failure that ends the feed after its start backfill RecordingFailed.
    """

    def __init__(
        self,
        config: ExchangeConfig,
        symbols: Sequence[str],
        out_dir: Path,
        logger: logging.Logger,
        env: Mapping[str, str],
        since_ms: int | None = None,
        until_ms: int | None = None,
        feed_type: type[LiveCandleFeed] = LiveCandleFeed,
    ) -> None:
        self._config = config
        self._symbols = list(dict.fromkeys(symbols))
        self._log = logger
        self._env = env
        self._since = since_ms
        self._until = until_ms
        self._tf_ms = timeframe_ms(config.feed.timeframe)
        self._files = {s: CandleCsv(out_dir / csv_name(s, config.feed.timeframe)) for s in self._symbols}
        self._done: set[str] = set()
        self._feed_type = feed_type
        self._feed: LiveCandleFeed | None = None
        self._stop_requested = False
        # Whether the feed's start backfill is done: a ccxt failure before it means the exchange could not be reached.
        self._started = False

    def stop(self) -> None:
        """Stop after the current candle; everything written so far is on disk."""
        self._stop_requested = True
        if self._feed is not None:
            self._feed.stop()

    def _on_candle(self, symbol: str, timeframe: str, candle: Candle) -> None:
        if self._until is not None and candle.ts >= self._until:
            self._finished(symbol)
            return
        self._files[symbol].append(candle)
        if self._until is not None and candle.ts + self._tf_ms >= self._until:
            self._finished(symbol)

    def _finished(self, symbol: str) -> None:
        self._done.add(symbol)
        if self._done.issuperset(self._symbols):
            self.stop()

    def _on_state(self, symbol: str, state: str, detail: dict[str, Any]) -> None:
        # The feed logs every state change itself; nothing else to do here.
        pass

    def _backfilled(self) -> None:
        self._started = True
        started = self._feed.started_at_ms if self._feed is not None else None
        if self._until is not None and started is not None and started >= self._until:
            # Every candle before `until` was closed at start, so the backfill had them all.
            self.stop()

    async def run(self) -> RecordResult:
        """Record until `until`, `stop()` or cancellation; files are flushed and closed in every case."""
        resumed: dict[str, int | None] = {}
        since: dict[str, int] = {}
        for symbol, file in self._files.items():
            last = file.open()
            resumed[symbol] = last
            if last is not None:
                since[symbol] = last + self._tf_ms
                self._log.info("%s: resuming %s after %s", symbol, file.path, format_time(last))
            elif self._since is not None:
                since[symbol] = self._since
        exchange, redact = build_exchange(self._config, self._env)
        try:
            self._feed = self._feed_type(
                exchange, self._symbols, self._config.feed, self._on_candle, self._on_state,
                logger=self._log, since=since, redact=redact, on_flush=lambda s: self._files[s].flush(),
                start_timeout_s=self._config.start_timeout_s,
            )
            if self._stop_requested:
                self._feed.stop()
            # Awaited here rather than started in a task group: a stop before the backfill is done
            # (a signal, `until` reached inside it) must end the run, not fail a task's start.
            await self._feed.run(task_status=_Backfilled(self._backfilled))
        except* ExchangeRetryable as failed:
            # Raised by the start itself, or by a task of the streaming that follows it (in a group).
            exc: BaseException = failed
            while isinstance(exc, BaseExceptionGroup):
                exc = exc.exceptions[0]
            if self._started:
                raise RecordingFailed(
                    f"recording stopped by an exchange error: {describe(exc, redact)} (the files hold every candle written before it)"
                ) from None
            # A start request other than the markets, still failing after exchange.feed.rest_retries.
            raise ExchangeUnreachable(f"exchange unreachable: {describe(exc, redact)} (still failing after exchange.feed.rest_retries retries)") from None
        finally:
            for file in self._files.values():
                file.close()
            with anyio.CancelScope(shield=True):
                await exchange.close()
        return RecordResult({s: f.path for s, f in self._files.items()}, {s: f.rows for s, f in self._files.items()}, resumed)


class _Backfilled:
    """The task status the feed reports its finished backfill to: calls `hook`."""

    def __init__(self, hook: Callable[[], None]) -> None:
        self._hook = hook

    def started(self, value: object = None) -> None:
        self._hook()
