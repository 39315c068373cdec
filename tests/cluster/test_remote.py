"""RemoteMinds' wait for replies: whatever the request ends in stops the run with a LockstepError naming the worker, never a hang."""
from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any

import nats.errors
import pytest

from bot.cluster.lockstep import LockstepError
from bot.cluster.remote import RemoteMinds

# A bound on a hang, far beyond the milliseconds these take.
DEADLINE_S = 30


class FailingLink:
    """A link whose every request has already failed with `error` (what the NATS client raised)."""

    def __init__(self, error: BaseException) -> None:
        self._error = error

    def submit(self, coroutine: Coroutine[Any, Any, bytes]) -> concurrent.futures.Future[bytes]:
        coroutine.close()
        future: concurrent.futures.Future[bytes] = concurrent.futures.Future()
        future.set_exception(self._error)
        return future


def _outcome(error: BaseException) -> BaseException:
    minds = RemoteMinds(FailingLink(error), "w1", "cl.r.turn.w1", lambda: None, timeout_s=1)  # type: ignore[arg-type]
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            minds.send(b"{}").result()
        except BaseException as exc:  # noqa: BLE001  what the wait raised is the outcome
            outcome.append(exc)

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    thread.join(DEADLINE_S)
    assert not thread.is_alive(), "still waiting on a request that has failed"
    return outcome[0]


@pytest.mark.parametrize(
    ("error", "words"),
    [
        # nats' TimeoutError is the builtin one, which concurrent.futures.TimeoutError is too: not "not done yet".
        (nats.errors.TimeoutError(), "worker w1: no answer on cl.r.turn.w1 within 1 s"),
        (nats.errors.NoRespondersError(), "worker w1: nothing listens on cl.r.turn.w1"),
        (nats.errors.MaxPayloadError(), "worker w1: a message too large for the server"),
        (OSError("connection reset"), "worker w1: sending on cl.r.turn.w1 failed: OSError: connection reset"),
    ],
)
def test_a_failed_request_stops_the_run_naming_the_worker(error: BaseException, words: str) -> None:
    outcome = _outcome(error)
    assert isinstance(outcome, LockstepError)
    assert words in str(outcome)


def test_a_worker_that_exited_is_named_with_its_exit_code() -> None:
    never: concurrent.futures.Future[bytes] = concurrent.futures.Future()

    class SilentLink:
        def submit(self, coroutine: Coroutine[Any, Any, bytes]) -> concurrent.futures.Future[bytes]:
            coroutine.close()
            return never

    minds = RemoteMinds(SilentLink(), "w2", "cl.r.turn.w2", lambda: -9)  # type: ignore[arg-type]
    with pytest.raises(LockstepError, match=r"worker w2 exited \(code -9\) before it answered"):
        minds.send(b"{}").result()
    assert never.cancelled()
