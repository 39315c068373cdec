"""A worker that answers what no mind of it should (another strategy's event, an event a mind does not send, two decisions,
a decision for a strategy it was not asked about, none) stops the run with the reason: it is not the strategy's failure."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from bot.cluster.local import Answered, LocalMinds
from bot.cluster.lockstep import LockstepRouter
from bot.cluster.messages import Decision, Turn, decode, encode
from bot.event_codec import decode_message, encode_message
from bot.events import ActionFailed, KillSwitch
from bot.replay.runner import ReplayAborted
from bot.replay.timerange import TimeRange
from bot.services import BotServices
from bot.strategy.config_load import load_config
from bot.strategy.manager import StreamRouter
from tests.cluster.test_lockstep_equivalence import ONE_DAY, _replay
from tests.support import REPO

Tamper = Callable[[list[Decision]], list[Decision]]


class Tampering:
    """A worker's minds whose first decision carrying events is tampered with (or, with `always`, the first turn's)."""

    def __init__(self, inner: LocalMinds, tamper: Tamper, always: bool = False) -> None:
        self._inner = inner
        self._tamper = tamper
        self._always = always
        self.done = False

    def request(self, message: bytes) -> list[bytes]:
        replies = self._inner.request(message)
        if self.done or not isinstance(decode(message), Turn):
            return replies
        decisions = [d for d in map(decode, replies) if isinstance(d, Decision)]
        if not decisions or not (self._always or any(d.events for d in decisions)):
            return replies
        self.done = True
        return [encode(d) for d in self._tamper(decisions)]

    max_message_bytes = 1024 * 1024

    def send(self, message: bytes) -> Answered:
        return Answered(self.request(message))


def _with_events(decisions: list[Decision], change: Callable[[bytes], bytes]) -> list[Decision]:
    out = []
    for decision in decisions:
        if decision.events:
            raw = change(bytes(decision.events[0]))
            decision = msgspec.structs.replace(decision, events=[msgspec.Raw(raw), *decision.events[1:]])
        out.append(decision)
    return out


def _foreign(raw: bytes) -> bytes:
    return encode_message(msgspec.structs.replace(decode_message(raw), strategy_id="someone_else"))


def _not_a_signal(raw: bytes) -> bytes:
    signal = decode_message(raw)
    return encode_message(KillSwitch(signal.seq, signal.ts, signal.ts_init, 1.0, 1.0, "USD", "a worker"))


def _foreign_action_failed(raw: bytes) -> bytes:
    signal = decode_message(raw)
    return encode_message(ActionFailed(signal.seq, signal.ts, signal.ts_init, "someone_else", "open_position", "no"))


CASES: dict[str, tuple[Tamper, bool, str]] = {
    "a foreign signal": (lambda ds: _with_events(ds, _foreign), False, "its mind sent a signal event of 'someone_else'"),
    "a foreign action_failed": (lambda ds: _with_events(ds, _foreign_action_failed), False, "sent a action_failed event of 'someone_else'"),
    "an event that is not a strategy's": (lambda ds: _with_events(ds, _not_a_signal), False, "sent a kill_switch event"),
    "a duplicate decision": (lambda ds: [*ds, ds[0]], True, "two decisions for"),
    "a decision not asked for": (lambda ds: [*ds, msgspec.structs.replace(ds[0], sid="stranger")], True, "a decision for 'stranger', not asked"),
    "a missing decision": (lambda ds: ds[1:], True, "no decision for"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_misbehaving_worker_stops_the_run(tmp_path: Path, case: str) -> None:
    tamper, always, reason = CASES[case]
    loaded = load_config(REPO / "config.replay.json")
    workers: list[Tampering] = []

    def router(services: BotServices) -> StreamRouter:
        workers.append(Tampering(LocalMinds(loaded.catalog), tamper, always))
        return LockstepRouter(services, [LocalMinds(loaded.catalog), workers[0]])

    # The run ends as aborted, its report naming the worker's fault.
    with pytest.raises(ReplayAborted, match=reason):
        _replay(loaded, tmp_path / "lockstep", TimeRange.parse(*ONE_DAY), router)
    assert workers[0].done
