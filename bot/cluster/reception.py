"""The hub's side of a worker's Hello: its own workers, with its fingerprint, taken in; any other refused with the reasons named."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from nats.aio.msg import Msg as NatsMsg

from bot.cluster.error_lines import ErrorLines
from bot.cluster.fingerprint import differences
from bot.cluster.messages import Fingerprint, Hello, ProtocolError, Welcome, decode, encode


class Reception:
    """Takes in the workers named `names` whose fingerprint matches the hub's; thread-safe to wait on from outside the link's loop."""

    def __init__(self, fingerprint: Fingerprint, names: list[str], logger: logging.Logger, clock: Callable[[], float] = time.monotonic) -> None:
        self._fingerprint = fingerprint
        self._names = names
        self._log = logger
        self._bad_lines = ErrorLines(logger, clock)
        self._changed = threading.Condition()
        self.taken: dict[str, Hello] = {}
        # Its own workers refused, and how many Hellos came from no worker of this run or did not decode.
        self.refused: list[str] = []
        self.strangers = 0

    async def on_hello(self, msg: NatsMsg) -> None:
        """Answer one Hello with a Welcome (a message that is no Hello is refused too: it never crashes the hub)."""
        problems = self._problems(msg)
        if problems:
            self._bad_lines(f"hello:{msg.subject}", f"cluster: refused a worker on {msg.subject}: {'; '.join(problems)}")
        if msg.reply:
            await msg.respond(encode(Welcome(accepted=not problems, problems=problems)))

    def _problems(self, msg: NatsMsg) -> list[str]:
        try:
            hello = decode(msg.data)
        except ProtocolError as exc:
            self.strangers += 1
            return [str(exc)]
        if not isinstance(hello, Hello):
            self.strangers += 1
            return [f"a {type(hello).__name__} where a Hello was due"]
        problems = differences(self._fingerprint, hello.fingerprint)
        with self._changed:
            if hello.worker not in self._names:
                self.strangers += 1
                return [*problems, f"this run has no worker named {hello.worker!r} (it has {self._names})"]
            if hello.worker in self.taken:
                self.strangers += 1
                return [*problems, f"a worker named {hello.worker!r} is already taken in (pid {self.taken[hello.worker].pid})"]
            if problems:
                # One of its own workers that cannot trade as the hub does: the run cannot go on.
                self.refused.append(f"worker {hello.worker} (pid {hello.pid}): {'; '.join(problems)}")
            else:
                self.taken[hello.worker] = hello
            self._changed.notify_all()
        return problems

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for every worker, or for one of them refused; whether every worker is taken in."""
        with self._changed:
            self._changed.wait_for(lambda: len(self.taken) == len(self._names) or bool(self.refused), timeout)
            return len(self.taken) == len(self._names)
