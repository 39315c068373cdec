"""Candle gaps in the daemon log: summarised per symbol, at most a line a minute, each gap of a looped recording once."""
from __future__ import annotations

import itertools
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from bot.candles.reader import read_candles
from bot.config.models import BotConfig
from bot.daemon.event_lines import EventLines, GapLines
from bot.events import CandleGap
from bot.fmt import format_time
from bot.kernel import Seams, build_services
from bot.log import BotLogger
from bot.ohlcv import Candle
from bot.services import BotServices
from tests.daemon.process import DaemonProcess, write_daemon_config
from tests.support import ETH_1M, SHARED_DATA

XMR_1M = SHARED_DATA / "XMR-BTC_1m.csv"
XMR = "XMR/BTC"
MINUTE = 60_000
# Gap line fields: "candle gap(s) symbol=... gaps=N missing=M ... total=T".
_FIELD = re.compile(r'(\w+)=("[^"]*"|\S+)')


class ManualClock:
    """Wall-clock seconds a test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Lines(logging.Handler):
    """Every record a logger emits, as (level, text)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.levelno, record.getMessage()))

    def gap_lines(self) -> list[dict[str, str]]:
        return [fields(text) for _, text in self.records if text.startswith(("candle gap symbol=", "candle gaps symbol="))]


def fields(text: str) -> dict[str, str]:
    return {key: value.strip('"') for key, value in _FIELD.findall(text)}


def gaps_of(line: dict[str, str]) -> int:
    return int(line.get("gaps", "1"))


@pytest.fixture
def lines() -> Iterator[tuple[logging.Logger, Lines]]:
    logger = logging.getLogger("bot.tests.gap_lines")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = Lines()
    logger.addHandler(handler)
    try:
        yield logger, handler
    finally:
        logger.removeHandler(handler)


def play(passes: list[tuple[str, list[Candle]]], subscriber: EventLines) -> BotServices:
    """Publish the candles through a real hub; its candle_gap events go to `subscriber`."""
    services = build_services(BotConfig(), BotLogger.to_stderr(level=60, name="bot.tests.gap_hub"), Seams(isolate_subscribers=False))
    services.bus.subscribe(subscriber, types=(CandleGap,))
    for symbol, candles in passes:
        services.hub.add_feed(symbol, "1m")
        for candle in candles:
            services.hub.ingest(symbol, candle)
    return services


def test_xmr_btc_gaps_are_one_line_then_one_summary_a_minute_later_with_the_counts(lines: tuple[logging.Logger, Lines]) -> None:
    logger, handler = lines
    clock = ManualClock()
    gaps = GapLines(logger, clock)
    xmr = list(read_candles(XMR_1M))
    services = play([(XMR, xmr)], EventLines(logger, gaps))
    assert services.hub.gap_count == 1416  # the file's known holes (shared/data/README.md): 1,878 candles missing
    # The first gap at once; the other 1,415 arrived within the same wall-clock minute: held.
    holes = holes_of(xmr)
    assert handler.records == [
        (logging.WARNING, f'candle gap symbol=XMR/BTC timeframe=1m missing=1 after="{format_time(holes[0][0])}" next="{format_time(holes[0][1])}" total=1')
    ]
    clock.now = 59.999
    gaps.flush_due()
    assert len(handler.records) == 1
    clock.now = 60.0
    gaps.flush_due()
    summary = handler.gap_lines()[1]
    assert summary == {
        "symbol": XMR,
        "timeframe": "1m",
        "gaps": "1415",
        "missing": "1877",
        "since": format_time(holes[1][0]),
        "until": format_time(holes[-1][1]),
        "total": "1416",
    }
    gaps.flush()  # nothing held any more
    gaps.flush_due()
    assert len(handler.records) == 2


def test_a_line_a_minute_at_most_and_no_later_than_the_minute_whether_gaps_arrive_or_time_passes(lines: tuple[logging.Logger, Lines]) -> None:
    logger, handler = lines
    clock = ManualClock()
    gaps = GapLines(logger, clock)
    services = play([(XMR, [])], EventLines(logger, gaps))
    xmr = list(read_candles(XMR_1M))
    logged_at: list[float] = []  # the clock when each line was logged
    half = len(xmr) // 2
    for n, (before, candle) in enumerate(itertools.pairwise(xmr)):
        if candle.ts - before.ts > MINUTE:
            clock.now += 7.0  # a gap every 7 wall-clock seconds
            if n >= half:
                gaps.flush_due()  # the second half: the daemon's timer looks in between, as it does every 10 s
        services.hub.ingest(XMR, candle)
        if len(handler.records) > len(logged_at):
            logged_at.append(clock.now)
    gaps.flush()
    counted = handler.gap_lines()
    assert sum(gaps_of(line) for line in counted) == services.hub.gap_count == 1416
    apart = [later - earlier for earlier, later in itertools.pairwise(logged_at)]
    # Gaps come every 7 s: each line is the first moment a minute after the last allows, never sooner.
    assert len(apart) > 100 and all(60 <= step < 67 for step in apart), apart
    assert len(counted) == len(logged_at) + 1  # and what the last minute held, at the stop


def holes_of(candles: list[Candle]) -> list[tuple[int, int]]:
    """(open time of the candle before, open time of the candle after) of each gap."""
    return [(a.ts, b.ts) for a, b in itertools.pairwise(candles) if b.ts - a.ts > MINUTE]


def test_each_symbol_has_its_own_minute(lines: tuple[logging.Logger, Lines]) -> None:
    logger, handler = lines
    gaps = GapLines(logger, ManualClock())
    play([(XMR, list(read_candles(XMR_1M))), ("ETH/BTC", list(read_candles(ETH_1M)))], EventLines(logger, gaps))
    # XMR/BTC's line does not hold back ETH/BTC's only gap, though both came in the same instant.
    assert [(line["symbol"], line["total"]) for line in handler.gap_lines()] == [(XMR, "1"), ("ETH/BTC", "1")]
    gaps.flush()
    assert [(line["symbol"], line.get("gaps", "1"), line["total"]) for line in handler.gap_lines()] == [(XMR, "1", "1"), ("ETH/BTC", "1", "1"), (XMR, "1415", "1416")]


def test_a_looped_recording_logs_each_of_its_gaps_once(lines: tuple[logging.Logger, Lines]) -> None:
    logger, handler = lines
    clock = ManualClock()
    xmr = list(read_candles(XMR_1M))
    # The recording again, one period later, twice: the same holes, plus the one between passes.
    period = xmr[-1].ts - xmr[0].ts + 2 * MINUTE
    passes = [c._replace(ts=c.ts + k * period) for k in range(3) for c in xmr]
    gaps = GapLines(logger, clock, lambda symbol: period if symbol == XMR else None)
    events = EventLines(logger, gaps)
    services = play([(XMR, passes[: len(xmr)])], events)
    clock.now = 120.0  # a new minute: anything counted now would be logged at once
    for candle in passes[len(xmr):]:
        services.hub.ingest(XMR, candle)
    gaps.flush()
    assert services.hub.gap_count == 3 * 1416 + 2
    counted = handler.gap_lines()
    # Every hole of the file, and the one where the recording starts over, logged once in all.
    assert sum(gaps_of(line) for line in counted) == 1417 and counted[-1]["total"] == "1417"
    assert [text for _, text in handler.records].count("candle gaps of XMR/BTC repeat as the recording loops: each is logged once") == 1


# --- the daemon ----------------------------------------------------------------------------------


def xmr_slice(folder: Path, rows: int) -> tuple[Path, int]:
    """The first `rows` candles of the recorded XMR/BTC file, and how many gaps they hold."""
    lines = XMR_1M.read_text().splitlines()[: rows + 1]
    path = folder / "XMR-BTC_1m.csv"
    path.write_text("\n".join(lines) + "\n")
    stamps = [int(line.split(",")[0]) for line in lines[1:]]
    return path, sum(1 for a, b in itertools.pairwise(stamps) if b - a > MINUTE)


def test_the_daemon_logs_a_looped_recordings_gaps_once_at_most_a_line_a_minute(short_tmp: Path) -> None:
    data, holes = xmr_slice(short_tmp, 600)
    assert holes == 22  # real holes of the recording, as the file has them
    (short_tmp / "xmr.json").write_bytes(
        orjson.dumps({"id": "xmr", "symbol": XMR, "timeframe": "1m", "quantity": 1, "analyzers": [{"type": "ema_cross", "params": {"fast": 3, "slow": 6}}]})
    )
    config = write_daemon_config(
        short_tmp,
        replay={"candles": {XMR: {"path": str(data), "timeframe": "1m"}}},
        feed={"speed": 3000, "loop": True, "backfill": 50},
        strategies=[{"file": "xmr.json"}],
    )
    started = time.monotonic()
    process = DaemonProcess(config, stepped=True)
    try:
        process.wait_ready()
        process.step(3 * 600)  # the rest of the first pass and two more
    finally:
        assert process.stop() == 0
    seconds = time.monotonic() - started
    log = process.log.read_text()
    stamped = [(line.split(" WARNING ")[0], fields(line)) for line in log.splitlines() if re.search(" WARNING candle gaps? symbol=", line)]
    # Each hole of the file once, and the one between two passes once; the last line counts them all.
    assert sum(gaps_of(line) for _, line in stamped) == holes + 1, log[-3000:]
    assert stamped[-1][1]["total"] == str(holes + 1)
    assert log.count("candle gaps of XMR/BTC repeat as the recording loops") == 1
    assert "candle_gap {" not in log
    # The first gap at once, then a line a minute at most (the unit tests above prove the spacing
    # with a clock of their own), and what was held at the stop: however long this run took,
    # never the 23 lines of one per gap.
    assert stamped[0][1]["total"] == "1" and "gaps" not in stamped[0][1]
    assert 2 <= len(stamped) <= 2 + int(seconds // 60), (seconds, log[-3000:])
