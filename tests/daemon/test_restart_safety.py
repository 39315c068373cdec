"""A restart never leaves a journalled position unprotected by a strategy that would not see its prices.

Real stepped daemons on real journals: a strategy's own daily loss tally written unreadable is logged and starts
from 0, the strategy loads with its book and trades on; a pair whose runtime change of `second_symbol` cannot be
re-applied (its file changed under it) is not started on its file's spec, which would not read the leg it holds:
its book stays in the journal, and once the file is fixed the next restart takes it all back.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from bot.daemon.recovery import OVERRIDES, RISK_DAY
from bot.journal import Journal
from tests.control.client import result
from tests.daemon.process import DaemonProcess
from tests.daemon.test_recovery import _config, _positions, _without_extras
from tests.support import ETH_1M, REPO, SHARED_DATA

XMR_1M = SHARED_DATA / "XMR-BTC_1m.csv"


def test_an_unreadable_own_daily_tally_is_logged_and_the_strategy_loads_with_its_book(short_tmp: Path) -> None:
    config = _config(short_tmp)
    first = DaemonProcess(config, stepped=True)
    try:
        first.wait_ready()
        first.step_until(lambda: _positions(first.socket, "trend"), "a trend position")
    finally:
        assert first.stop() == 0
    with Journal(short_tmp / "journal.sqlite") as journal:
        held = _without_extras(journal.open_positions("trend"))
        assert held and journal.get_meta(RISK_DAY + "trend")  # trend paid a fee at least: its tally is journalled
        journal.set_meta(RISK_DAY + "trend", '{"day": 19000, "pnl": ')  # torn: not JSON

    second = DaemonProcess(config, stepped=True)
    try:
        second.wait_ready()
        status = result(second.socket, "status")["strategies"]
        assert (status["trend"]["state"], status["trend"]["day_pnl"]) == ("active", 0.0)
        assert result(second.socket, "positions", {"id": "trend"})["trend"]["positions"] == held
        log = second.log.read_text()
        assert log.count(f"[trend] journal {short_tmp / 'journal.sqlite'}: meta 'risk.day:trend' is not a daily loss tally (") == 1, log
        assert "its daily loss starts from 0" in log and "not loaded" not in log, log
        # Its stops are enforced: the positions it was restored with close as prices move.
        ids = {p["position_id"] for p in held}
        second.step_until(lambda: not ids & {p["position_id"] for p in _positions(second.socket, "trend")}, "the restored positions closed", candles=10)
    finally:
        assert second.stop() == 0


PAIRS: dict[str, Any] = {
    "id": "pairs",
    "module": "pairs_arbitrage",
    "symbol": "ETH/BTC",
    "timeframe": "1m",
    "quantity": 1.0,
    "starting_balance": 10.0,
    "params": {"second_symbol": "XMR/BTC", "window": 20, "entry_z": 1.0, "exit_z": 0.2, "stop_z": 4.0, "max_hold_bars": 288},
    "risk": {"max_open_positions": 2},
}


def _pairs_config(folder: Path, **params: Any) -> Path:
    """A pair of ETH/BTC and XMR/BTC; LTC/BTC is fed too (XMR's candles under another name), for `set` to move to."""
    (folder / "strategies").mkdir(exist_ok=True)
    (folder / "strategies" / "pairs.json").write_bytes(orjson.dumps({**PAIRS, "params": {**PAIRS["params"], **params}}))
    config = {
        "mode": "paper",
        "strategy_paths": [str(REPO / "strategies")],
        "replay": {
            "candles": {
                "ETH/BTC": {"path": str(ETH_1M), "timeframe": "1m"},
                "XMR/BTC": {"path": str(XMR_1M), "timeframe": "1m"},
                "LTC/BTC": {"path": str(XMR_1M), "timeframe": "1m"},
            }
        },
        "feed": {"speed": 1, "loop": False, "backfill": 300},
        "control": {"socket": "bot.sock"},
        "journal": {"path": "journal.sqlite"},
        "strategies": [{"file": "strategies/pairs.json"}],
    }
    path = folder / "config.json"
    path.write_bytes(orjson.dumps(config))
    return path


def _legs(daemon: DaemonProcess) -> set[str]:
    return {p["symbol"] for p in _positions(daemon.socket, "pairs")}


def test_a_pair_whose_second_symbol_change_cannot_be_reapplied_is_not_started_on_its_files_spec(short_tmp: Path) -> None:
    """`set` moves the pair's second leg to LTC/BTC (and its entry_z to 1.1); it opens both legs. The file is then
    edited (stop_z 1.05): the journalled changes no longer validate. On the file's spec the pair would read XMR/BTC,
    not LTC/BTC where it holds a leg, so it is not loaded; nothing of its book changes, and with the file fixed the
    next restart restores it reading LTC/BTC."""
    config = _pairs_config(short_tmp)
    first = DaemonProcess(config, stepped=True)
    try:
        first.wait_ready()
        result(first.socket, "set", {"id": "pairs", "path": "params.second_symbol", "value": "LTC/BTC"})
        result(first.socket, "set", {"id": "pairs", "path": "params.entry_z", "value": 1.1})
        first.step_until(lambda: _legs(first) == {"ETH/BTC", "LTC/BTC"}, "a pair held on ETH/BTC and LTC/BTC", candles=5)
    finally:
        assert first.stop() == 0
    with Journal(short_tmp / "journal.sqlite") as journal:
        book = (journal.open_positions("pairs"), journal.pending_orders("pairs"), journal.get_meta(OVERRIDES + "pairs"))
    assert {p["symbol"] for p in book[0]} == {"ETH/BTC", "LTC/BTC"}

    _pairs_config(short_tmp, stop_z=1.05)  # entry_z 1.1 set at runtime now breaks exit_z < entry_z < stop_z
    second = DaemonProcess(config, stepped=True)
    try:
        second.wait_ready()
        assert "pairs" not in result(second.socket, "status")["strategies"]
        log = second.log.read_text()
        assert "[pairs] runtime changes not re-applied: pairs: params: need exit_z < entry_z < stop_z" in log, log
        assert (
            "[pairs] not loaded (its journalled state is kept): its runtime changes cannot be re-applied, and on its file's "
            "spec it would not read LTC/BTC, where it holds positions or orders (their stops would go unchecked): fix the "
            "strategy file so the changes apply again (or write them into it), then restart" in log
        ), log
        second.step(20)  # the market moves on without it
    finally:
        assert second.stop() == 0
    with Journal(short_tmp / "journal.sqlite") as journal:
        assert (journal.open_positions("pairs"), journal.pending_orders("pairs"), journal.get_meta(OVERRIDES + "pairs")) == book

    _pairs_config(short_tmp)  # fixed: the changes apply again
    third = DaemonProcess(config, stepped=True)
    try:
        third.wait_ready()
        loaded = result(third.socket, "strategies")["loaded"]["pairs"]["config"]["params"]
        assert (loaded["second_symbol"], loaded["entry_z"]) == ("LTC/BTC", 1.1)
        assert result(third.socket, "status")["strategies"]["pairs"]["state"] == "active"
        assert [p["position_id"] for p in _positions(third.socket, "pairs")] == [p["position_id"] for p in book[0]]
        assert "not loaded" not in third.log.read_text()
    finally:
        assert third.stop() == 0
