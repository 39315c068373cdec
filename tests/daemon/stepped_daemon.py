"""`bot run` whose recorded feed publishes only the candles a test asks for.

    python -m tests.daemon.stepped_daemon --ack-fd N --config CONFIG [--candles SYMBOL=PATH ...]

It is `bot run` (bot/cli.py's own argument parser and run function, the same Daemon) with one
difference: the feed's pacer is a StepPacer instead of the clock of `feed.speed`. The backfill
goes in as usual; after that nothing is played until the test says so. The test talks to it
through two pipes (tests/daemon/conftest.py's DaemonProcess does it):

- commands on stdin, one a line: `step N` (N >= 0) publishes the next N candles, waits until
  every strategy has processed them (the daemon's inboxes drained, so the feed position is
  journalled), then acknowledges. `step 0` only waits for that and acknowledges.
- acknowledgements on file descriptor N, one JSON object a line:
  `{"event": "playing", "last_close": T}` once the backfill is in, every strategy is loaded,
  restored and activated, and the daemon is idle (T: the newest backfilled close, or null);
  `{"event": "stepped", "published": n, "last_close": T, "state": S}` for each `step`, where S
  is "playing", or "ended"/"stopped" when the feed ended or was stopped before the n-th
  candle (n then counts those published; T is the newest close published so far);
  `{"event": "error", "error": "..."}` for a line that is not a command.

Everything else is the daemon's: its control socket, SIGTERM (a graceful stop), kill -9 (what a
crash leaves), its log on stderr. stdin closing (the test went away) stops it as SIGTERM does.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

import anyio
import orjson

from bot import cli


class StepPacer:
    """Publishes only the candles a test asks for on `commands`, and acknowledges each step on `acks` once processed."""

    def __init__(self, commands: int, acks: int) -> None:
        self._commands = commands
        self._acks = acks
        self._buffer = b""
        self._processed: Callable[[], Awaitable[None]] | None = None
        self._announced = False
        self._allowed = 0  # candles of the current step still to publish
        self._asked = 0  # candles the current step asked for (0: no step under way)
        self._published = 0  # candles of the current step published so far
        self._last_close: int | None = None

    def begin(self, last_close: int | None, processed: Callable[[], Awaitable[None]]) -> None:
        """Remember the backfill's last close and how to wait for processing."""
        self._last_close = last_close
        self._processed = processed

    async def wait(self, close_ts: int) -> None:
        """Return once a step allows this candle; acknowledge the finished step before reading the next command."""
        if not self._announced:
            # Strategies are activated by the daemon right after the feed reports started: only
            # once every task is idle is the daemon really ready for the first step.
            await anyio.wait_all_tasks_blocked()
            self._announced = True
            self._ack({"event": "playing", "last_close": self._last_close})
        while self._allowed == 0:
            if self._asked:
                await self._acknowledge_step("playing")
            count = await self._next_step()
            if count == 0:
                await self._acknowledge_step("playing")
            else:
                self._allowed = self._asked = count
        self._allowed -= 1
        self._published += 1
        self._last_close = close_ts

    async def finish(self, state: Literal["ended", "stopped"]) -> None:
        """Acknowledge a step cut short by the end of the recording or a stop."""
        if self._asked:
            if state == "ended":
                await self._acknowledge_step(state)
            else:  # stopping: the daemon drains the inboxes itself
                self._ack(self._step_reply(state))

    async def _acknowledge_step(self, state: str) -> None:
        assert self._processed is not None
        await self._processed()
        self._ack(self._step_reply(state))

    def _step_reply(self, state: str) -> dict[str, Any]:
        reply = {"event": "stepped", "published": self._published, "last_close": self._last_close, "state": state}
        self._allowed = self._asked = self._published = 0
        return reply

    async def _next_step(self) -> int:
        """The count of the next `step N` command (bad lines are answered with an error and skipped)."""
        while True:
            line = await self._next_line()
            if line is None:
                # The test is gone: stop as on SIGTERM (the daemon's own signal handling), then
                # wait here until that stop cancels this wait.
                os.kill(os.getpid(), signal.SIGTERM)
                await anyio.sleep_forever()
                raise AssertionError("the stop cancels that wait")
            words = line.split()
            if len(words) == 2 and words[0] == "step" and words[1].isdigit():
                return int(words[1])
            self._ack({"event": "error", "error": f"not a command: {line!r} (expected 'step N')"})

    async def _next_line(self) -> str | None:
        """The next line on `commands` (without its newline), or None at end of file."""
        while b"\n" not in self._buffer:
            await anyio.wait_readable(self._commands)
            try:
                chunk = os.read(self._commands, 4096)
            except BlockingIOError:
                continue
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode(errors="replace").strip()

    def _ack(self, reply: dict[str, Any]) -> None:
        try:
            os.write(self._acks, orjson.dumps(reply) + b"\n")
        except BrokenPipeError:
            pass  # the test is gone; stdin's end of file stops the daemon


def main(argv: Sequence[str] | None = None) -> int:
    """Run `bot run` with the arguments after --ack-fd, its feed stepped through stdin."""
    parser = argparse.ArgumentParser(prog="python -m tests.daemon.stepped_daemon", description="bot run, its recorded feed stepped through stdin")
    parser.add_argument("--ack-fd", type=int, default=1, help="file descriptor the acknowledgements go to (default: stdout)")
    ours, rest = parser.parse_known_args(argv)
    args = cli._parser().parse_args(["run", *rest])
    commands = sys.stdin.fileno()
    os.set_blocking(commands, False)
    return cli._run(args, StepPacer(commands, ours.ack_fd))


if __name__ == "__main__":
    sys.exit(main())
