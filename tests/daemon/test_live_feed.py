"""`bot run` on live candles (feed.source ccxt) from the fake Binance on 127.0.0.1, paper execution.

A real daemon process streams from a FakeBinance this test drives: backfill and warm-up, a streamed
candle reaching the strategy, a websocket cut healed in order, a restart's downtime reported as a
gap, an unknown symbol stopping the daemon, and configs `bot validate` refuses.
"""
from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from bot.candles.reader import read_candles
from bot.control.client import ControlClient
from bot.errors import ConfigError
from bot.journal import Journal
from bot.ohlcv import Candle
from bot.strategy.config_load import load_config
from tests.daemon.process import DaemonProcess
from tests.fake_exchange import FakeBinance
from tests.support import ETH_1M, REPO

ETH = "ETH/BTC"
START = 1200  # the fake's clock starts at the open of this candle
BACKFILL = 120
TF_MS = 60_000

STRATEGY: dict[str, Any] = {
    "id": "eth_ema",
    "symbol": ETH,
    "timeframe": "1m",
    "quantity": 1.0,
    "starting_balance": 10.0,
    "analyzers": [{"type": "ema_cross", "params": {"fast": 3, "slow": 8}}],
}


@pytest.fixture(scope="module")
def eth() -> list[Candle]:
    """The ETH/BTC 1m candles the fake serves, as replay reads them."""
    return list(read_candles(ETH_1M))


def write_live_config(folder: Path, exchange: dict[str, Any] | None, symbols: list[str] | None = None, **feed: Any) -> Path:
    """config.json streaming `symbols` (ETH/BTC) from `exchange` (a FakeBinance's section), one ETH strategy."""
    (folder / "strategies").mkdir(exist_ok=True)
    (folder / "strategies" / "eth.json").write_bytes(orjson.dumps(STRATEGY))
    config: dict[str, Any] = {
        "mode": "paper",
        "feed": {"source": "ccxt"},
        "control": {"socket": "bot.sock"},
        "journal": {"path": "journal.sqlite"},
        "strategies": [{"file": "strategies/eth.json"}],
    }
    if exchange is not None:
        settings = {"symbols": symbols or [ETH], "timeframe": "1m", "backfill": BACKFILL, "reconnect_min_s": 0.05, "reconnect_max_s": 0.2, **feed}
        config["exchange"] = {**exchange, "feed": settings}
    path = folder / "config.json"
    path.write_bytes(orjson.dumps(config, option=orjson.OPT_INDENT_2))
    return path


async def until(probe: Callable[[], Any], what: str, timeout: float = 5.0) -> Any:
    """Await `probe()` (sync or async) until it returns something truthy; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if hasattr(value, "__await__"):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await anyio.sleep(0.02)


class Live:
    """A `bot run` child process on a live config, with async access to its control socket and events."""

    def __init__(self, process: DaemonProcess) -> None:
        self.process = process
        self.events: list[dict[str, Any]] = []

    async def reply(self, cmd: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        async with ControlClient(self.process.socket) as client:
            return await client.call(cmd, args)

    async def call(self, cmd: str, args: dict[str, Any] | None = None) -> Any:
        reply = await self.reply(cmd, args)
        assert reply["ok"], reply
        return reply["result"]

    async def status(self) -> dict[str, Any]:
        status: dict[str, Any] = await self.call("status")
        return status

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == type_]

    def candles(self) -> list[Candle]:
        return [Candle(*e["payload"]["candle"]) for e in self.of_type("candle") if e["payload"]["timeframe"] == "1m"]

    def feed_states(self, symbol: str = ETH) -> list[str]:
        return [e["payload"]["state"] for e in self.of_type("feed_state") if e["payload"].get("symbol") == symbol]

    async def _read_events(self, ready: anyio.Event) -> None:
        async with ControlClient(self.process.socket) as client:
            async for message in client.events({"types": ["candle", "feed_state"]}):
                if "event" in message:
                    self.events.append(message["event"])
                else:
                    assert message["ok"], message
                    ready.set()

    def log(self) -> str:
        return self.process.log.read_text()


@asynccontextmanager
async def live_daemon(config: Path) -> AsyncIterator[Live]:
    """Start `bot run`, wait until it plays (backfill done) and an `events` reader is attached; stop it after."""
    process = DaemonProcess(config)
    live = Live(process)
    try:
        with anyio.fail_after(20):
            # Blocking waits go to a thread: the fake exchange answers from this event loop.
            await anyio.to_thread.run_sync(process.wait_ready)
            async with anyio.create_task_group() as tg:
                ready = anyio.Event()
                tg.start_soon(live._read_events, ready)
                await ready.wait()
                yield live
                tg.cancel_scope.cancel()
    finally:
        await anyio.to_thread.run_sync(process.stop)


@pytest.mark.asyncio
async def test_backfill_warms_the_strategy_and_streamed_candles_reach_it(short_tmp: Path, eth: list[Candle]) -> None:
    async with FakeBinance({ETH: ETH_1M}, start=START) as fake:
        async with live_daemon(write_live_config(short_tmp, fake.exchange_config())) as live:
            await fake.wait_subscribed()
            await until(_connected(live), "the feed connected (its start catch-up done)")
            status = await until(live.status, "status")
            feed = status["feed"]
            assert (feed["source"], feed["state"], feed["mode"], feed["timeframe"]) == ("ccxt", "playing", "stream", "1m")
            symbol = feed["symbols"][ETH]
            assert symbol["published"] == BACKFILL  # the backfill: the candles before the fake's now
            assert symbol["last_ts"] == eth[START - 1].ts
            strategy = status["strategies"]["eth_ema"]
            assert (strategy["state"], strategy["warm"]) == ("active", True)  # warm before any live candle
            assert status["health"] == "ok", status["problems"]
            # Event time is the wall clock in live mode, not the 2022 candles' clock.
            assert abs(status["clock_ts"] - time.time() * 1000) < 60_000

            await fake.stream(5)
            await until(lambda: len(live.candles()) >= 5, "5 streamed candles on the events stream")
            assert live.candles() == eth[START:START + 5]  # exactly the recorded candles, in order
            after = await until(_processed(live, 5), "the strategy to process 5 live candles")
            figures = await live.call("metrics")
            assert figures["strategies"]["eth_ema"]["candles"] >= 5
            feed = after["feed"]
            assert feed["symbols"][ETH]["state"] == "connected"
            # The reader attached after the backfill, maybe after the websocket opened too: the log has every state.
            assert _logged_states(live) == ["backfilling", "connected"] and set(live.feed_states()) <= {"connected"}
            assert feed["candles"] == BACKFILL + 5 and feed["symbols"][ETH]["published"] == BACKFILL + 5
            assert feed["symbols"][ETH]["last_ts"] == eth[START + 4].ts
            assert feed["malformed"] == 0
            refused = await live.reply("add-symbol", {"symbol": "XMR/BTC", "file": "x.csv"})
            assert refused["error"]["code"] == "invalid_state" and "needs the recorded feed" in refused["error"]["message"]
        assert live.process.proc.returncode == 0
    log = live.log()
    assert "stopped" in log and "Traceback" not in log


def _processed(live: Live, count: int) -> Callable[[], Any]:
    async def probe() -> dict[str, Any] | None:
        metrics = await live.call("metrics")
        return await live.status() if metrics["strategies"]["eth_ema"]["candles"] >= count else None

    return probe


@pytest.mark.asyncio
async def test_a_websocket_cut_reconnects_and_the_missing_candles_arrive_in_order(short_tmp: Path, eth: list[Candle]) -> None:
    async with FakeBinance({ETH: ETH_1M}, start=START) as fake, live_daemon(write_live_config(short_tmp, fake.exchange_config())) as live:
        await fake.wait_subscribed()
        await until(_connected(live), "the feed connected (its start catch-up done)")
        fake.faults.disconnect[START + 3] = 1  # after the first of that candle's three pushes
        await fake.stream(8)  # pushed while nobody listens: lost to the stream, still on REST
        await fake.wait_subscribed(2)
        await fake.stream(4)
        await until(lambda: live.candles() and live.candles()[-1].ts >= eth[START + 11].ts, "the candles after the cut")
        assert live.candles() == eth[START:START + 12]  # each once, in order, the hole filled over REST
        states = live.feed_states()
        cut = states.index("reconnecting")
        logged = _logged_states(live)
        assert logged[:logged.index("reconnecting")] == ["backfilling", "connected"] and set(states[:cut]) <= {"connected"}
        assert "backfilling" in states[cut:] and states[-1] == "connected"
        reconnect = next(e["payload"] for e in live.of_type("feed_state") if e["payload"]["state"] == "reconnecting")
        assert reconnect["symbol"] == ETH and reconnect["attempt"] == 1 and "error" in reconnect
        assert all(e["strategy_id"] is None for e in live.of_type("feed_state"))  # market-wide

        # A feed that cannot get back in shows in the daemon's health, and recovers.
        fake.faults.reject_ws = 1_000_000
        await fake.ws.disconnect_all()
        degraded = await until(_health(live, "degraded"), "health degraded while reconnecting")
        assert any(p.startswith(f"feed {ETH} reconnecting") for p in degraded["problems"]), degraded["problems"]
        assert degraded["feed"]["symbols"][ETH]["state"] == "reconnecting"
        fake.faults.reject_ws = 0
        await fake.wait_subscribed(3)
        await fake.stream(2)
        healthy = await until(_health(live, "ok"), "health ok after reconnecting")
        # backfilling: the REST catch-up right after the reconnect may still be fetching what closed meanwhile
        assert healthy["feed"]["symbols"][ETH]["state"] in ("backfilling", "connected")
        await until(lambda: live.candles()[-1].ts >= eth[START + 13].ts, "candles after the second cut")
        assert live.candles() == eth[START:START + 14]


@pytest.mark.asyncio
async def test_a_restart_reports_the_downtime_as_a_gap_and_trades_on(short_tmp: Path, eth: list[Candle]) -> None:
    async with FakeBinance({ETH: ETH_1M}, start=START) as fake:
        config = write_live_config(short_tmp, fake.exchange_config())
        async with live_daemon(config) as live:
            await fake.wait_subscribed()
            await fake.stream(3)
            await until(_processed(live, 3), "3 live candles processed")
        with Journal(short_tmp / "journal.sqlite") as journal:
            assert journal.get_meta("feed.last_ts") == str(eth[START + 3].ts)  # the close of the last one processed
        await fake.stream(10)  # the market moves on while the daemon is down

        async with live_daemon(config) as live:
            status = await live.status()
            missed = {"after": eth[START + 3].ts, "until": eth[START + 13].ts, "missed": {ETH: 10}}
            assert status["feed"]["downtime"] == missed
            assert "downtime gap: 10 ETH/BTC candles closed after" in live.log()
            # Everything up to now was warm-up: the usual backfill before now, nothing traded on it.
            assert status["feed"]["symbols"][ETH]["published"] == BACKFILL
            assert status["feed"]["symbols"][ETH]["last_ts"] == eth[START + 12].ts
            assert (status["strategies"]["eth_ema"]["state"], status["strategies"]["eth_ema"]["warm"]) == ("active", True)
            assert (await live.call("metrics"))["strategies"]["eth_ema"]["candles"] == 0
            await fake.wait_subscribed(2)
            await fake.stream(2)
            await until(_processed(live, 2), "the first live candles after the restart traded on")
            assert live.candles() == eth[START + 13:START + 15]
        assert live.process.proc.returncode == 0
        with Journal(short_tmp / "journal.sqlite") as journal:
            assert journal.get_meta("feed.last_ts") == str(eth[START + 15].ts)


@pytest.mark.asyncio
async def test_an_unknown_symbol_stops_the_daemon_with_a_message_naming_it(short_tmp: Path) -> None:
    async with FakeBinance({ETH: ETH_1M}, start=START) as fake:
        process = DaemonProcess(write_live_config(short_tmp, fake.exchange_config(), symbols=[ETH, "NOPE/BTC"]))
        try:
            code = await anyio.to_thread.run_sync(process.proc.wait, 20)
        finally:
            await anyio.to_thread.run_sync(process.stop)
    log = process.log.read_text()
    assert code == 2, log
    assert "error: live feed did not start: binance has no market NOPE/BTC" in log
    assert "Traceback" not in log
    assert not process.socket.exists()


@pytest.mark.asyncio
@pytest.mark.parametrize("fault", ["while trading", "at start"])
async def test_a_fatal_feed_error_stops_an_in_process_daemon_and_closes_the_exchange(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fault: str
) -> None:
    import ccxt

    from bot.daemon.live_feed import LiveFeedError
    from bot.kernel.daemon import EXIT_FEED_FAILED, Daemon
    from bot.live import exchange as exchange_module
    from bot.log import BotLogger

    real_build = exchange_module.build_exchange
    built: list[Any] = []

    def build(config: Any, env: Any, streaming: bool = True) -> Any:
        exchange, redact = real_build(config, env, streaming)

        async def delisted(symbol: str, timeframe: str, *args: Any, **kwargs: Any) -> Any:
            raise ccxt.BadSymbol(f"binance {symbol} is delisted")  # not worth retrying

        exchange.watch_ohlcv = delisted
        built.append(exchange)
        return exchange, redact

    monkeypatch.setattr(exchange_module, "build_exchange", build)
    symbols = [ETH] if fault == "while trading" else [ETH, "NOPE/BTC"]
    async with FakeBinance({ETH: ETH_1M}, start=START) as fake:
        loaded = load_config(write_live_config(short_tmp, fake.exchange_config(), symbols=symbols))
        daemon = Daemon(loaded, [], BotLogger.to_stderr(name=f"bot.tests.live.{fault.replace(' ', '_')}"))
        with anyio.fail_after(10):
            if fault == "while trading":
                assert await daemon.run() == EXIT_FEED_FAILED
            else:
                with pytest.raises(BaseExceptionGroup) as group:
                    await daemon.run()
                assert group.group_contains(LiveFeedError, match="binance has no market NOPE/BTC")
    assert built and built[0].closed_by_user  # `await exchange.close()` ran on this stop path
    assert not daemon.socket_path.exists()
    if fault == "while trading":
        err = capsys.readouterr().err
        assert "live feed failed: ETH/BTC: BadSymbol: binance ETH/BTC is delisted: stopping the daemon" in err
        assert "stopped: live feed failed" in err


def test_validate_refuses_a_ccxt_feed_without_an_exchange_section(short_tmp: Path) -> None:
    config = write_live_config(short_tmp, None)
    run = subprocess.run([sys.executable, "-m", "bot", "validate", "--config", str(config)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 2, run
    assert f"{config}: exchange: required when feed.source is 'ccxt'" in " ".join(run.stderr.split())


def test_load_names_the_strategy_file_whose_symbols_are_not_streamed(short_tmp: Path) -> None:
    exchange = {"id": "binance"}
    config = write_live_config(short_tmp, exchange, symbols=["BTC/USDT"])
    with pytest.raises(ConfigError) as refused:
        load_config(config)
    [problem] = refused.value.problems
    assert (problem.file, problem.field) == (str(short_tmp / "strategies" / "eth.json"), "symbol")
    assert "'ETH/BTC' is not streamed: add it to exchange.feed.symbols" in problem.reason

    # A pairs strategy also reads its second symbol: that one must be streamed too.
    pairs = {"id": "pairs", "module": "pairs_arbitrage", "symbol": ETH, "timeframe": "5m", "quantity": 1.0,
             "risk": {"max_open_positions": 2}, "params": {"second_symbol": "XMR/BTC"}}
    (short_tmp / "strategies" / "pairs_arbitrage.py").write_bytes((REPO / "strategies" / "pairs_arbitrage.py").read_bytes())
    (short_tmp / "strategies" / "pairs.json").write_bytes(orjson.dumps(pairs))
    data = orjson.loads(config.read_bytes())
    data["exchange"]["feed"]["symbols"] = [ETH]
    data["strategies"] = [{"file": "strategies/pairs.json"}]
    config.write_bytes(orjson.dumps(data))
    with pytest.raises(ConfigError) as refused:
        load_config(config)
    [problem] = refused.value.problems
    assert (problem.file, problem.field) == (str(short_tmp / "strategies" / "pairs.json"), "params")
    assert "'XMR/BTC', which is not streamed" in problem.reason
    data["exchange"]["feed"]["symbols"] = [ETH, "XMR/BTC"]
    config.write_bytes(orjson.dumps(data))
    assert [s.id for s in load_config(config).strategies] == ["pairs"]

    data["exchange"]["feed"]["symbols"] = []
    config.write_bytes(orjson.dumps(data))
    with pytest.raises(ConfigError) as refused:
        load_config(config)
    assert [(p.field, p.reason.split(":")[0]) for p in refused.value.problems] == [
        ("exchange.feed.symbols", "required when feed.source is 'ccxt'")
    ]


def _connected(live: Live) -> Callable[[], Any]:
    """A probe: the status once the ETH feed is connected (its websocket open and the catch-up after it done)."""

    async def probe() -> dict[str, Any] | None:
        status = await live.status()
        return status if status["feed"]["symbols"][ETH]["state"] == "connected" else None

    return probe


def _logged_states(live: Live, symbol: str = ETH) -> list[str]:
    """Every state of `symbol`'s feed the daemon logged (a feed_state line each), reader attached or not."""
    lines = [line for line in live.log().splitlines() if f" feed_state symbol={symbol} " in line]
    return [line.rsplit(" state=", 1)[1].split()[0] for line in lines]


def _health(live: Live, health: str) -> Callable[[], Any]:
    async def probe() -> dict[str, Any] | None:
        status = await live.status()
        return status if status["health"] == health else None

    return probe
