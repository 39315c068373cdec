"""Keep the cyclic garbage collector's full passes off the candle path of a long-running daemon."""
from __future__ import annotations

import gc

import anyio

from bot.daemon.inbox import CandleWork

# A gen-2 threshold the automatic collector never reaches: FullCollections runs the full passes itself.
_NEVER = 1_000_000_000
# Seconds between two full passes at most as often.
FULL_PASS_EVERY_S = 5.0
# Seconds a due full pass waits for the strategies to be quiet at most: a daemon never quiet (a replay
# played faster than it can, a strategy that cannot keep up) still has its cyclic garbage collected.
FULL_PASS_WAITS_S = 25.0
# The collector's own gen-2 threshold, for a FullCollections started while another had it off.
_DEFAULT_FULL = 10


def settle() -> None:
    """Move every object alive now (config, orchestrators, history) out of the collected generations.

    With a thousand strategies loaded, a full collection walks every indicator, position and
    bound method and pauses the loop for tens of milliseconds at random candles; frozen objects
    are skipped. Freed by reference counting as usual; only their cycles wait for `release`.
    """
    gc.collect()
    gc.freeze()


def release() -> None:
    """After an unload: collect what is no longer referenced, frozen or not, then settle again."""
    gc.unfreeze()
    settle()


class FullCollections:
    """Runs the collector's full passes between candle rounds, not at whatever allocation crosses its threshold.

    Even with the start-up heap frozen, a full pass walks the tens of thousands of objects made
    since (about 0.5 µs each: 15-40 ms with a thousand strategies), and the automatic collector
    starts one from any allocation, often inside a round: with the HTTP server's reads keeping
    thousands of objects alive across their slices it did about once a second (measured: 47 full
    passes in a 35 s run under the bench's HTTP load, 10 without). While `run` runs, the automatic
    collector makes no full pass (the young generations are collected as usual); this task makes
    one when as many younger passes have gone by as would have let the collector consider one, at
    most every `every_s`, right after the strategies have handled a round (or after `waits_s` of
    waiting for that). The thresholds are put back when it ends (the collector's default when it
    started while another had them off: two daemons in one process, as tests run them).
    """

    def __init__(self, work: CandleWork, every_s: float = FULL_PASS_EVERY_S, waits_s: float = FULL_PASS_WAITS_S) -> None:
        self._work = work
        self._every_s = every_s
        self._waits_s = waits_s
        # Full passes made.
        self.passes = 0

    async def run(self) -> None:
        """Make the full passes until cancelled."""
        young, middle, full = gc.get_threshold()
        if full == _NEVER:
            full = _DEFAULT_FULL
        gc.set_threshold(young, middle, _NEVER)
        try:
            while True:
                await anyio.sleep(self._every_s)
                if gc.get_count()[2] < full:
                    continue
                with anyio.move_on_after(self._waits_s):
                    await self._work.wait_quiet()
                gc.collect()
                self.passes += 1
        finally:
            gc.set_threshold(young, middle, full)
