"""The daemon's operations called directly, no socket: a real config, journal file and recorded candles.

Each operation's journal effects (the meta keys a restart reads), its effects on the book, and its
refusals, which are the project's own errors (the control handlers turn them into replies).
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
import orjson
import pytest

from bot.candles.sources import CandleSource
from bot.daemon import operations
from bot.daemon.live_feed import PlayedFeed
from bot.daemon.recovery import ADDED_SYMBOL, KILL_SWITCH, OVERRIDES, STRATEGY_FILE
from bot.daemon.state import DaemonState
from bot.errors import (
    CandleFileError,
    ChangeRefused,
    ConfigError,
    FeedStateError,
    StrategyStateError,
    UnknownStrategyError,
)
from bot.journal import Journal
from bot.ohlcv import Candle
from bot.strategy.config_load import load_config
from bot.strategy.manager import StrategyManager
from bot.trading.actions import OpenPosition
from tests.daemon.process import write_daemon_config
from tests.daemon.test_live_trading import limit_reached_within
from tests.live.support import ETH
from tests.live.support import until as until_live
from tests.live.trading_support import (
    START,
    eth_strategy,
    fake_market,
    gateway_on,
    journal_at,
)
from tests.support import BTC_1M, Rig

BACKFILL = 600


class HeldPacer:
    """Plays nothing after the backfill: the feed stays `playing`, its clock still, until stopped."""

    def begin(self, last_close: int | None, processed: Callable[[], Awaitable[None]]) -> None:
        """Nothing to remember."""

    async def wait(self, close_ts: int) -> None:
        """Never returns by itself: `stop` cancels it."""
        await anyio.sleep_forever()

    async def finish(self, state: Literal["ended", "stopped"]) -> None:
        """Nothing to release."""


@dataclass
class Bot:
    """A DaemonState as `bot run` builds it (paper, recorded feed), its journal recording every event, and what asked the daemon to stop."""

    state: DaemonState
    rig: Rig
    journal: Journal
    folder: Path
    feed: PlayedFeed
    stops: list[bool] = field(default_factory=list)

    def meta(self, key: str) -> str | None:
        """A journal meta value, as a restart reads it."""
        return self.journal.get_meta(key)

    def strategy_file(self, name: str, **fields: Any) -> Path:
        """strategies/<name>.json: the repo's ema_cross.json with `fields` replaced."""
        spec = orjson.loads((self.folder / "strategies" / "ema_cross.json").read_bytes())
        spec.update(fields)
        path = self.folder / "strategies" / f"{name}.json"
        path.write_bytes(orjson.dumps(spec, option=orjson.OPT_INDENT_2))
        return path.resolve()

    def load(self, path: Path, activate: bool = False) -> str:
        """Load a strategy file through the operation, as `bot ctl load` does."""
        return operations.load(self.state, operations.read_strategy(self.state, path), path, activate=activate)


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[Bot]:
    loaded = load_config(write_daemon_config(tmp_path))
    rig = Rig(loaded.bot, {"BTC/USD": "1m"}, loaded.catalog)
    journal = Journal(tmp_path / "journal.sqlite")
    # What the daemon's journal-first hook does: every event is in the journal.
    rig.services.bus.subscribe(journal.record)
    feed = PlayedFeed([CandleSource("BTC/USD", BTC_1M, "1m")], rig.services.hub, 1.0, False, BACKFILL, lambda state, info: None, pacer=HeldPacer())
    stops: list[bool] = []
    state = DaemonState(loaded, rig.services, rig.manager, feed, lambda: stops.append(True), journal=journal)
    try:
        yield Bot(state, rig, journal, tmp_path, feed, stops)
    finally:
        journal.close()


FAST: dict[str, Any] = {"timeframe": "1m", "analyzers": [{"type": "ema_cross", "weight": 1.0, "params": {"fast": 5, "slow": 13}}]}


def trade_until_open(bot: Bot, sid: str, candles: list[Candle]) -> int:
    """Feed recorded candles until the strategy holds a position; how many it took."""
    orchestrator = bot.state.manager.get(sid)
    for count, candle in enumerate(candles, 1):
        bot.rig.feed("BTC/USD", [candle])
        if orchestrator.positions.positions:
            return count
    raise AssertionError(f"{sid} opened nothing in {len(candles)} candles")


# -- load / unload ----------------------------------------------------------------------------------
def test_load_journals_its_file_and_no_runtime_changes(bot: Bot) -> None:
    path = bot.strategy_file("ema_fast", id="ema_fast", **FAST)
    bot.journal.set_meta(OVERRIDES + "ema_fast", '{"quantity": 0.5}')  # left by an earlier `set`, before an unload
    assert bot.load(path) == "dormant"
    assert bot.meta(STRATEGY_FILE + "ema_fast") == str(path)
    assert bot.meta(OVERRIDES + "ema_fast") == ""
    assert bot.state.strategy_files["ema_fast"] == path
    assert bot.load(bot.strategy_file("other", id="other", **FAST), activate=True) == "active"


def test_load_refuses_an_id_already_loaded_and_changes_nothing(bot: Bot) -> None:
    path = bot.strategy_file("ema_fast", id="ema_fast", **FAST)
    bot.load(path)
    again = bot.strategy_file("again", id="ema_fast", **FAST)
    with pytest.raises(StrategyStateError, match="already loaded"):
        bot.load(again)
    assert bot.state.strategy_files["ema_fast"] == path and bot.meta(STRATEGY_FILE + "ema_fast") == str(path)


def test_unload_keeps_the_book_in_the_journal_and_load_takes_it_back(bot: Bot, btc_candles: list[Candle]) -> None:
    path = bot.strategy_file("ema_fast", id="ema_fast", **FAST)
    bot.rig.feed("BTC/USD", btc_candles[:50])  # history to warm from
    bot.load(path, activate=True)
    trade_until_open(bot, "ema_fast", btc_candles[50:1000])
    held = {p.id: p.quantity for p in bot.state.manager.get("ema_fast").positions.positions.values()}
    unloaded = operations.unload(bot.state, "ema_fast")
    assert unloaded.currency == "USD" and unloaded.settling == [] and unloaded.snapshot["positions"]
    assert "ema_fast" not in bot.state.manager.ids() and "ema_fast" not in bot.state.strategy_files
    assert len(bot.journal.open_positions("ema_fast")) == len(held)
    # Loaded again: the same positions, protected as under `manage`, and id numbering that continues.
    assert bot.load(path) == "dormant"
    orchestrator = bot.state.manager.get("ema_fast")
    assert {p.id: p.quantity for p in orchestrator.positions.positions.values()} == held
    assert orchestrator.policy == "manage"
    with pytest.raises(UnknownStrategyError):
        operations.unload(bot.state, "nope")


def test_unload_closing_positions_leaves_nothing_open(bot: Bot, btc_candles: list[Candle]) -> None:
    path = bot.strategy_file("ema_fast", id="ema_fast", **FAST)
    bot.rig.feed("BTC/USD", btc_candles[:50])
    bot.load(path, activate=True)
    trade_until_open(bot, "ema_fast", btc_candles[50:1000])
    operations.unload(bot.state, "ema_fast", close_positions=True)
    assert bot.journal.open_positions("ema_fast") == []
    bot.load(path)
    assert bot.state.manager.get("ema_fast").positions.positions == {}


@pytest.mark.asyncio
async def test_load_has_the_live_gateway_look_up_the_orders_it_takes_back(tmp_path: Path) -> None:
    # Live, through the real ccxt client to the fake exchange: a limit entry left resting by a
    # daemon that died fills meanwhile; loading the strategy takes the order back and books its fill.
    spec = eth_strategy()
    path = tmp_path / "s1.json"
    path.write_bytes(orjson.dumps(spec.model_dump(mode="json")))
    async with fake_market() as fake:
        with journal_at(tmp_path) as journal:
            async with gateway_on(fake, journal) as first:
                first.rig.manager.load(spec)
                first.rig.manager.activate("s1")
                first.feed_served(START - 50, 50)
                first.act(OpenPosition(ETH, "long", 0.5, "test", limit_price=limit_reached_within(fake, START, 30)))
                await until_live(lambda: [(o.client_id, o.status) for o in fake.orders] == [("s1-1", "NEW")], what="the limit entry resting")
            assert [o["client_id"] for o in journal.pending_orders("s1")] == ["s1-1"]
            await fake.stream(30)  # the market reaches the limit while no gateway watches
            assert fake.orders[0].status == "FILLED"
            async with gateway_on(fake, journal) as live:
                manager = StrategyManager(live.rig.services, live.rig.factory, accounts=live.gateway)
                feed = PlayedFeed([], live.rig.services.hub, 1.0, False, 0, lambda state, info: None, pacer=HeldPacer())
                state = DaemonState(load_config(write_daemon_config(tmp_path)), live.rig.services, manager, feed, lambda: None, journal=journal)
                assert operations.load(state, spec, path) == "dormant"
                assert live.gateway.tracked["s1-1"].unconfirmed  # adopted: the poller looks it up
                await until_live(lambda: [p.quantity for p in live.positions()] == [0.5], what="the fill booked")
                assert journal.pending_orders("s1") == [] and manager.get("s1").policy == "manage"


# -- lifecycle --------------------------------------------------------------------------------------
def test_activate_deactivate_switch_and_their_refusals(bot: Bot, btc_candles: list[Candle]) -> None:
    bot.rig.feed("BTC/USD", btc_candles[:50])
    bot.load(bot.strategy_file("a", id="a", **FAST))
    bot.load(bot.strategy_file("b", id="b", **FAST))
    operations.activate(bot.state, "a")
    assert bot.state.manager.get("a").state == "active"
    operations.switch(bot.state, "a", "b", "freeze")
    assert (bot.state.manager.get("a").state, bot.state.manager.get("a").policy, bot.state.manager.get("b").state) == ("dormant", "freeze", "active")
    operations.deactivate(bot.state, "b", "close")
    assert (bot.state.manager.get("b").state, bot.state.manager.get("b").policy) == ("dormant", "close")
    with pytest.raises(UnknownStrategyError):
        operations.activate(bot.state, "nope")
    with pytest.raises(UnknownStrategyError, match="'nope'"):
        operations.switch(bot.state, "a", "nope", "manage")
    with pytest.raises(UnknownStrategyError):
        operations.deactivate(bot.state, "nope", "manage")
    with pytest.raises(StrategyStateError):
        operations.deactivate(bot.state, "a", "manage")  # already dormant
    assert bot.state.manager.get("a").policy == "freeze"


# -- set / reload -----------------------------------------------------------------------------------
def test_set_journals_every_change_merged_and_reports_before_and_after(bot: Bot) -> None:
    bot.load(bot.strategy_file("ema_fast", id="ema_fast", **FAST))
    done = operations.set_param(bot.state, "ema_fast", "quantity", 0.25)
    assert (done.changed, done.old, done.new, done.warm, done.cold) == (["quantity"], 0.1, 0.25, None, None)
    operations.set_param(bot.state, "ema_fast", "exits.stop_loss_pct", 2.0)
    assert orjson.loads(bot.meta(OVERRIDES + "ema_fast") or "") == {"quantity": 0.25, "exits": {"stop_loss_pct": 2.0}}
    assert bot.state.manager.get("ema_fast").spec.quantity == 0.25


def test_set_rebuilding_indicators_says_how_warm_they_are(bot: Bot, btc_candles: list[Candle]) -> None:
    bot.rig.feed("BTC/USD", btc_candles[:50])
    bot.load(bot.strategy_file("ema_fast", id="ema_fast", **FAST), activate=True)
    done = operations.set_param(bot.state, "ema_fast", "analyzers", [{"type": "ema_cross", "weight": 1.0, "params": {"fast": 8, "slow": 21}}])
    assert done.changed == ["analyzers"] and done.warm is True and done.cold is None


def test_set_refusals_leave_the_strategy_and_the_journal_as_they_were(bot: Bot) -> None:
    bot.load(bot.strategy_file("ema_fast", id="ema_fast", **FAST))
    with pytest.raises(ConfigError, match="quantity"):
        operations.set_param(bot.state, "ema_fast", "quantity", "lots")
    with pytest.raises(ChangeRefused, match=r"^ema_fast: .*symbol.* \(its positions and orders are on its symbol and timeframe\): change the field in strategies/ema_fast.json, then unload and load the strategy$"):
        operations.set_param(bot.state, "ema_fast", "symbol", "ETH/USD")
    with pytest.raises(UnknownStrategyError):
        operations.set_param(bot.state, "nope", "quantity", 1)
    assert bot.meta(OVERRIDES + "ema_fast") == "" and bot.state.manager.get("ema_fast").spec.quantity == 0.1


def test_reload_applies_the_file_and_clears_the_journalled_changes(bot: Bot) -> None:
    path = bot.strategy_file("ema_fast", id="ema_fast", **FAST)
    bot.load(path)
    operations.set_param(bot.state, "ema_fast", "quantity", 0.25)
    bot.strategy_file("ema_fast", id="ema_fast", quantity=0.3, **FAST)
    assert operations.reload(bot.state, "ema_fast") == ["quantity"]
    assert bot.meta(OVERRIDES + "ema_fast") == "" and bot.state.manager.get("ema_fast").spec.quantity == 0.3


def test_reload_refusals(bot: Bot) -> None:
    path = bot.strategy_file("ema_fast", id="ema_fast", **FAST)
    bot.load(path)
    operations.set_param(bot.state, "ema_fast", "quantity", 0.25)
    journalled = bot.meta(OVERRIDES + "ema_fast")
    bot.strategy_file("ema_fast", id="ema_fast", **{**FAST, "timeframe": "5m"})
    with pytest.raises(ChangeRefused, match=r"^ema_fast: cannot change timeframe of a loaded strategy in place: unload and load it again to change them$"):
        operations.reload(bot.state, "ema_fast")
    path.write_text("{")
    with pytest.raises(ConfigError):
        operations.reload(bot.state, "ema_fast")
    assert bot.meta(OVERRIDES + "ema_fast") == journalled and bot.state.manager.get("ema_fast").spec.quantity == 0.25
    # Loaded without a file (not through `load`): nothing to reload from.
    bot.state.manager.load(operations.read_strategy(bot.state, bot.strategy_file("bare", id="bare", **FAST)))
    with pytest.raises(StrategyStateError, match="has no file to reload from"):
        operations.reload(bot.state, "bare")
    with pytest.raises(UnknownStrategyError):
        operations.reload(bot.state, "nope")


# -- symbols ----------------------------------------------------------------------------------------
def test_add_symbol_refused_until_the_recorded_feed_plays(bot: Bot) -> None:
    candles = bot.folder / "eth_1m.csv"
    candles.write_bytes(BTC_1M.read_bytes())
    with pytest.raises(FeedStateError, match="^the feed is starting, not playing$"):
        operations.add_symbol(bot.state, "ETH/USD", candles)
    with pytest.raises(FeedStateError, match="^BTC/USD already has a candle feed$"):
        operations.check_symbol_addable(bot.state, "BTC/USD")
    assert bot.journal.meta_with_prefix(ADDED_SYMBOL) == {} and bot.state.added_symbols == {}


@pytest.mark.asyncio
async def test_add_and_remove_symbol_journal_it_and_warm_its_history(bot: Bot) -> None:
    candles = bot.folder / "eth_1m.csv"
    candles.write_bytes(BTC_1M.read_bytes())
    bad = bot.folder / "bad_1m.csv"
    bad.write_text("ts_ms,open,high,low,close,volume\n1640991600000,10,9,12,11,1\n")
    async with anyio.create_task_group() as tg:
        await tg.start(bot.feed.run)
        assert bot.feed.state == "playing"
        with pytest.raises(CandleFileError, match="line 2"):
            operations.add_symbol(bot.state, "ETH/USD", bad)
        assert "ETH/USD" not in bot.state.services.hub.symbols() and bot.journal.meta_with_prefix(ADDED_SYMBOL) == {}
        added = operations.add_symbol(bot.state, "ETH/USD", candles)
        assert (added.timeframe, added.history) == ("1m", BACKFILL)  # every candle closed by the feed's clock
        assert orjson.loads(bot.meta(ADDED_SYMBOL + "ETH/USD") or "") == {"path": str(candles), "timeframe": "1m"}
        assert bot.state.added_symbols == {"ETH/USD": {"file": str(candles), "timeframe": "1m"}}
        with pytest.raises(FeedStateError, match="already has a candle feed"):
            operations.add_symbol(bot.state, "ETH/USD", candles)
        # A strategy reading it keeps it: refused until that strategy is unloaded.
        bot.load(bot.strategy_file("eth", id="eth", symbol="ETH/USD", **FAST))
        with pytest.raises(StrategyStateError, match="ETH/USD is used by eth"):
            operations.remove_symbol(bot.state, "ETH/USD")
        assert bot.meta(ADDED_SYMBOL + "ETH/USD") is not None
        operations.unload(bot.state, "eth")
        operations.remove_symbol(bot.state, "ETH/USD")
        assert bot.meta(ADDED_SYMBOL + "ETH/USD") is None and bot.state.added_symbols == {}
        assert "ETH/USD" not in bot.state.services.hub.symbols()
        with pytest.raises(FeedStateError, match=r"^'BTC/USD' was not added at runtime \(added: none\)$"):
            operations.remove_symbol(bot.state, "BTC/USD")
        bot.feed.stop()
    assert bot.feed.state == "stopped"


# -- risk, shutdown ---------------------------------------------------------------------------------
def test_risk_reset_releases_the_kill_switch_and_journals_it(bot: Bot) -> None:
    bot.state.services.risk.engage("USD")
    bot.journal.set_meta(KILL_SWITCH, '{"currency": "USD"}')
    assert operations.risk_reset(bot.state) is True
    assert bot.state.services.risk.kill_switch is False and bot.meta(KILL_SWITCH) == ""
    assert operations.risk_reset(bot.state) is False


def test_shutdown_asks_the_daemon_to_stop(bot: Bot) -> None:
    operations.shutdown(bot.state)
    assert bot.stops == [True]
