"""The recorded feed's pacing seam, and the stepped daemon tests build on: a candle only when the test says."""
from __future__ import annotations

import itertools
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

import anyio
import orjson
import pytest

from bot.candles.sources import CandleSource
from bot.daemon.feed import RecordedFeed
from tests.control.client import result
from tests.daemon.process import DaemonProcess, Step, journal_rows, write_daemon_config
from tests.support import BTC_1M, Rig

MINUTE = 60_000
BACKFILL = 3000  # write_daemon_config's
# A 1m strategy processes every candle the feed publishes.
EVERY_CANDLE = {"id": "every_candle", "timeframe": "1m", "analyzers": [{"type": "ema_cross", "weight": 1.0, "params": {"fast": 5, "slow": 13}}]}


class Gate:
    """A pacer that lets through as many candles as the test allows."""

    def __init__(self) -> None:
        self._allowed = 0
        self._more: anyio.Event | None = None
        self.begun: int | None = None
        self.asked: list[int] = []
        self.finished: str | None = None

    def allow(self, candles: int) -> None:
        self._allowed += candles
        if self._more is not None:
            self._more.set()

    def begin(self, last_close: int | None, processed: Callable[[], Awaitable[None]]) -> None:
        self.begun = last_close

    async def wait(self, close_ts: int) -> None:
        self.asked.append(close_ts)
        while self._allowed == 0:
            self._more = anyio.Event()
            await self._more.wait()
        self._allowed -= 1

    async def finish(self, state: Literal["ended", "stopped"]) -> None:
        self.finished = state


def test_the_recorded_feed_publishes_only_what_its_pacer_lets_through_and_a_stop_cuts_the_wait() -> None:
    rig = Rig()
    states: list[str] = []
    gate = Gate()
    feed = RecordedFeed(
        [CandleSource("BTC/USD", BTC_1M, "1m")], rig.services.hub, 1.0, False, 10, lambda state, info: states.append(state), pacer=gate
    )

    async def main() -> None:
        with anyio.fail_after(10):
            await play()

    async def play() -> None:
        async with anyio.create_task_group() as tg:
            await tg.start(feed.run)
            await anyio.wait_all_tasks_blocked()
            assert feed.published == 10 and gate.begun == rig.services.hub.history("BTC/USD", "1m")[-1].ts + MINUTE
            assert len(gate.asked) == 1  # waiting for the first candle after the backfill
            gate.allow(3)
            await anyio.wait_all_tasks_blocked()
            assert feed.published == 13 and feed.last_close == gate.asked[2]
            assert gate.asked == [gate.begun + n * MINUTE for n in (1, 2, 3, 4)]  # in close-time order, one at a time
            feed.stop()  # while the pacer waits for a fourth candle it is never allowed
        assert feed.published == 13 and gate.finished == "stopped"

    anyio.run(main)
    assert states == ["backfilling", "playing", "stopped"]


def test_the_default_pacer_publishes_no_candle_before_its_scaled_close_time() -> None:
    rig = Rig()
    speed = 6000.0  # a 1m candle every 10 ms
    played: list[tuple[float, int]] = []
    feed = RecordedFeed(
        [CandleSource("BTC/USD", BTC_1M, "1m")], rig.services.hub, speed, False, 10, lambda state, info: None,
        on_published=lambda close_ts: played.append((anyio.current_time(), close_ts)),
    )

    async def main() -> float:
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                before = anyio.current_time()  # the pacer's clock starts after this, at the end of the backfill
                await tg.start(feed.run)
                while len(played) < 30:
                    await anyio.sleep(0.01)
                feed.stop()
        return before

    before = anyio.run(main)
    backfilled = rig.services.hub.history("BTC/USD", "1m")[9].ts + MINUTE
    for when, close_ts in played:
        # Load can only make a candle late; 1 ms for the event loop's timer granularity.
        assert when - before >= (close_ts - backfilled) / 1000 / speed - 0.001, (when - before, close_ts - backfilled)
    assert [close for _, close in played[:30]] == [backfilled + n * MINUTE for n in range(1, 31)]


def _feed_position(folder: Path) -> list[tuple[str]]:
    """The feed position the daemon journalled."""
    return [(str(value),) for (value,) in journal_rows(folder, "SELECT value FROM meta WHERE key = 'feed.last_ts'")]


def _load_every_candle(daemon: DaemonProcess) -> None:
    spec = orjson.loads((daemon.folder / "strategies" / "ema_cross.json").read_bytes())
    (daemon.folder / "strategies" / "every_candle.json").write_bytes(orjson.dumps({**spec, **EVERY_CANDLE}))
    assert result(daemon.socket, "load", {"file": "strategies/every_candle.json", "activate": True})["state"] == "active"


def test_a_stepped_daemon_plays_exactly_the_candles_asked_for_and_each_step_is_processed(stepped: DaemonProcess) -> None:
    ready = stepped.last_close
    assert ready is not None
    status = result(stepped.socket, "status")
    assert (status["feed"]["state"], status["feed"]["candles"], status["clock_ts"]) == ("playing", BACKFILL, ready)
    assert all(s["state"] == "active" for s in status["strategies"].values())  # restored and activated before the first step
    _load_every_candle(stepped)

    step = stepped.step(7)
    assert (step.published, step.last_close, step.state) == (7, ready + 7 * MINUTE, "playing")
    status = result(stepped.socket, "status")
    assert (status["feed"]["candles"], status["clock_ts"]) == (BACKFILL + 7, step.last_close)
    # Returned once processed: every candle reached the 1m strategy, and the position is journalled.
    assert result(stepped.socket, "metrics")["strategies"]["every_candle"]["candles"] == 7
    assert _feed_position(stepped.folder) == [(str(step.last_close),)]

    assert stepped.step(0) == Step(0, step.last_close, "playing")  # a barrier: nothing published
    assert result(stepped.socket, "status")["feed"]["candles"] == BACKFILL + 7
    strategies = stepped.step_until(lambda: _processed_at_least(stepped.socket, 20), "20 candles processed", candles=4)
    assert strategies["every_candle"]["candles"] == 23  # 7, then 4 at a time up to the first count past 20
    assert stepped.stop() == 0


def _processed_at_least(socket: Path, count: int) -> dict[str, Any] | None:
    strategies: dict[str, Any] = result(socket, "metrics")["strategies"]
    return strategies if strategies["every_candle"]["candles"] >= count else None


def test_a_stepped_daemon_killed_resumes_exactly_after_its_last_step_and_stands_still_unstepped(short_tmp: Path) -> None:
    config = write_daemon_config(short_tmp, feed={"speed": 1, "loop": True, "backfill": 500})
    first = DaemonProcess(config, stepped=True)
    try:
        first.wait_ready()
        last = first.step(25).last_close
        assert first.kill() == -signal.SIGKILL
    finally:
        first.stop()
    second = DaemonProcess(config, stepped=True)
    try:
        second.wait_ready()
        assert second.last_close == last
        status = result(second.socket, "status")
        assert (status["feed"]["candles"], status["clock_ts"]) == (500, last)
        assert last is not None
        assert second.step(1).last_close == last + MINUTE  # the candle after the last one processed
    finally:
        assert second.stop() == 0


def test_a_stepped_daemon_stops_cleanly_when_its_test_goes_away(stepped: DaemonProcess) -> None:
    assert stepped.proc.stdin is not None
    stepped.proc.stdin.close()  # end of file: what the daemon sees when the test process dies
    assert stepped.proc.wait(20) == 0
    assert not stepped.socket.exists() and "received SIGTERM" in stepped.log.read_text()


def test_a_step_past_the_end_of_the_recording_says_how_far_it_got(short_tmp: Path) -> None:
    short = short_tmp / "short_1m.csv"
    with BTC_1M.open() as recording:
        short.write_text("".join(itertools.islice(recording, 31)))  # the header and 30 candles
    config = write_daemon_config(
        short_tmp, replay={"candles": {"BTC/USD": {"path": str(short), "timeframe": "1m"}}}, feed={"speed": 1, "loop": False, "backfill": 20}
    )
    daemon = DaemonProcess(config, stepped=True)
    try:
        daemon.wait_ready()
        assert daemon.step(4).published == 4
        with pytest.raises(AssertionError, match="the feed ended after 6 of 8 candles"):
            daemon.step(8)
        assert result(daemon.socket, "status")["feed"] == {"source": "recorded", "state": "ended", "candles": 30}
        with pytest.raises(AssertionError, match="cannot step: the feed has ended"):
            daemon.step(1)
    finally:
        assert daemon.stop() == 0
