"""Each of the daemon's start-up phases (bot/daemon/startup.py) on its own: a real config, a real journal file, recorded candles."""
from __future__ import annotations

import gc
import logging
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from anyio.abc import TaskGroup

from bot.bus import Handler
from bot.candles.reader import read_candles
from bot.candles.sources import CandleSource
from bot.clock import WallClock
from bot.config.exchange import ExchangeConfig
from bot.config.models import BotConfig, StrategyConfig
from bot.control.client import ControlClient
from bot.daemon.delivery import InboxDelivery
from bot.daemon.feed import RecordedFeed
from bot.daemon.feed_position import FeedPosition
from bot.daemon.inbox import CandleWork
from bot.daemon.live_trading import LiveTrading
from bot.daemon.recovery import ADDED_SYMBOL, FEED_POSITION, KILL_SWITCH, STRATEGY_FILE
from bot.daemon.startup import (
    JournalRecorder,
    activate,
    add_journalled_symbols,
    build_feed,
    load_strategies,
    open_journal,
    reconcile,
    restore,
    strategies_to_load,
)
from bot.event_codec import payload_json
from bot.events import Event, FeedState, KillSwitch, Reconciled, StrategyStateChanged
from bot.journal import Journal
from bot.journal.lock import JournalInUse
from bot.journal.records import JournalledState
from bot.kernel import Bot, Seams, build_bot
from bot.kernel.daemon import control_server
from bot.live.errors import ExchangeSetupError
from bot.log import BotLogger
from bot.ohlcv import Candle
from bot.replay.sources import resolve_sources
from bot.services import BotServices
from bot.strategy.booking_faults import BookingFaults
from bot.strategy.config_load import LoadedConfig, load_config
from bot.strategy.delivery import HandlerErrorHook
from bot.trading.risk import RiskManager
from tests.daemon.owners import TradingOnlyOwner
from tests.daemon.process import write_daemon_config
from tests.live.support import ETH
from tests.live.trading_support import (
    EXECUTION,
    TIMEOUT_MS,
    eth_strategy,
    fake_market,
)
from tests.support import BTC_1M, REPO

LOG = logging.getLogger("bot.tests.startup")


def _loaded(folder: Path) -> LoadedConfig:
    return load_config(write_daemon_config(folder))


def _bot(loaded: LoadedConfig, journal: Journal, delivery: Any = None) -> Bot:
    def journal_first(risk: RiskManager) -> Handler:
        return JournalRecorder(journal, risk, LOG)

    seams = Seams(journal=journal_first, delivery=delivery, isolate_subscribers=False)
    return build_bot(loaded.bot, "paper", seams, BotLogger.to_stderr(level=60, name="bot.tests.startup_services"), loaded.catalog)


def _queued_bot(tg: TaskGroup, loaded: LoadedConfig, journal: Journal) -> tuple[Bot, InboxDelivery, FeedPosition]:
    """A bot as `bot run` builds it: inboxes in `tg`, and the feed position on their count of queued candles."""
    queued = CandleWork()
    position = FeedPosition(journal, queued)

    def inboxes(services: BotServices, on_error: HandlerErrorHook) -> InboxDelivery:
        return InboxDelivery(tg, 100, on_error, on_drained=position.processed, queued=queued)

    bot = _bot(loaded, journal, inboxes)
    delivery = bot.manager.delivery
    assert isinstance(delivery, InboxDelivery)
    return bot, delivery, position


def test_open_journal_takes_its_lock_so_a_second_daemon_is_refused(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path)
    journal = open_journal(loaded)
    try:
        assert journal.path == tmp_path / "journal.sqlite" and journal.path.exists()
        with pytest.raises(JournalInUse):
            open_journal(loaded)
    finally:
        journal.close()


def test_built_services_commit_every_event_to_the_journal_before_any_subscriber_hears_of_it(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path)
    journal = open_journal(loaded)
    try:
        bot = _bot(loaded, journal)
        seen: list[bool] = []

        def subscriber(event: Event) -> None:
            seen.append(journal.get_meta(KILL_SWITCH) is not None)

        bot.services.bus.subscribe(subscriber, types=(KillSwitch,))
        bot.services.bus.publish(KillSwitch, None, 30.0, 25.0, "USD", "s1")
        assert seen == [True]
        assert orjson.loads(journal.get_meta(KILL_SWITCH) or "null")["currency"] == "USD"
    finally:
        journal.close()


def test_restore_re_engages_the_kill_switch_and_says_what_is_resumed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    loaded = _loaded(tmp_path)
    journal = open_journal(loaded)
    try:
        journal.set_meta(KILL_SWITCH, payload_json(KillSwitch(1, 0, 0, 30.0, 25.0, "USD", "s1")).decode())
        journal.set_meta(FEED_POSITION, "1640995260000")
        bot = _bot(loaded, journal)
        with caplog.at_level(logging.INFO, logger=LOG.name):
            restored = restore(loaded, journal, bot.services, LOG)
        assert bot.services.risk.kill_switch and bot.services.risk.tripped_in == "USD"
        assert restored.resume_close == 1_640_995_260_000 and restored.saved == {}
        assert "kill switch still engaged" in caplog.text and "resuming" in caplog.text
    finally:
        journal.close()


def test_a_new_journal_is_announced_as_new(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    loaded = _loaded(tmp_path)
    journal = open_journal(loaded)
    try:
        with caplog.at_level(logging.INFO, logger=LOG.name):
            restored = restore(loaded, journal, _bot(loaded, journal).services, LOG)
        assert restored.resume_close is None and "new journal" in caplog.text
    finally:
        journal.close()


def test_the_feed_plays_the_recorded_candles_and_drops_a_journalled_symbol_that_is_not_one(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path)
    sources, problems = resolve_sources(loaded)
    assert not problems
    journal = open_journal(loaded)
    try:
        journal.set_meta(ADDED_SYMBOL + "not a symbol", orjson.dumps({"path": "x.csv", "timeframe": "1m"}).decode())

        async def main() -> tuple[int, int]:
            async with anyio.create_task_group() as tg:
                bot, delivery, position = _queued_bot(tg, loaded, journal)
                feed = build_feed(loaded, bot.services, delivery, position, sources, None, None, LOG.error, None)
                assert isinstance(feed, RecordedFeed) and bot.services.hub.symbols() == ["BTC/USD"]
                assert add_journalled_symbols(journal, feed, bot.services.hub, 0, LOG) == {}
                await tg.start(feed.run)  # returns once the backfill is in the hub
                history = len(bot.services.hub.history("BTC/USD", "1m", limit=10_000))
                feed.stop()
                delivery.close_all()
            return history, feed.published

        history, published = anyio.run(main)
        assert published == loaded.bot.feed.backfill and history == min(published, loaded.bot.replay.history_size)
        assert journal.meta_with_prefix(ADDED_SYMBOL) == {}
    finally:
        journal.close()


def test_the_feed_position_is_journalled_once_every_published_candle_is_processed(tmp_path: Path) -> None:
    """The position is built before the delivery and the feed, on their shared count of queued candles: a close published
    while a candle waits in an inbox is journalled when the inbox drains; one published with nothing queued, at once."""
    with Journal(tmp_path / "journal.sqlite") as journal:

        async def main() -> None:
            async with anyio.create_task_group() as tg:
                queued = CandleWork()
                position = FeedPosition(journal, queued)

                def failed(owner: object, handler: object, exc: Exception) -> None:
                    raise AssertionError(exc)

                delivery = InboxDelivery(tg, 10, failed, on_drained=position.processed, queued=queued)
                handled: list[int] = []
                enqueue = delivery.wrap(TradingOnlyOwner(), lambda symbol, timeframe, candle, ts: handled.append(ts))
                close = 1_640_995_260_000
                enqueue("BTC/USD", "1m", Candle(close - 60_000, 1.0, 1.0, 1.0, 1.0, 1.0), close)  # routed by the hub
                position.published(close)
                assert queued.n == 1 and journal.get_meta(FEED_POSITION) is None
                await anyio.wait_all_tasks_blocked()  # the strategy's task takes the candle, and the inbox is empty
                assert handled == [close] and journal.get_meta(FEED_POSITION) == str(close)
                position.published(close + 60_000)  # a candle no strategy reads: nothing queued
                assert journal.get_meta(FEED_POSITION) == str(close + 60_000)
                delivery.close_all()

        anyio.run(main)


def test_strategies_load_restored_and_are_put_back_in_their_journalled_state(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path)
    journal = open_journal(loaded)
    try:
        bot = _bot(loaded, journal)
        bot.services.hub.add_feed("BTC/USD", "1m")
        to_load = strategies_to_load(loaded, journal, {}, LOG)
        ids = [spec.id for spec in to_load.specs]
        assert ids == ["ema_cross", "rsi_reversion"] and not to_load.on_file_spec
        saved = {"rsi_reversion": JournalledState("dormant", "deactivated", "manage", None, 0)}
        loaded_specs = load_strategies(to_load, saved, bot.manager, bot.services.risk, journal, LOG)
        assert [spec.id for spec in loaded_specs] == ids
        assert journal.get_meta(STRATEGY_FILE + "ema_cross") == str(to_load.files["ema_cross"])
        activate(loaded_specs, saved, bot.manager, bot.services.hub, LOG)
        assert bot.manager.states() == {"ema_cross": "active", "rsi_reversion": "dormant"}
    finally:
        journal.close()


def test_serve_answers_on_a_real_unix_socket_before_the_strategies_load_and_removes_it_after(short_tmp: Path) -> None:
    """The control server on the daemon's state: `status` over the socket (mode 0600) while serving; no file left after."""
    loaded = _loaded(short_tmp)
    sources, problems = resolve_sources(loaded)
    assert not problems
    socket_path = (loaded.base_dir / loaded.bot.control.socket).resolve()
    stops: list[bool] = []
    journal = open_journal(loaded)
    try:

        async def main() -> dict[str, Any]:
            async with anyio.create_task_group() as tg:
                bot, delivery, position = _queued_bot(tg, loaded, journal)
                feed = build_feed(loaded, bot.services, delivery, position, sources, None, None, LOG.error, None)
                server = control_server(loaded, bot, feed, journal, list, {}, {}, lambda: stops.append(True), socket_path, LOG)
                async with server.serving():
                    assert stat.S_IMODE(socket_path.stat().st_mode) == 0o600
                    async with ControlClient(socket_path) as client:
                        status: dict[str, Any] = await client.call("status")
                        shutdown: dict[str, Any] = await client.call("shutdown")
                delivery.close_all()
            assert shutdown["ok"], shutdown
            return status

        status = anyio.run(main)
        assert status["ok"], status
        assert status["result"]["strategies"] == {} and status["result"]["feed"]["state"] == "starting"
        assert stops == [True] and not socket_path.exists()
    finally:
        journal.close()


def test_reconcile_asks_the_exchange_before_any_strategy_trades_and_refuses_to_trade_when_it_cannot(tmp_path: Path) -> None:
    """The real ccxt client against the fake Binance: reconciled (announced, stops armed only then) when the exchange
    answers; ExchangeSetupError, not trading, when it refuses every request."""
    journal = Journal(tmp_path / "journal.sqlite")
    seen: list[Event] = []

    async def main() -> None:
        async with fake_market(btc="1") as fake:
            config = ExchangeConfig.model_validate(fake.signed_exchange_config(timeout_ms=TIMEOUT_MS, execution=EXECUTION))
            faults = BookingFaults(LOG)
            live = LiveTrading(config, fake.credential_env(), WallClock(), LOG, faults)
            try:

                def journal_first(risk: RiskManager) -> Handler:
                    return JournalRecorder(journal, risk, LOG)

                seams = Seams(
                    clock=WallClock(), exchange=live.gateway, accounts=live.gateway, booking_faults=faults, journal=journal_first,
                    isolate_subscribers=False,
                )
                bot = build_bot(BotConfig(), "live", seams, BotLogger.to_stderr(level=60, name="bot.tests.reconcile"))
                bot.services.hub.add_feed(ETH, "1m")
                bot.services.bus.subscribe(seen.append, types=(Reconciled,))
                async with anyio.create_task_group() as tg:
                    await live.start(tg, bot.manager)
                    bot.manager.load(eth_strategy())
                    assert not live.gateway.status()["stops"]["armed"]
                    await reconcile(live, bot.manager, bot.services.bus, (ETH,))
                    assert [type(e) for e in seen] == [Reconciled]
                    assert live.gateway.status()["stops"]["armed"]  # only now may stops be placed
                    fake.faults.rest_errors(503, 10**6)  # the exchange refuses everything from now on
                    with pytest.raises(ExchangeSetupError, match="reconciliation with the exchange failed, not trading"):
                        await reconcile(live, bot.manager, bot.services.bus, (ETH,))
                    tg.cancel_scope.cancel()
            finally:
                await live.close()

    try:
        anyio.run(main)
    finally:
        journal.close()


def test_a_bad_row_deep_in_an_added_file_is_announced_as_that_symbols_feed_state(tmp_path: Path) -> None:
    """The symbol is the event's field, not a detail key: FeedState refuses one in its detail (the payload's own key)."""
    loaded = _loaded(tmp_path)
    sources, problems = resolve_sources(loaded)
    assert not problems
    rows = BTC_1M.read_text().splitlines()
    journal = open_journal(loaded)
    try:

        async def main() -> FeedState:
            async with anyio.create_task_group() as tg:
                bot, delivery, position = _queued_bot(tg, loaded, journal)
                announced: list[FeedState] = []
                seen = anyio.Event()

                def symbol_state(event: Event) -> None:
                    if isinstance(event, FeedState) and event.symbol is not None:
                        announced.append(event)
                        seen.set()

                bot.services.bus.subscribe(symbol_state, types=[FeedState])
                feed = build_feed(loaded, bot.services, delivery, position, sources, None, None, LOG.error, None)
                assert isinstance(feed, RecordedFeed)
                await tg.start(feed.run)  # returns once the backfill is in the hub
                last = bot.services.hub.history("BTC/USD", "1m", limit=1)[-1]
                at = next(i for i, row in enumerate(rows) if row.startswith(f"{last.ts},"))
                # Two good candles still to play, then a row whose high is below its low.
                bad_ts = rows[at + 3].split(",")[0]
                added = tmp_path / "eth_1m.csv"
                added.write_text("\n".join([rows[0], rows[at + 1], rows[at + 2], f"{bad_ts},10,9,12,11,1"]) + "\n")
                feed.add_source(CandleSource("ETH/USD", added, "1m"), last.ts + 60_000)
                with anyio.fail_after(30):
                    await seen.wait()
                feed.stop()
                delivery.close_all()
            return announced[0]

        state = anyio.run(main)
        assert (state.symbol, state.timeframe) == ("ETH/USD", None)
        assert "symbol" not in state.detail and "eth_1m.csv" in state.detail["error"]
    finally:
        journal.close()


# -- activate: every path a journalled strategy can take -------------------------------------------
_SESSION_TS = 1_640_995_200_000


def _journal_state(journal: Journal, sid: str, state: str, policy: str | None = None, error: str | None = None) -> None:
    """A strategy's lifecycle row, written as the daemon's journal hook writes it from the announcing event."""
    journal.record(StrategyStateChanged(1, _SESSION_TS, _SESSION_TS, sid, state, "journalled", policy, error))


def _restart(loaded: LoadedConfig, journal: Journal, candles: Sequence[Candle] = ()) -> tuple[Bot, list[StrategyConfig], dict[str, Any]]:
    """The start-up phases before `activate`, as `bot run` runs them: restore, load, the feed's backfill into the hub."""
    bot = _bot(loaded, journal)
    bot.services.hub.add_feed("BTC/USD", "1m")
    saved = restore(loaded, journal, bot.services, LOG).saved
    loaded_specs = load_strategies(strategies_to_load(loaded, journal, saved, LOG), saved, bot.manager, bot.services.risk, journal, LOG)
    for candle in candles:
        bot.services.hub.ingest("BTC/USD", candle)
    return bot, loaded_specs, saved


def test_activate_puts_each_strategy_back_in_its_journalled_state_and_one_it_cannot_stays_its_own(
    short_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ids = ("settling", "new", "active", "dormant", "failed", "unloaded")
    spec = orjson.loads((REPO / "strategies" / "ema_cross.json").read_bytes())
    config = write_daemon_config(short_tmp, strategies=[{"file": f"strategies/{sid}.json"} for sid in ids])
    for sid in (*ids, "runtime"):
        (short_tmp / "strategies" / f"{sid}.json").write_bytes(orjson.dumps({**spec, "id": sid}))
    loaded = load_config(config)
    journal = open_journal(loaded)
    frozen = gc.get_freeze_count()
    try:
        # What the journal holds after the last session (no row for "new": added to the config since).
        _journal_state(journal, "settling", "settling")  # died while its orders were in flight: no state to restore it to
        _journal_state(journal, "active", "active")
        _journal_state(journal, "dormant", "dormant", "freeze")
        _journal_state(journal, "failed", "failed", "manage", "ZeroDivisionError: division by zero")
        _journal_state(journal, "unloaded", "unloaded")  # unloaded at runtime, enabled in the config
        # Loaded at runtime from a file that is gone since: not restored, and the rest starts.
        _journal_state(journal, "runtime", "active")
        journal.set_meta(STRATEGY_FILE + "runtime", str(short_tmp / "strategies" / "runtime.json"))
        (short_tmp / "strategies" / "runtime.json").unlink()
        with caplog.at_level(logging.INFO, logger=LOG.name):
            bot, loaded_specs, saved = _restart(loaded, journal)
            assert [s.id for s in loaded_specs] == list(ids)
            assert bot.manager.states() == dict.fromkeys(ids, "dormant")  # loaded, nothing routed before activate
            activate(loaded_specs, saved, bot.manager, bot.services.hub, LOG)
        manager = bot.manager
        assert manager.states() == {
            "settling": "dormant",  # refused and logged; the strategies after it are still put back
            "new": "active",
            "active": "active",
            "dormant": "dormant",
            "failed": "failed",
            "unloaded": "active",  # started afresh, as the config enables it
        }
        assert (manager.get("dormant").policy, manager.get("failed").policy) == ("freeze", "manage")
        assert manager.get("failed").last_error == "ZeroDivisionError: division by zero" and manager.get("active").last_error is None
        assert "cannot restore strategy 'settling' to state 'settling'" in caplog.text
        assert "runtime" not in manager.ids() and "[runtime] not restored: " in caplog.text
        # What is alive once every strategy is in place is out of the collector's way (heap.settle).
        assert gc.get_freeze_count() > frozen
    finally:
        gc.unfreeze()
        journal.close()


def test_activate_marks_restored_positions_at_the_last_close_before_candles_flow(short_tmp: Path) -> None:
    spec = orjson.loads((REPO / "strategies" / "ema_cross.json").read_bytes())
    spec.update({"id": "trend", "timeframe": "1m", "analyzers": [{"type": "ema_cross", "params": {"fast": 5, "slow": 13}}]})
    (short_tmp / "strategies").mkdir()
    (short_tmp / "strategies" / "trend.json").write_bytes(orjson.dumps(spec))
    loaded = load_config(write_daemon_config(short_tmp, strategies=[{"file": "strategies/trend.json"}]))
    candles = iter(read_candles(BTC_1M))
    # The last session: trend trades until it holds a position, journalled as it opens.
    journal = open_journal(loaded)
    try:
        bot, loaded_specs, saved = _restart(loaded, journal)
        activate(loaded_specs, saved, bot.manager, bot.services.hub, LOG)
        book = bot.manager.get("trend").positions
        while not book.positions:
            bot.services.hub.ingest("BTC/USD", next(candles))
        (held,) = book.positions.values()
    finally:
        gc.unfreeze()
        journal.close()
    # The restart: the feed's backfill brings candles the last session never saw; the position is marked at the newest close.
    backfill = [next(candles) for _ in range(30)]
    journal = open_journal(loaded)
    try:
        bot, loaded_specs, saved = _restart(loaded, journal, backfill)
        trend = bot.manager.get("trend")
        (restored,) = trend.positions.positions.values()
        assert (restored.id, restored.entry_price, restored.quantity) == (held.id, held.entry_price, held.quantity)
        before = trend.portfolio.record().unrealised
        activate(loaded_specs, saved, bot.manager, bot.services.hub, LOG)
        last = backfill[-1].close
        assert last != held.entry_price and trend.portfolio.record().unrealised != before
        assert trend.portfolio.record().unrealised == pytest.approx((last - held.entry_price) * held.quantity, rel=1e-9)
        assert bot.manager.states() == {"trend": "active"}
    finally:
        gc.unfreeze()
        journal.close()
