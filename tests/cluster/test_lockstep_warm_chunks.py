"""Warm-up history in chunks that fit the transport's message limit, split mid-stream and across streams: still byte for byte as in process."""
from __future__ import annotations

import filecmp
from pathlib import Path

import pytest

from bot.cluster.chunks import CANDLE_BYTES, WARM_OVERHEAD_BYTES
from bot.cluster.local import Answered, LocalMinds
from bot.cluster.lockstep import LockstepRouter
from bot.cluster.messages import Warm, decode
from bot.replay.timerange import TimeRange
from bot.services import BotServices
from bot.strategy.config_load import load_config
from bot.strategy.manager import StreamRouter
from tests.cluster.test_lockstep_equivalence import ONE_DAY, OUTPUTS, _replay
from tests.support import REPO


class Limited:
    """In-process minds behind a transport that takes messages of at most `max_message_bytes`; it records the Warm chunks' sizes."""

    def __init__(self, inner: LocalMinds, max_message_bytes: int) -> None:
        self._inner = inner
        self.max_message_bytes = max_message_bytes
        self.warm_candles: list[int] = []

    def send(self, message: bytes) -> Answered:
        assert len(message) <= self.max_message_bytes, f"a message of {len(message)} bytes over the limit {self.max_message_bytes}"
        decoded = decode(message)
        if isinstance(decoded, Warm):
            self.warm_candles.append(sum(len(h.candles) for h in decoded.history))
        return Answered(self._inner.request(message))


@pytest.mark.parametrize("per_chunk", [1, 7, 333])
def test_warm_chunks_of_any_size_replay_as_in_process(tmp_path: Path, per_chunk: int) -> None:
    config = REPO / "config.replay.json"
    time_range = TimeRange.parse(*ONE_DAY)
    _replay(load_config(config), tmp_path / "in_process", time_range, None)
    loaded = load_config(config)
    workers: list[Limited] = []

    def router(services: BotServices) -> StreamRouter:
        workers.extend(Limited(LocalMinds(loaded.catalog), WARM_OVERHEAD_BYTES + per_chunk * CANDLE_BYTES) for _ in range(3))
        return LockstepRouter(services, list(workers))

    _replay(loaded, tmp_path / "lockstep", time_range, router)
    for name in OUTPUTS:
        assert filecmp.cmp(tmp_path / "in_process" / name, tmp_path / "lockstep" / name, shallow=False), name
    chunks = [n for w in workers for n in w.warm_candles]
    assert max(chunks) == per_chunk  # full chunks of the size the limit allows, never more
