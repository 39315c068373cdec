"""A mind that cannot be built, or an activation that fails on the way, stops the run with that reason (the first), also with
--from, where history turns come before any decision."""
from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bot.cluster.local import Answered, LocalMinds
from bot.cluster.lockstep import LockstepRouter
from bot.cluster.messages import Activate, Activated, Failure, decode, encode
from bot.replay.runner import ReplayAborted
from bot.replay.timerange import TimeRange
from bot.services import BotServices
from bot.strategy.config_load import load_config
from bot.strategy.manager import StreamRouter
from tests.cluster.test_lockstep_equivalence import ONE_DAY, _replay
from tests.support import REPO


class BrokenMind:
    """A worker whose mind of `sid` cannot be built (its code raises there, not on the hub), or whose send raises `exc`."""

    def __init__(self, inner: LocalMinds, sid: str, exc: Exception | None = None) -> None:
        self._inner, self._sid, self._exc = inner, sid, exc

    max_message_bytes = 1024 * 1024

    def send(self, message: bytes) -> Answered:
        decoded = decode(message)
        if isinstance(decoded, Activate) and decoded.sid == self._sid:
            if self._exc is not None:
                raise self._exc
            return Answered([encode(Activated(sid=self._sid, failure=Failure(type_name="ImportError", message="no module helpers", where="x.py:1"), streams=[]))])
        return Answered(self._inner.request(message))


@pytest.mark.parametrize("exc", [None, OSError("payload too large")], ids=["mind-not-built", "transport-raises"])
def test_a_failed_activation_stops_a_from_replay_with_its_own_reason(tmp_path: Path, exc: Exception | None) -> None:
    loaded = load_config(REPO / "config.replay.json")
    sid = loaded.strategies[0].id

    def router(services: BotServices) -> StreamRouter:
        return LockstepRouter(services, [BrokenMind(LocalMinds(loaded.catalog), sid, exc)])

    with pytest.raises(ReplayAborted):
        _replay(loaded, tmp_path / "out", TimeRange.parse(*ONE_DAY), router)
    error = orjson.loads((tmp_path / "out" / "report.json").read_bytes())["replay"]["error"]
    assert "no warmed mind" not in error, error
    assert ("could not be built" in error) if exc is None else ("payload too large" in error), error
