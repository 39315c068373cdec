"""Candle streams of several symbols merged into one in close-time order, deterministically."""
from __future__ import annotations

import heapq
from collections.abc import Iterator
from itertools import repeat

from bot.candles.sources import CandleSource
from bot.ohlcv import Candle, timeframe_ms


def merged_candles(sources: list[CandleSource]) -> Iterator[tuple[str, Candle]]:
    """All sources' candles in close-time order; ties go in source order, so replay is deterministic."""
    yield from merge_streams([(s.symbol, timeframe_ms(s.timeframe), s.candles()) for s in sources])


def merge_streams(streams: list[tuple[str, int, Iterator[Candle]]]) -> Iterator[tuple[str, Candle]]:
    """(symbol, timeframe ms, candles) streams merged in close-time order; ties go in stream order."""
    if len(streams) == 1:
        # Paired in C: no generator of ours resumed per candle of a one-symbol replay.
        symbol, _, candles = streams[0]
        return zip(repeat(symbol), candles)
    return _merged(streams)


def _merged(streams: list[tuple[str, int, Iterator[Candle]]]) -> Iterator[tuple[str, Candle]]:
    def keyed(index: int, symbol: str, length: int, candles: Iterator[Candle]) -> Iterator[tuple[int, int, str, Candle]]:
        for candle in candles:
            yield candle.ts + length, index, symbol, candle

    for _, _, symbol, candle in heapq.merge(*(keyed(i, *stream) for i, stream in enumerate(streams))):
        yield symbol, candle
