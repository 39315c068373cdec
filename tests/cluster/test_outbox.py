"""The hub's outbox: a real stepped `bot run` with a cluster section publishes every candle its history takes and every event, once, in order.

A real nats-server per test; kill -9 of the server between steps and a daemon started while it
is down: afterwards the streams hold everything exactly once (retries with the same msg-id).
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from bot.bus import EventBus
from bot.candles.hub import CandleHub
from bot.candles.reader import read_candles
from bot.clock import ReplayClock
from bot.cluster.access import ClusterConnectError
from bot.config.cluster import ClusterConfig
from bot.event_codec import decode_message, encode_message
from bot.events import CandleClosed
from bot.ohlcv import Candle
from tests.cluster.nats_server import NatsServer, unavailable
from tests.control.client import result, wait_for
from tests.daemon.process import DaemonProcess, journal_rows, short_tmp, write_daemon_config
from tests.support import BTC_1M

try:
    import nats
    import nats.js.errors

    from bot.cluster import streams
    from bot.cluster.connection import ClusterConnection, Health
    from bot.cluster.outbox import Outbox
    from bot.cluster.streams import StreamNames, token
except ImportError as missing:
    unavailable(f"nats-py is not installed (bash scripts/setup.sh --cluster): {missing}")

__all__ = ["short_tmp"]

CID = "t1"
NAMES = StreamNames(CID)
BACKFILL = 300
MINUTE = 60_000
DEADLINE_S = 30.0
# The repo's two strategies trade 15m and 5m, and read 1h: the hub derives them from the 1m feed.
TIMEFRAMES = ("1m", "5m", "15m", "1h")


@dataclass(frozen=True, slots=True)
class Stored:
    """One message of a stream as the server holds it."""

    subject: str
    msg_id: str
    data: bytes


def _config(folder: Path, server: NatsServer) -> Path:
    cluster = {"url": server.url, "name": CID, "reconnect_min_s": 0.02, "reconnect_max_s": 0.2}
    return write_daemon_config(folder, cluster=cluster, feed={"speed": 1, "loop": False, "backfill": BACKFILL})


@pytest.fixture
def stepped_hub(short_tmp: Path, nats_server: NatsServer) -> Iterator[tuple[DaemonProcess, NatsServer]]:
    daemon = DaemonProcess(_config(short_tmp, nats_server), stepped=True)
    try:
        daemon.wait_ready()
        yield daemon, nats_server
    finally:
        daemon.stop()


async def stored_in(url: str, stream: str) -> list[Stored]:
    """Every message `stream` holds, in stream order (from a client of its own)."""
    client = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=0)
    try:
        js = client.jetstream(timeout=5)
        try:
            state = (await js.stream_info(stream)).state
        except nats.js.errors.NotFoundError:
            return []  # not created yet
        stored: list[Stored] = []
        for seq in range(state.first_seq, state.last_seq + 1) if state.messages else ():
            msg = await js.get_msg(stream, seq)
            assert msg.subject is not None and msg.data is not None and msg.headers is not None
            stored.append(Stored(msg.subject, msg.headers["Nats-Msg-Id"], msg.data))
        return stored
    finally:
        await client.close()


def read_stream(url: str, stream: str) -> list[Stored]:
    """Every message `stream` holds, in stream order (outside an event loop)."""
    return asyncio.run(asyncio.wait_for(stored_in(url, stream), DEADLINE_S))


def expected_candles(last_close: int) -> list[Stored]:
    """What MD must hold after the feed published up to `last_close`: each candle of every stream the hub keeps, as the hub takes them."""
    taken: list[tuple[str, str, Candle]] = []
    clock = ReplayClock()
    hub = CandleHub(EventBus(clock), 1_000, clock.advance_to, False, on_history=lambda s, tf, c: taken.append((s, tf, c)))
    hub.add_feed("BTC/USD", "1m")
    for timeframe in TIMEFRAMES[1:]:
        hub.require("BTC/USD", timeframe)
    for candle in itertools.takewhile(lambda c: c.ts + MINUTE <= last_close, read_candles(BTC_1M)):
        hub.ingest("BTC/USD", candle)
    return [
        Stored(NAMES.md_subject("paper", s, tf), NAMES.md_msg_id("paper", s, tf, c.ts), msgspec.json.encode(c)) for s, tf, c in taken
    ]


def by_subject(messages: list[Stored]) -> dict[str, list[Stored]]:
    grouped: dict[str, list[Stored]] = {}
    for message in messages:
        grouped.setdefault(message.subject, []).append(message)
    return grouped


def assert_md_holds_exactly(url: str, last_close: int) -> None:
    stored = read_stream(url, NAMES.md)
    expected = expected_candles(last_close)
    assert [m for m, n in Counter(m.msg_id for m in stored).items() if n > 1] == []  # no candle twice
    # Order is kept per subject (a stream's candles in time order); across subjects the hub's order.
    held, wanted = by_subject(stored), by_subject(expected)
    assert {k: len(v) for k, v in held.items()} == {k: len(v) for k, v in wanted.items()}
    assert held == wanted
    assert {m.subject.split(".")[-1] for m in stored} == set(TIMEFRAMES)


def assert_evt_holds_every_event_once_in_seq_order(url: str, folder: Path) -> int:
    """EVT: seq 1..n without gap or repeat, each the codec's wire message under its subject and msg-id, the journal's events among them; n."""
    stored = read_stream(url, NAMES.evt)
    events = [decode_message(m.data) for m in stored]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    runs = {re.fullmatch(rf"{CID}:(\d+):{e.seq}", m.msg_id).group(1) for m, e in zip(stored, events, strict=True)}  # type: ignore[union-attr]
    assert len(runs) == 1  # one daemon start
    for message, event in zip(stored, events, strict=True):
        assert message.data == encode_message(event)
        assert message.subject == f"evt.{CID}.{'_market' if event.strategy_id is None else token(event.strategy_id)}.{event.type}"
    by_seq = {e.seq: e for e in events}
    journalled = [(seq, "strategy_state", ts, sid) for seq, ts, sid in journal_rows(folder, "SELECT seq, ts, strategy_id FROM strategy_states")]
    journalled += journal_rows(folder, "SELECT seq, type, ts, strategy_id FROM strategy_events")
    assert len(journalled) >= 2, "the journal holds no event of the strategies"
    assert [row for row in journalled if (by_seq[row[0]].type, by_seq[row[0]].ts, by_seq[row[0]].strategy_id) != row[1:]] == []
    assert {"candle", "strategy_state"} <= {e.type for e in events}
    return len(events)


def published_at_stop(daemon: DaemonProcess) -> int:
    """What the daemon's outbox said it published, in its last line."""
    lines = re.findall(r"cluster: published (\d+) candles and events \(0 dropped\)", daemon.log.read_text())
    assert len(lines) == 1, daemon.log.read_text()[-3000:]
    return int(lines[0])


def test_md_and_evt_hold_exactly_the_stepped_candles_and_the_events(stepped_hub: tuple[DaemonProcess, NatsServer]) -> None:
    daemon, server = stepped_hub
    last = daemon.step(40).last_close
    assert last is not None
    # Status shows the outbox under `cluster`: connected once what was published is acked.
    cluster = wait_for(lambda: (c := result(daemon.socket, "status")["cluster"])["backlog"] == 0 and c, "an empty outbox in status", DEADLINE_S)
    assert cluster["state"] == "connected" and cluster["published"] > 0
    assert (cluster["dropped_candles"], cluster["dropped_events"], cluster["url"]) == (0, 0, server.url)
    assert daemon.stop() == 0
    assert_md_holds_exactly(server.url, last)
    events = assert_evt_holds_every_event_once_in_seq_order(server.url, daemon.folder)
    assert published_at_stop(daemon) == len(expected_candles(last)) + events


def test_a_server_killed_between_steps_and_restarted_on_its_store_ends_with_everything_once(stepped_hub: tuple[DaemonProcess, NatsServer]) -> None:
    daemon, server = stepped_hub
    daemon.step(10)
    server.kill9()
    daemon.step(15)  # trading goes on while the server is down
    # ... and status says what does not: health degraded, the outbox's reason among the problems, a line in the text.
    down = wait_for(lambda: (r := result(daemon.socket, "status"))["health"] == "degraded" and r, "status degraded while the server is down", DEADLINE_S)
    assert [p for p in down["problems"] if p.startswith("cluster degraded: ")], down["problems"]
    text = subprocess.run([sys.executable, "-m", "bot", "ctl", "--socket", str(daemon.socket), "status"], capture_output=True, text=True, timeout=60, check=False)
    assert text.returncode == 0, text.stderr
    assert re.search(r"^cluster degraded nats://127\.0\.0\.1:\d+: [\d,]+ published, [\d,]+ waiting, dropped 0 candles and 0 events", text.stdout, re.MULTILINE), text.stdout
    server.restart()
    wait_for(lambda: result(daemon.socket, "status")["health"] == "ok", "status ok once the server takes messages again", DEADLINE_S)
    last = daemon.step(10).last_close
    assert last is not None
    assert daemon.stop() == 0  # its outbox publishes what waits as it stops, the server back
    assert_md_holds_exactly(server.url, last)
    events = assert_evt_holds_every_event_once_in_seq_order(server.url, daemon.folder)
    assert published_at_stop(daemon) == len(expected_candles(last)) + events
    assert "cluster: lost " in daemon.log.read_text()


def test_a_daemon_started_while_the_server_is_down_trades_and_catches_up_when_it_comes(short_tmp: Path, nats_server: NatsServer) -> None:
    config = _config(short_tmp, nats_server)
    nats_server.kill9()
    daemon = DaemonProcess(config, stepped=True)
    try:
        daemon.wait_ready()
        last = daemon.step(20).last_close
        assert last is not None
        assert journal_rows(daemon.folder, "SELECT value FROM meta WHERE key = 'feed.last_ts'") == [(str(last),)]  # traded on
        nats_server.restart()
        expected = len(expected_candles(last))
        wait_for(lambda: len(read_stream(nats_server.url, NAMES.md)) == expected, f"{expected} candles in MD", DEADLINE_S)
        assert daemon.stop() == 0
    finally:
        daemon.stop()
    assert_md_holds_exactly(nats_server.url, last)
    events = assert_evt_holds_every_event_once_in_seq_order(nats_server.url, daemon.folder)
    assert published_at_stop(daemon) == expected + events


def test_a_full_outbox_drops_its_oldest_counted_and_says_degraded_without_blocking(nats_server: NatsServer) -> None:
    url = nats_server.url
    nats_server.kill9()  # nothing takes what comes: it waits in the outbox
    connection = ClusterConnection(ClusterConfig.model_validate({"url": url}), Path(), logging.getLogger("t"), label="t", environ={})
    outbox = Outbox(connection, NAMES, "paper", "1", 10, logging.getLogger("t"), capacity=3)
    for n in range(5):
        outbox.candle("BTC/USD", "1m", Candle(n * MINUTE, 1.0, 1.0, 1.0, 1.0, 1.0))
    assert (outbox.backlog, outbox.dropped) == (3, 2)
    health = outbox.health
    assert health.state == "degraded" and health.detail.endswith("3 waiting, 2 dropped"), health


def test_sigterm_while_the_server_is_down_and_the_client_reconnects_stops_cleanly(stepped_hub: tuple[DaemonProcess, NatsServer]) -> None:
    """nats-py's close during a reconnect re-raises the lost socket's reset: the daemon's stop still ends with exit 0 and its "stopped" line."""
    daemon, server = stepped_hub
    daemon.step(5)
    server.kill9()
    daemon.step(5)
    # The outbox retried a publish with the client reconnecting to nothing (what the reset comes from).
    wait_for(lambda: "cluster: candles and events wait for" in daemon.log.read_text(), "the outbox waiting for the server", DEADLINE_S)
    assert daemon.stop() == 0
    log = daemon.log.read_text()
    assert "Traceback" not in log, log[-3000:]
    assert re.search(r"INFO stopped$", log, re.MULTILINE), log[-3000:]
    assert "cluster: stopped with " in log  # what waited was left, and said so


def _outbox(url: str, logger: logging.Logger, run: str = "1", **options: Any) -> Outbox:
    """An outbox on `url` whose connection retries quickly, for the in-process tests; `run` names its events."""
    config = ClusterConfig.model_validate({"url": url, "reconnect_min_s": 0.02, "reconnect_max_s": 0.2})
    return Outbox(ClusterConnection(config, Path(), logger, label="t", environ={}), NAMES, "paper", run, 10, logger, **options)


def _candle(n: int) -> Candle:
    return Candle(n * MINUTE, 1.0, 1.0, 1.0, 1.0, 1.0)


@pytest.mark.asyncio
async def test_an_item_that_makes_no_message_is_dropped_counted_and_logged_and_publishing_goes_on(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A candle whose timeframe is no subject token (any error making the message) does not escape into the daemon's task group."""
    outbox = _outbox(nats_server.url, logging.getLogger("t.outbox"))
    async with asyncio.timeout(DEADLINE_S), anyio.create_task_group() as tg:
        await tg.start(outbox.run)
        outbox.candle("BTC/USD", "1 m", _candle(0))
        outbox.candle("BTC/USD", "1 m", _candle(1))
        outbox.candle("BTC/USD", "1m", _candle(2))
        await outbox.close(DEADLINE_S)
    assert (outbox.published, outbox.dropped, outbox.backlog) == (1, 2, 0)
    # Once a minute: the second drop is counted into the next line.
    dropped = [r.getMessage() for r in caplog.records if "dropped a message" in r.getMessage()]
    assert len(dropped) == 1 and dropped[0].startswith(
        "cluster: dropped a message (1 dropped in all): cannot make a message of the BTC/USD 1 m candle at 0: ValueError: "
    ), dropped
    async with asyncio.timeout(DEADLINE_S):
        stored = await stored_in(nats_server.url, NAMES.md)
    assert [m.msg_id for m in stored] == [NAMES.md_msg_id("paper", "BTC/USD", "1m", 2 * MINUTE)]


@pytest.mark.asyncio
async def test_a_daemon_start_failing_after_the_outbox_started_leaves_its_connection_closed(nats_server: NatsServer) -> None:
    """The task group cancels the outbox's task: the task closes its connection as it ends (no nats-py client left reconnecting)."""
    outbox = _outbox(nats_server.url, logging.getLogger("t.outbox"))
    connection = outbox._connection
    with pytest.raises(ExceptionGroup) as failed:
        async with asyncio.timeout(DEADLINE_S), anyio.create_task_group() as tg:
            await tg.start(outbox.run)
            await connection.wait_for("connected")
            raise RuntimeError("the start failed")
    assert failed.group_contains(RuntimeError)
    assert connection.health.state == "closed"
    with pytest.raises(ClusterConnectError):
        _ = connection.client


class _Scripted:
    """A JetStream context whose publish of a msg-id first raises the errors scripted for it, then publishes; the rest passes through."""

    def __init__(self, js: Any, script: dict[str, list[Exception]]) -> None:
        self._js = js
        self._script = script

    async def publish(self, subject: str, payload: bytes, **options: Any) -> Any:
        errors = self._script.get(options["headers"]["Nats-Msg-Id"])
        if errors:
            raise errors.pop(0)
        return await self._js.publish(subject, payload, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._js, name)


@pytest.mark.asyncio
async def test_a_refusal_for_now_is_retried_and_a_refusal_of_one_message_drops_that_message_only(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """503 (the store full) and 500 are retried with the same msg-id until acked; MaxPayloadError and a 400 drop that message, counted, and publishing goes on."""
    ids = [NAMES.md_msg_id("paper", "BTC/USD", "1m", n * MINUTE) for n in range(4)]
    script: dict[str, list[Exception]] = {
        ids[0]: [nats.js.errors.ServiceUnavailableError(code=503, err_code=10023, description="insufficient resources")] * 3,
        ids[1]: [nats.errors.MaxPayloadError()],
        ids[2]: [nats.js.errors.ServerError(code=500, description="internal"), nats.js.errors.BadRequestError(code=400, err_code=10054, description="message size exceeds maximum allowed")],
    }
    outbox = _outbox(nats_server.url, logging.getLogger("t.outbox"))
    connection = outbox._connection
    jetstream = connection.jetstream
    monkeypatch.setattr(connection, "jetstream", lambda timeout=2.0: _Scripted(jetstream(timeout), script))
    async with asyncio.timeout(DEADLINE_S), anyio.create_task_group() as tg:
        await tg.start(outbox.run)
        for n in range(4):
            outbox.candle("BTC/USD", "1m", _candle(n))
        await outbox.close(DEADLINE_S)
        stored = await stored_in(nats_server.url, NAMES.md)
    assert [m.msg_id for m in stored] == [ids[0], ids[3]]
    assert (outbox.published, outbox.dropped, outbox.backlog, script) == (2, 2, 0, {ids[0]: [], ids[1]: [], ids[2]: []})
    assert "no longer publishing" not in caplog.text
    refused = [r.getMessage() for r in caplog.records if "dropped a message" in r.getMessage()]
    assert refused == [f"cluster: dropped a message (1 dropped in all): the server refused {ids[1]} on {NAMES.md_subject('paper', 'BTC/USD', '1m')}: MaxPayloadError: nats: maximum payload exceeded"]


@pytest.mark.asyncio
async def test_a_restart_after_the_duplicate_window_does_not_store_the_preloaded_candles_again(nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A daemon restarted after the window publishes its preload again: what the subject's last stored candle covers is skipped."""
    window = 1.0
    monkeypatch.setattr(streams, "DUPLICATE_WINDOW_S", window)
    logger = logging.getLogger("t.outbox")
    async with asyncio.timeout(DEADLINE_S):
        for run, candles in (("1", range(10)), ("2", range(5, 15))):
            outbox = _outbox(nats_server.url, logger, run)
            async with anyio.create_task_group() as tg:
                await tg.start(outbox.run)
                for n in candles:
                    outbox.candle("BTC/USD", "1m", _candle(n))
                await outbox.close(DEADLINE_S)
            assert outbox.backlog == 0
            if run == "1":
                # The server's own clock: its duplicate window (patched short) must be over before the restart.
                await asyncio.sleep(window + 0.5)
        stored = await stored_in(nats_server.url, NAMES.md)
    assert [m.msg_id for m in stored] == [NAMES.md_msg_id("paper", "BTC/USD", "1m", n * MINUTE) for n in range(15)]
    assert (outbox.published, outbox.skipped) == (5, 5)


def test_a_flood_of_candles_never_pushes_an_event_out_and_each_queue_counts_its_drops(nats_server: NatsServer) -> None:
    """Candles and events wait in queues of their own: a full candle queue drops candles only."""
    nats_server.kill9()  # nothing takes what comes: it waits in the outbox
    outbox = _outbox(nats_server.url, logging.getLogger("t.outbox"), capacity=3)
    event = CandleClosed(seq=1, ts=0, ts_init=0, symbol="BTC/USD", timeframe="1m", candle=_candle(0))
    outbox.event(event)
    for n in range(10):
        outbox.candle("BTC/USD", "1m", _candle(n))
    assert (outbox.backlog, outbox.dropped_candles, outbox.dropped_events, outbox.dropped) == (4, 7, 0, 7)


@pytest.mark.asyncio
async def test_degraded_for_drops_clears_once_the_outbox_is_empty_and_the_counts_stay(nats_server: NatsServer) -> None:
    """After a full queue's drops, health is degraded until everything waiting is published; the counts stay."""
    outbox = _outbox(nats_server.url, logging.getLogger("t.outbox"), capacity=3)
    for n in range(5):
        outbox.candle("BTC/USD", "1m", _candle(n))
    outbox.event(CandleClosed(seq=1, ts=0, ts_init=0, symbol="BTC/USD", timeframe="1m", candle=_candle(0)))
    assert outbox.health.state == "degraded"
    async with asyncio.timeout(DEADLINE_S), anyio.create_task_group() as tg:
        await tg.start(outbox.run)
        while outbox.backlog:
            await anyio.sleep(0.01)
        assert outbox.health == Health("connected")
        assert (outbox.published, outbox.dropped_candles, outbox.dropped_events) == (4, 2, 0)
        await outbox.close(DEADLINE_S)
