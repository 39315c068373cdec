"""A mind's warm-up history cut into messages a server's payload limit takes."""
from __future__ import annotations

from collections.abc import Iterator, Sequence

from bot.cluster.messages import StreamHistory
from bot.ohlcv import Candle

# Bytes of JSON a candle may take in a Warm message (they take about 75), and room for the rest of the message.
CANDLE_BYTES = 128
WARM_OVERHEAD_BYTES = 4_096


def candles_per_chunk(max_message_bytes: int) -> int:
    """How many candles one Warm message may carry under `max_message_bytes`."""
    return max(1, (max_message_bytes - WARM_OVERHEAD_BYTES) // CANDLE_BYTES)


def history_chunks(history: Sequence[tuple[str, str, Sequence[Candle]]], per_chunk: int) -> Iterator[list[StreamHistory]]:
    """`history` (symbol, timeframe, candles oldest first) at most `per_chunk` candles per message; at least one message (the last warms)."""
    chunk: list[StreamHistory] = []
    size = 0
    for symbol, tf, stream in history:
        candles = [tuple(c) for c in stream]
        for start in range(0, len(candles), per_chunk):
            part = candles[start:start + per_chunk]
            if size + len(part) > per_chunk:
                yield chunk
                chunk, size = [], 0
            chunk.append(StreamHistory(symbol=symbol, tf=tf, candles=part))  # type: ignore[arg-type]
            size += len(part)
    yield chunk
