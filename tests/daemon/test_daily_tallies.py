"""The daily loss tallies through a real SQLite journal, as the daemon journals and restores them
(bot/daemon/recovery.py's DailyTallies), with real services and strategies in-process: a
currency's global tally does not depend on the order strategies are restored in, and a record
an older version wrote never puts its global figure into a strategy's currency."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
import pytest

from bot.config.models import BotConfig
from bot.daemon.recovery import RISK_CURRENCY_DAY, RISK_DAY, DailyTallies, tripped_currency
from bot.events import Event, KillSwitch, PositionClosed, PositionOpened, PositionReduced
from bot.journal import Journal
from bot.trading.actions import OpenPosition
from bot.trading.risk import DailyTally
from tests.support import Rig, approx_float, candles_from
from tests.trading.helpers import DAY, MINUTE, SYMBOL, T0, flat, quiet

ETH_BTC = "ETH/BTC"
BOOKINGS = (PositionOpened, PositionReduced, PositionClosed)
OLD_RECORD_WARNING = "the journal's daily loss tallies were written before they were kept per currency"


class Daemonish:
    """Real services and strategies whose booking events are journalled as the daemon journals them."""

    def __init__(self, path: Path, risk: dict[str, Any], feeds: dict[str, str], log: logging.Logger) -> None:
        self.journal = Journal(path)
        self.rig = Rig(BotConfig.model_validate({"risk": risk}), feeds=feeds)
        self.tallies = DailyTallies(self.journal, self.rig.services.risk, log)
        self.rig.services.bus.subscribe(self._journal_booking, types=BOOKINGS)
        self.next_ts = T0

    def _journal_booking(self, event: Event) -> None:
        assert event.strategy_id is not None
        self.tallies.record(event.strategy_id)

    def act(self, strategy_id: str, symbol: str, quantity: float) -> None:
        orchestrator = self.rig.manager.get(strategy_id)
        orchestrator.actions.put(OpenPosition(symbol, "long", quantity))
        orchestrator.actions.drain()

    def bar(self, symbol: str, row: tuple[float, float, float, float]) -> None:
        self.rig.feed(symbol, candles_from([row], start_ts=self.next_ts))
        self.next_ts += MINUTE

    def kills(self) -> list[tuple[float, float, str | None, str]]:
        """(daily_loss, limit, currency, tripped_by) of each kill switch."""
        return [(e.daily_loss, e.limit, e.currency, e.tripped_by) for e in self.rig.of_type(KillSwitch)]


def _restart(path: Path, risk: dict[str, Any], feeds: dict[str, str], log: logging.Logger, *specs: Any) -> Daemonish:
    """A new process's start: the currencies' tallies first, then each strategy loaded and its own tally restored, in order."""
    again = Daemonish(path, risk, feeds, log)
    again.tallies.restore_currencies()
    for spec in specs:
        again.rig.manager.load(spec)
        again.tallies.restore_strategy(spec.id)
        again.rig.manager.activate(spec.id)
    return again


@pytest.mark.parametrize("order", [("a", "b"), ("b", "a")])
def test_a_currencys_tally_after_a_restart_is_the_sum_whatever_the_restore_order(tmp_path: Path, order: tuple[str, str]) -> None:
    """b loses 60, then a loses 30 (USD limit 100): restored in either order, USD stands at -90, so a's next loss of
    30 trips the limit at 120 (restored at -60, as when the last strategy record restored won, it would not)."""
    path, risk, feeds, log = tmp_path / "journal.sqlite", {"max_daily_loss": {"USD": 100}}, {SYMBOL: "1m"}, logging.getLogger("test.tallies")
    specs = {"a": quiet(id="a", exits={"stop_loss_pct": 6}), "b": quiet(id="b", exits={"stop_loss_pct": 3})}
    first = Daemonish(path, risk, feeds, log)
    first.rig.start(*specs.values())
    first.bar(SYMBOL, flat(100))
    first.act("a", SYMBOL, 5.0)
    first.act("b", SYMBOL, 20.0)
    first.bar(SYMBOL, flat(100))  # both filled at 100: a's stop at 94, b's at 97
    first.bar(SYMBOL, (100.0, 100.0, 96.0, 96.5))  # b stopped at 97: -60
    first.bar(SYMBOL, (96.0, 96.0, 93.0, 93.5))  # a stopped at 94: -30
    assert [e.trade.pnl for e in first.rig.of_type(PositionClosed)] == [pytest.approx(-60.0), pytest.approx(-30.0)]
    assert first.kills() == []
    assert orjson.loads(first.journal.get_meta(RISK_CURRENCY_DAY + "USD") or "") == {"currency": "USD", "day": T0 // DAY, "pnl": pytest.approx(-90.0)}
    first.journal.close()

    again = _restart(path, risk, feeds, log, *(specs[sid] for sid in order))
    try:
        risk_manager = again.rig.services.risk
        assert risk_manager.tally("USD") == DailyTally("USD", T0 // DAY, approx_float(-90.0))
        assert risk_manager.day_pnl("a", T0) == pytest.approx(-30.0) and risk_manager.day_pnl("b", T0) == pytest.approx(-60.0)
        again.next_ts = first.next_ts
        again.bar(SYMBOL, flat(100))
        again.act("a", SYMBOL, 5.0)
        again.bar(SYMBOL, flat(100))
        again.bar(SYMBOL, (100.0, 100.0, 93.0, 93.5))  # a stopped at 94: -30, 120 in all
        assert again.kills() == [(approx_float(120.0), 100.0, "USD", "a")]
    finally:
        again.journal.close()


def test_an_old_record_summed_across_currencies_never_lands_in_a_strategys_currency(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Records written before this version hold one global figure without a currency (here -40, mostly USD): a BTC
    strategy restoring one keeps its own tally, and the figure is dropped with one warning for the whole start, so a
    fee of a few hundred-thousandths of a BTC does not trip the BTC limit of 0.25 (it used to: "daily_loss 40.00004")."""
    path, risk, log = tmp_path / "journal.sqlite", {"max_daily_loss": {"USD": 1500, "BTC": 0.25}}, logging.getLogger("test.tallies")
    feeds = {SYMBOL: "1m", ETH_BTC: "1m"}
    day = T0 // DAY
    with Journal(path) as journal:
        # As the code before per-currency tallies journalled them (floats, one global figure for every currency).
        journal.set_meta(RISK_DAY + "eth", orjson.dumps({"global_day": float(day), "global_pnl": -40.0, "day": float(day), "pnl": -0.001}).decode())
        journal.set_meta(RISK_DAY + "usd", orjson.dumps({"global_day": float(day), "global_pnl": -40.0, "day": float(day), "pnl": -39.999}).decode())
    eth = quiet(id="eth", symbol=ETH_BTC, fees={"taker_bps": 5})
    with caplog.at_level(logging.WARNING, logger="test.tallies"):
        again = _restart(path, risk, feeds, log, eth, quiet(id="usd"))
    try:
        risk_manager = again.rig.services.risk
        assert risk_manager.day_pnl("eth", T0) == -0.001  # its own tally is its own, in BTC: kept
        assert risk_manager.day_pnl("usd", T0) == -39.999
        assert risk_manager.tally("BTC").pnl == risk_manager.tally("USD").pnl == 0.0
        assert [r.getMessage() for r in caplog.records if OLD_RECORD_WARNING in r.getMessage()] == [
            ("the journal's daily loss tallies were written before they were kept per currency: the global daily loss of before "
            "the restart is not carried over (each strategy's own is); the global limits count from the next trade")
        ]
        again.bar(ETH_BTC, flat(0.08))
        again.act("eth", ETH_BTC, 1.0)
        again.bar(ETH_BTC, flat(0.08))  # filled: a fee of 0.00004 BTC
        assert [e.fill.fee for e in again.rig.of_type(PositionOpened, "eth")] == [pytest.approx(0.00004)]
        assert again.kills() == [] and not risk_manager.kill_switch
        # What is journalled now carries its currency.
        assert orjson.loads(again.journal.get_meta(RISK_DAY + "eth") or "") == {"currency": "BTC", "day": day, "pnl": pytest.approx(-0.00104)}
        assert orjson.loads(again.journal.get_meta(RISK_CURRENCY_DAY + "BTC") or "") == {"currency": "BTC", "day": day, "pnl": pytest.approx(-0.00004)}
    finally:
        again.journal.close()


def test_a_strategy_record_of_another_currency_is_not_taken_back(tmp_path: Path) -> None:
    """A strategy whose symbol changed between two runs (ETH/BTC, journalled in BTC, now BTC/USD) starts its day at 0."""
    path = tmp_path / "journal.sqlite"
    with Journal(path) as journal:
        journal.set_meta(RISK_DAY + "s1", orjson.dumps({"currency": "BTC", "day": T0 // DAY, "pnl": -0.5}).decode())
    again = _restart(path, {}, {SYMBOL: "1m"}, logging.getLogger("test.tallies"), quiet(id="s1"))
    try:
        assert again.rig.services.risk.daily_state("s1") == DailyTally("USD", -1, 0.0)
    finally:
        again.journal.close()


def test_records_of_the_one_currency_older_versions_gave_symbols_without_a_quote(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An older version counted every symbol not written BASE/QUOTE in one currency "". Restarted, each such symbol is a
    group of its own: a strategy's own record of "" is still its own (taken back), the global "" tally (BTCUSD's and
    ETHUSD's losses together) cannot be split, so it is dropped with one warning, and BTCUSD's group starts from 0."""
    path, log, day = tmp_path / "journal.sqlite", logging.getLogger("test.tallies"), T0 // DAY
    with Journal(path) as journal:
        journal.set_meta(RISK_DAY + "btc", orjson.dumps({"currency": "", "day": day, "pnl": -20.0}).decode())
        journal.set_meta(RISK_CURRENCY_DAY, orjson.dumps({"currency": "", "day": day, "pnl": -50.0}).decode())
    with caplog.at_level(logging.WARNING, logger="test.tallies"):
        again = _restart(path, {"max_daily_loss": {"BTCUSD": 100}}, {"BTCUSD": "1m"}, log, quiet(id="btc", symbol="BTCUSD"))
    try:
        risk = again.rig.services.risk
        assert risk.daily_state("btc") == DailyTally("BTCUSD", day, -20.0)
        assert risk.tally("BTCUSD") == DailyTally("BTCUSD", -1, 0.0) and risk.tally("").day == -1
        assert risk.currency_days(T0) == {"BTCUSD": {"day_pnl": 0.0, "max_daily_loss": 100.0}}
        [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warning.endswith(
            "meta 'risk.day.currency:' is the daily loss of all symbols not written BASE/QUOTE together (an older version's): "
            "each is a currency group of its own now, so their global daily loss counts from the next trade"
        )
        # A kill switch that "" tripped names no group it could be now.
        assert tripped_currency(orjson.dumps({"daily_loss": 60.0, "limit": 50.0, "currency": ""}).decode()) is None
    finally:
        again.journal.close()


def test_a_tally_that_does_not_fit_its_record_is_logged_by_field_and_starts_from_0(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Decoded strictly: a day that is not an int is named in the log and that tally starts from 0; the others are taken
    back, an integer PnL as the float it is summed as."""
    path, log, day = tmp_path / "journal.sqlite", logging.getLogger("test.tallies"), T0 // DAY
    with Journal(path) as journal:
        journal.set_meta(RISK_DAY + "s1", orjson.dumps({"currency": "USD", "day": "today", "pnl": -20.0}).decode())
        journal.set_meta(RISK_CURRENCY_DAY + "USD", orjson.dumps({"currency": "USD", "day": day, "pnl": -50}).decode())
        journal.set_meta(RISK_CURRENCY_DAY + "BTC", orjson.dumps({"currency": "BTC", "day": day}).decode())
    with caplog.at_level(logging.ERROR, logger="test.tallies"):
        again = _restart(path, {}, {SYMBOL: "1m"}, log, quiet(id="s1"))
    try:
        risk = again.rig.services.risk
        assert risk.daily_state("s1") == DailyTally("USD", -1, 0.0)
        assert risk.tally("USD") == DailyTally("USD", day, -50.0) and type(risk.tally("USD").pnl) is float
        assert risk.tally("BTC") == DailyTally("BTC", -1, 0.0)
        assert sorted(r.getMessage().split(": ", 1)[1] for r in caplog.records) == [
            "meta 'risk.day.currency:BTC' is not a daily loss tally (field pnl: missing): the daily loss of BTC starts from 0",
            "meta 'risk.day:s1' is not a daily loss tally (field day: expected int, got str): its daily loss starts from 0",
        ]
    finally:
        again.journal.close()
