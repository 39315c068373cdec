"""kill -9 with open positions, restart: positions, stops, trailing state and strategy states come back.

Every daemon here is stepped (tests/daemon/stepped_daemon.py): the test publishes candles until
what it needs holds (a position, an active trailing stop, the kill switch), and nothing moves
while it reads, freezes or kills. A restarted daemon is never stepped: its feed stays at the
resume point, so what it restored is compared with nothing traded on top.
"""
from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import orjson

from bot.journal import Journal
from tests.control.client import result
from tests.daemon.process import DaemonProcess, journal_rows
from tests.support import BTC_1M

BUSY: dict[str, Any] = {
    "symbol": "BTC/USD",
    "timeframe": "1m",
    "quantity": 0.1,
    "analyzers": [{"type": "ema_cross", "params": {"fast": 3, "slow": 8}}],
    "exit_threshold": None,
    "exits": {
        "stop_loss_pct": 0.4,
        "take_profit": [{"pct": 0.2, "close_pct": 50}, {"pct": 0.6, "close_pct": 50}],
        "trailing": {"activation_pct": 0.1, "distance_pct": 0.15},
    },
    "fees": {"taker_bps": 5, "maker_bps": 2},
}
BACKFILL = 300


def _config(folder: Path, **overrides: Any) -> Path:
    (folder / "strategies").mkdir(exist_ok=True)
    for sid, fast in (("trend", 3), ("keeper", 4)):
        spec = {**BUSY, "id": sid, "analyzers": [{"type": "ema_cross", "params": {"fast": fast, "slow": 8}}]}
        (folder / "strategies" / f"{sid}.json").write_bytes(orjson.dumps(spec))
    config = {
        "mode": "paper",
        "replay": {"candles": {"BTC/USD": {"path": str(BTC_1M), "timeframe": "1m"}}},
        # The speed is unused: a stepped daemon plays a candle only when the test steps it.
        "feed": {"speed": 1, "loop": False, "backfill": BACKFILL},
        "control": {"socket": "bot.sock"},
        "journal": {"path": "journal.sqlite"},
        "strategies": [{"file": "strategies/trend.json"}, {"file": "strategies/keeper.json"}],
        **overrides,
    }
    path = folder / "config.json"
    path.write_bytes(orjson.dumps(config))
    return path


def _positions(socket: Path, sid: str) -> list[dict[str, Any]]:
    positions: list[dict[str, Any]] = result(socket, "positions", {"id": sid})[sid]["positions"]
    return positions


def _fills(folder: Path, sid: str) -> int:
    return int(journal_rows(folder, "SELECT COUNT(*) FROM fills WHERE strategy_id = ?", sid)[0][0])


def _reused_client_ids(folder: Path, sid: str) -> list[tuple[Any, ...]]:
    """Client ids with more than one fill: an order number used twice."""
    return journal_rows(folder, "SELECT client_id, COUNT(*) FROM fills WHERE strategy_id = ? GROUP BY client_id HAVING COUNT(*) > 1", sid)


def _without_extras(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k not in ("trail_anchor", "closed_quantity", "exit_value")} for row in rows]


def test_kill_9_with_open_positions_then_restart_restores_everything(short_tmp: Path) -> None:
    config = _config(short_tmp)
    first = DaemonProcess(config, stepped=True)
    try:
        first.wait_ready()
        socket = first.socket
        # Trade until the keeper holds a position, then freeze it there.
        first.step_until(lambda: _positions(socket, "keeper"), "keeper position")
        assert result(socket, "deactivate", {"id": "keeper", "policy": "freeze"})["policy"] == "freeze"
        frozen = result(socket, "positions", {"id": "keeper"})["keeper"]
        assert frozen["positions"], "the keeper was frozen without the position it held"
        # Trade on until the active strategy holds a position whose trailing stop is active.
        first.step_until(lambda: any(p["trailing_active"] for p in _positions(socket, "trend")), "active trailing stop")
        held = _positions(socket, "trend")
        assert any(p["trailing_active"] for p in held)
        assert result(socket, "positions", {"id": "keeper"})["keeper"] == frozen  # frozen: the candles since did nothing
        before_status = result(socket, "status")["strategies"]
        last_close = first.last_close
        assert first.kill() == -signal.SIGKILL
    finally:
        first.stop()
    assert first.socket.exists()  # a dead daemon leaves its socket behind

    with Journal(short_tmp / "journal.sqlite") as journal:
        journalled = {sid: _without_extras(journal.open_positions(sid)) for sid in ("trend", "keeper")}
        pending = {sid: [o["client_id"] for o in journal.pending_orders(sid)] for sid in ("trend", "keeper")}
        states = journal.strategy_states()
        last_orders = {sid: journal.last_order_number(sid) for sid in ("trend", "keeper")}
        feed_position = journal.get_meta("feed.last_ts")
    # Every candle stepped was processed before the kill: the journal resumes after the last one.
    assert feed_position == str(last_close)
    assert journalled["keeper"] == frozen["positions"]  # the frozen strategy's last status is the journal
    assert journalled["trend"] == held  # and so is the active one's: nothing moved before the kill
    assert (states["keeper"].state, states["keeper"].policy) == ("dormant", "freeze")
    assert states["trend"].state == "active"

    second = DaemonProcess(config, stepped=True)  # never stepped before the comparison: nothing trades on top
    try:
        second.wait_ready()
        assert second.last_close == last_close  # its backfill ends where the first daemon stopped
        restored = result(second.socket, "positions")
        full_status = result(second.socket, "status")
        status = full_status["strategies"]
        assert full_status["clock_ts"] == last_close  # resumed, not rewound to the file's start
        assert full_status["feed"]["candles"] == BACKFILL
        for sid in ("trend", "keeper"):
            got, want = restored[sid]["positions"], journalled[sid]
            assert got == want, (sid, [{k: (g[k], w.get(k)) for k in g if g[k] != w.get(k)} for g, w in zip(got, want)])
            assert restored[sid]["pending_orders"] == pending[sid], sid
        assert restored["keeper"]["positions"] == frozen["positions"]
        assert (status["keeper"]["state"], status["keeper"]["policy"]) == ("dormant", "freeze")
        assert status["trend"]["state"] == "active"
        assert status["keeper"]["positions"] == before_status["keeper"]["positions"]
        assert "[trend] restored from the journal" in second.log.read_text()
        # Trading on, new orders continue the numbering: no client id is ever reused.
        fills = _fills(short_tmp, "trend")
        second.step_until(lambda: _fills(short_tmp, "trend") > fills, "new trend fill")
        assert _reused_client_ids(short_tmp, "trend") == []
        newest = journal_rows(short_tmp, "SELECT MAX(number) FROM orders WHERE strategy_id = 'trend'")[0][0]
        assert newest > last_orders["trend"]
    finally:
        assert second.stop() == 0


def test_unload_without_closing_then_load_again_takes_the_book_back(short_tmp: Path) -> None:
    daemon = DaemonProcess(_config(short_tmp), stepped=True)
    try:
        daemon.wait_ready()
        socket = daemon.socket
        daemon.step_until(lambda: _positions(socket, "keeper"), "keeper position")
        result(socket, "deactivate", {"id": "keeper", "policy": "freeze"})
        held = _positions(socket, "keeper")
        assert held, "the keeper was frozen without the position it held"
        assert result(socket, "unload", {"id": "keeper"})["state"] == "unloaded"
        assert result(socket, "load", {"file": "strategies/keeper.json"})["state"] == "dormant"
        keeper = result(socket, "status")["strategies"]["keeper"]
        assert (keeper["state"], keeper["policy"]) == ("dormant", "manage")  # its stops are enforced again
        back = _positions(socket, "keeper")
        assert [p["position_id"] for p in back] == [p["position_id"] for p in held]
        assert [(p["quantity"], p["stop_loss"], p["take_profit"]) for p in back] == [(p["quantity"], p["stop_loss"], p["take_profit"]) for p in held]
        result(socket, "activate", {"id": "keeper"})
        # It trades on with the restored book, and no client id is used twice.
        fills = _fills(short_tmp, "keeper")
        daemon.step_until(lambda: _fills(short_tmp, "keeper") > fills, "new keeper fill")
        assert _reused_client_ids(short_tmp, "keeper") == []
    finally:
        assert daemon.stop() == 0


def test_the_kill_switch_survives_a_crash_until_released(short_tmp: Path) -> None:
    config = _config(short_tmp, risk={"max_daily_loss": 0.5})  # the first losing trade trips it
    first = DaemonProcess(config, stepped=True)
    try:
        first.wait_ready()
        first.step_until(lambda: result(first.socket, "status")["kill_switch"], "kill switch")
        first.kill()
    finally:
        first.stop()
    second = DaemonProcess(config, stepped=True)
    try:
        second.wait_ready()
        status = result(second.socket, "status")
        assert status["kill_switch"] is True and status["health"] == "degraded"
        assert result(second.socket, "risk-reset") == {"kill_switch": False, "was": True}
        assert result(second.socket, "status")["kill_switch"] is False
    finally:
        assert second.stop() == 0
    third = DaemonProcess(config, stepped=True)  # released for good: not engaged again after a restart
    try:
        third.wait_ready()
        assert result(third.socket, "status")["kill_switch"] is False
    finally:
        assert third.stop() == 0


def test_runtime_set_survives_a_restart_and_reload_returns_to_the_file(short_tmp: Path) -> None:
    config = _config(short_tmp)
    first = DaemonProcess(config, stepped=True)
    try:
        first.wait_ready()
        assert result(first.socket, "set", {"id": "trend", "path": "exits.stop_loss_pct", "value": 0.9})["changed"] == ["exits"]
        assert result(first.socket, "set", {"id": "trend", "path": "quantity", "value": 0.3})["changed"] == ["quantity"]
    finally:
        assert first.stop() == 0
    second = DaemonProcess(config, stepped=True)
    try:
        second.wait_ready()
        running = result(second.socket, "strategies")["loaded"]["trend"]["config"]
        assert (running["quantity"], running["exits"]["stop_loss_pct"]) == (0.3, 0.9)
        assert result(second.socket, "reload", {"id": "trend"})["changed"] == ["exits", "quantity"]
        running = result(second.socket, "strategies")["loaded"]["trend"]["config"]
        assert (running["quantity"], running["exits"]["stop_loss_pct"]) == (0.1, 0.4)
    finally:
        assert second.stop() == 0
    third = DaemonProcess(config, stepped=True)
    try:
        third.wait_ready()
        assert result(third.socket, "strategies")["loaded"]["trend"]["config"]["quantity"] == 0.1
    finally:
        assert third.stop() == 0


def test_daily_loss_tallies_survive_a_crash(short_tmp: Path) -> None:
    config = _config(short_tmp)
    first = DaemonProcess(config, stepped=True)
    try:
        first.wait_ready()
        day_pnl = first.step_until(lambda: _losing_day(first.socket), "losing day")
        first.kill()
    finally:
        first.stop()
    with Journal(short_tmp / "journal.sqlite") as journal:
        journalled = orjson.loads(journal.get_meta("risk.day:trend") or "{}")
    assert journalled["pnl"] == day_pnl < 0
    second = DaemonProcess(config, stepped=True)
    try:
        second.wait_ready()
        assert result(second.socket, "status")["strategies"]["trend"]["day_pnl"] == journalled["pnl"]
    finally:
        assert second.stop() == 0


def _losing_day(socket: Path) -> float | None:
    """trend's PnL of the day when it is a loss, else None."""
    pnl: float = result(socket, "status")["strategies"]["trend"]["day_pnl"]
    return pnl if pnl < 0 else None
