"""Record closed candles from an exchange to CSV files replay can read, resuming where a previous run stopped."""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from bot.candles.model import Candle, timeframe_ms
from bot.config.exchange import ExchangeConfig
from bot.live.candle_csv import CandleCsv, csv_name
from bot.live.ccxt_feed import LiveCandleFeed
from bot.live.exchange import build_exchange


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
    ) -> None:
        self._config = config
        self._symbols = list(dict.fromkeys(symbols))
        self._out = out_dir
        self._log = logger
        self._env = env
        self._since = since_ms
        self._until = until_ms
        self._tf_ms = timeframe_ms(config.feed.timeframe)
        self._files = {s: CandleCsv(out_dir / csv_name(s, config.feed.timeframe)) for s in self._symbols}
        self._done: set[str] = set()
        self._feed: LiveCandleFeed | None = None

    def stop(self) -> None:
        """Stop after the current candle; everything written so far is on disk."""
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

    async def run(self) -> RecordResult:
        """Record until `until`, `stop()` or cancellation; files are flushed and closed in every case."""
        resumed: dict[str, int | None] = {}
        since: dict[str, int] = {}
        for symbol, file in self._files.items():
            last = file.open()
            resumed[symbol] = last
            if last is not None:
                since[symbol] = last + self._tf_ms
                self._log.info("%s: resuming %s after %d", symbol, file.path, last)
            elif self._since is not None:
                since[symbol] = self._since
        exchange, redact = build_exchange(self._config, self._env)
        try:
            self._feed = LiveCandleFeed(
                exchange, self._symbols, self._config.feed, self._on_candle, self._on_state,
                logger=self._log, since=since, redact=redact, on_flush=lambda s: self._files[s].flush(),
            )
            async with anyio.create_task_group() as tg:
                await tg.start(self._feed.run)
                started = self._feed.started_at_ms
                if self._until is not None and started is not None and started >= self._until:
                    # Every candle before `until` was closed at start, so the backfill had them all.
                    self.stop()
        finally:
            for file in self._files.values():
                file.close()
            with anyio.CancelScope(shield=True):
                await exchange.close()
        return RecordResult({s: f.path for s, f in self._files.items()}, {s: f.rows for s, f in self._files.items()}, resumed)
