"""The daily loss tallies and the money `bot ctl status` shows, on a real daemon process (stepped).

A currency's global tally survives kill -9 whichever strategy booked last; a record an older
version journalled (one global figure for every currency) does not trip a BTC limit; a
strategy's day PnL is of the daemon's day, not of its last trade's; BTC amounts are shown to
the scale of a BTC account, with their currency.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from bot.daemon.recovery import RISK_CURRENCY_DAY, RISK_DAY
from bot.journal import Journal
from tests.control.client import result
from tests.control.test_ctl_output import ctl, one_line
from tests.daemon.process import DaemonProcess
from tests.daemon.test_recovery import BUSY, _config
from tests.support import ETH_1M

DAY = 86_400_000
OLD_RECORD_WARNING = "the journal's daily loss tallies were written before they were kept per currency"


def _btc_config(folder: Path, **overrides: Any) -> Path:
    """One strategy, eth, trading ETH/BTC on a 10 BTC account (its money in BTC)."""
    (folder / "strategies").mkdir(exist_ok=True)
    spec = {**BUSY, "id": "eth", "symbol": "ETH/BTC", "quantity": 10.0, "starting_balance": 10.0}
    (folder / "strategies" / "eth.json").write_bytes(orjson.dumps(spec))
    config = {
        "mode": "paper",
        "replay": {"candles": {"ETH/BTC": {"path": str(ETH_1M), "timeframe": "1m"}}},
        "feed": {"speed": 1, "loop": False, "backfill": 300},
        "control": {"socket": "bot.sock"},
        "journal": {"path": "journal.sqlite"},
        "strategies": [{"file": "strategies/eth.json"}],
        **overrides,
    }
    path = folder / "config.json"
    path.write_bytes(orjson.dumps(config))
    return path


def _status(daemon: DaemonProcess) -> dict[str, Any]:
    status: dict[str, Any] = result(daemon.socket, "status")
    return status


class LastBooker:
    """A probe: the day PnLs once `booker` has just booked (its day PnL moved on this step) while `other`, which
    booked earlier the same day, has not since: `other`'s journal record is then older than `booker`'s."""

    def __init__(self, daemon: DaemonProcess, booker: str, other: str) -> None:
        self._daemon = daemon
        self._ids = (booker, other)
        self._before: tuple[float, float] | None = None

    def __call__(self) -> dict[str, Any] | None:
        status = _status(self._daemon)
        now = tuple(status["strategies"][sid]["day_pnl"] for sid in self._ids)
        before, self._before = self._before, (now[0], now[1])
        if before is not None and now[0] != before[0] and now[1] == before[1] and now[1] != 0.0:
            return status
        return None


def test_a_currencys_tally_survives_kill_9_whichever_strategy_booked_last(short_tmp: Path) -> None:
    """keeper books, then trend (restored first, keeper second): after kill -9 and a restart the USD tally is
    trend's + keeper's of the day, as before the kill (restored from the strategies' records, keeper's older one won)."""
    config = _config(short_tmp, risk={"max_daily_loss": 1_000_000})
    first = DaemonProcess(config, stepped=True)
    try:
        first.wait_ready()
        status = first.step_until(LastBooker(first, "trend", "keeper"), "a booking of trend after one of keeper")
        day_pnl = {sid: status["strategies"][sid]["day_pnl"] for sid in ("trend", "keeper")}
        usd = status["currencies"]["USD"]
        assert usd == {"day_pnl": pytest.approx(day_pnl["trend"] + day_pnl["keeper"], rel=1e-9), "max_daily_loss": 1_000_000.0}
        first.kill()
    finally:
        first.stop()
    with Journal(short_tmp / "journal.sqlite") as journal:
        journalled = orjson.loads(journal.get_meta(RISK_CURRENCY_DAY + "USD") or "{}")
    assert journalled == {"currency": "USD", "day": status["clock_ts"] // DAY, "pnl": usd["day_pnl"]}

    second = DaemonProcess(config, stepped=True)
    try:
        second.wait_ready()
        again = _status(second)
        assert again["currencies"]["USD"] == usd
        assert {sid: again["strategies"][sid]["day_pnl"] for sid in ("trend", "keeper")} == day_pnl
    finally:
        assert second.stop() == 0


def test_an_old_journal_record_summed_across_currencies_does_not_trip_a_btc_limit(short_tmp: Path) -> None:
    """The journal holds eth's record as an older version wrote it: -40 for all currencies together (mostly USD).
    Restarted, eth's first fee (a few ten-thousandths of a BTC) leaves the BTC limit of 0.25 untouched; the
    older figure is dropped with one warning."""
    config = _btc_config(short_tmp, risk={"max_daily_loss": {"BTC": 0.25}})
    first = DaemonProcess(config, stepped=True)
    try:
        first.wait_ready()
        assert first.last_close is not None
        day = first.last_close // DAY
    finally:
        assert first.stop() == 0
    with Journal(short_tmp / "journal.sqlite") as journal:
        old = {"global_day": float(day), "global_pnl": -40.0, "day": float(day), "pnl": 0.0}
        journal.set_meta(RISK_DAY + "eth", orjson.dumps(old).decode())

    second = DaemonProcess(config, stepped=True)
    try:
        second.wait_ready()
        booked = second.step_until(lambda: (s := _status(second))["strategies"]["eth"]["day_pnl"] != 0.0 and s, "eth's first fee")
        assert booked["clock_ts"] // DAY == day  # the day the old record is of
        assert -0.01 < booked["strategies"]["eth"]["day_pnl"] < 0
        assert booked["kill_switch"] is False and booked["health"] == "ok", booked
        assert booked["currencies"]["BTC"]["day_pnl"] == booked["strategies"]["eth"]["day_pnl"]
    finally:
        assert second.stop() == 0
    log = second.log.read_text()
    assert log.count(OLD_RECORD_WARNING) == 1, log


def test_a_strategys_day_pnl_is_0_once_the_daemons_day_rolls_over(short_tmp: Path) -> None:
    """trend books a loss or gain, then goes dormant (no position: nothing more to book); once the candle clock
    passes midnight UTC its day PnL is 0, where it used to show the day before's until its next trade."""
    config = _config(short_tmp)
    daemon = DaemonProcess(config, stepped=True)
    try:
        daemon.wait_ready()

        def booked_and_flat() -> dict[str, Any] | None:
            status = _status(daemon)
            trend = status["strategies"]["trend"]
            return status if trend["day_pnl"] != 0.0 and trend["positions"] == 0 else None

        status = daemon.step_until(booked_and_flat, "trend with a day PnL and no position")
        day_pnl, day = status["strategies"]["trend"]["day_pnl"], status["clock_ts"] // DAY
        assert result(daemon.socket, "deactivate", {"id": "trend"})["state"] == "dormant"
        assert _status(daemon)["strategies"]["trend"]["day_pnl"] == day_pnl
        rolled = daemon.step_until(lambda: (s := _status(daemon))["clock_ts"] // DAY > day and s, "the next UTC day", candles=60)
        assert rolled["strategies"]["trend"]["day_pnl"] == 0.0
        assert rolled["strategies"]["trend"]["positions"] == 0
    finally:
        assert daemon.stop() == 0


def _row(table: str, first: str) -> list[str]:
    """The cells of the row of a table ctl printed whose first cell is `first` (the header row too)."""
    for line in table.splitlines():
        cells = [cell.strip() for cell in re.split("[│┃]", line)[1:-1]]
        if cells and cells[0] == first:
            return cells
    raise AssertionError(f"no row {first} in:\n{table}")


def _four_decimals(amount: float) -> str:
    # As a 10 BTC account's amounts are shown: to 0.0001, a loss below that as 0.0000 (not -0.0000).
    return f"{round(amount, 4) or 0.0:,.4f}"


def test_status_and_unload_show_btc_money_to_its_scale_with_its_currency(short_tmp: Path) -> None:
    """A 10 BTC account holding a position: `bot ctl status` shows its equity and day PnL with 4 decimals and BTC
    (10.0123 BTC used to print as 10.01, without a currency), and so does the unload line."""
    daemon = DaemonProcess(_btc_config(short_tmp), stepped=True)
    try:
        daemon.wait_ready()
        status = daemon.step_until(lambda: (s := _status(daemon))["strategies"]["eth"]["positions"] and s, "eth position")
        eth = status["strategies"]["eth"]
        assert (eth["currency"], eth["starting_balance"]) == ("BTC", 10.0)
        done = ctl("--socket", str(daemon.socket), "status")
        assert done.returncode == 0, done
        header = _row(done.stdout, "strategy")
        cells = dict(zip(header, _row(done.stdout, "eth")))
        assert (cells["currency"], cells["equity"], cells["day pnl"]) == ("BTC", _four_decimals(eth["equity"]), _four_decimals(eth["day_pnl"])), done.stdout
        line = one_line(ctl("--socket", str(daemon.socket), "unload", "eth"))
        match = re.fullmatch(r"eth: active -> unloaded \(1 open position kept in the journal until it is loaded again; equity (\d+\.\d{4}) BTC\)", line)
        assert match is not None, line
        assert float(match.group(1)) == pytest.approx(eth["equity"], abs=0.00005)
    finally:
        assert daemon.stop() == 0
