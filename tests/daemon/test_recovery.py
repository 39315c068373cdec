"""kill -9 with open positions, restart: positions, stops, trailing state and strategy states come back."""
from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import orjson

from bot.journal import Journal
from tests.daemon.client import result, wait_for
from tests.daemon.conftest import DaemonProcess
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


def _config(folder: Path, speed: float) -> Path:
    (folder / "strategies").mkdir(exist_ok=True)
    for sid, fast in (("trend", 3), ("keeper", 4)):
        spec = {**BUSY, "id": sid, "analyzers": [{"type": "ema_cross", "params": {"fast": fast, "slow": 8}}]}
        (folder / "strategies" / f"{sid}.json").write_bytes(orjson.dumps(spec))
    config = {
        "mode": "paper",
        "replay": {"candles": {"BTC/USD": {"path": str(BTC_1M), "timeframe": "1m"}}},
        "feed": {"speed": speed, "loop": False, "backfill": 300},
        "control": {"socket": "bot.sock"},
        "journal": {"path": "journal.sqlite"},
        "strategies": [{"file": "strategies/trend.json"}, {"file": "strategies/keeper.json"}],
    }
    path = folder / "config.json"
    path.write_bytes(orjson.dumps(config))
    return path


def _pause_feed(config: Path) -> None:
    """Rewrite the config so a restarted daemon's feed effectively stands still: nothing moves
    between restore and the test's comparison."""
    data = orjson.loads(config.read_bytes())
    data["feed"]["speed"] = 0.0001
    config.write_bytes(orjson.dumps(data))


def _without_extras(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k not in ("trail_anchor", "closed_quantity", "exit_value")} for row in rows]


def test_kill_9_with_open_positions_then_restart_restores_everything(short_tmp: Path) -> None:
    first = DaemonProcess(_config(short_tmp, speed=6000))
    try:
        first.wait_ready()
        socket = first.socket
        # Wait until the keeper holds a position with a live take-profit ladder, then freeze it.
        wait_for(lambda: result(socket, "positions", {"id": "keeper"})["keeper"]["positions"], "a keeper position", timeout=30)
        result(socket, "deactivate", {"id": "keeper", "policy": "freeze"})
        frozen = result(socket, "positions", {"id": "keeper"})["keeper"]
        wait_for(lambda: any(p["trailing_active"] for p in result(socket, "positions", {"id": "trend"})["trend"]["positions"]), "an active trailing stop", timeout=30)
        before_status = result(socket, "status")["strategies"]
        first.stop(signal.SIGKILL)
    finally:
        first.stop()
    assert first.proc.returncode == -signal.SIGKILL
    assert first.socket.exists()  # a dead daemon leaves its socket behind

    with Journal(short_tmp / "journal.sqlite") as journal:
        journalled = {sid: _without_extras(journal.open_positions(sid)) for sid in ("trend", "keeper")}
        pending = {sid: [o["client_id"] for o in journal.pending_orders(sid)] for sid in ("trend", "keeper")}
        states = journal.strategy_states()
        last_orders = {sid: journal.last_order_number(sid) for sid in ("trend", "keeper")}
        feed_position = journal.get_meta("feed.last_ts")
    # Recorded even though both strategies trade the feed's own 1m stream.
    assert feed_position is not None and int(feed_position) > 0
    assert journalled["keeper"] == frozen["positions"]  # the frozen strategy's last status is the journal
    assert journalled["trend"], "the active strategy should hold a position at the kill"
    assert any(p["trailing_active"] for p in journalled["trend"])
    assert (states["keeper"]["state"], states["keeper"]["policy"]) == ("dormant", "freeze")
    assert states["trend"]["state"] == "active"

    # Restart with the feed effectively paused, so nothing moves between restore and comparison.
    second = DaemonProcess(_config(short_tmp, speed=0.0001))
    try:
        second.wait_ready()
        restored = result(second.socket, "positions")
        full_status = result(second.socket, "status")
        status = full_status["strategies"]
        assert full_status["clock_ts"] >= int(feed_position)  # resumed, not rewound to the file's start
        for sid in ("trend", "keeper"):
            got, want = restored[sid]["positions"], journalled[sid]
            assert got == want, (sid, [{k: (g[k], w.get(k)) for k in g if g[k] != w.get(k)} for g, w in zip(got, want)])
            assert restored[sid]["pending_orders"] == pending[sid], sid
        assert restored["keeper"]["positions"] == frozen["positions"]
        assert (status["keeper"]["state"], status["keeper"]["policy"]) == ("dormant", "freeze")
        assert status["trend"]["state"] == "active"
        assert status["keeper"]["positions"] == before_status["keeper"]["positions"]
        assert "[trend] restored from the journal" in second.log.read_text()
        # New orders continue the numbering: no client id is ever reused.
        with Journal(short_tmp / "journal.sqlite") as journal:
            assert journal.last_order_number("trend") >= last_orders["trend"]
        assert second.stop() == 0
    finally:
        second.stop()


def test_unload_without_closing_then_load_again_takes_the_book_back(short_tmp: Path) -> None:
    daemon = DaemonProcess(_config(short_tmp, speed=6000))
    try:
        daemon.wait_ready()
        socket = daemon.socket
        wait_for(lambda: result(socket, "positions", {"id": "keeper"})["keeper"]["positions"], "a keeper position", timeout=30)
        result(socket, "deactivate", {"id": "keeper", "policy": "freeze"})
        held = result(socket, "positions", {"id": "keeper"})["keeper"]["positions"]
        assert result(socket, "unload", {"id": "keeper"})["state"] == "unloaded"
        assert result(socket, "load", {"file": "strategies/keeper.json"})["state"] == "dormant"
        keeper = result(socket, "status")["strategies"]["keeper"]
        assert (keeper["state"], keeper["policy"]) == ("dormant", "manage")  # its stops are enforced again
        back = result(socket, "positions", {"id": "keeper"})["keeper"]["positions"]
        assert [p["position_id"] for p in back] == [p["position_id"] for p in held]
        assert [(p["quantity"], p["stop_loss"], p["take_profit"]) for p in back] == [(p["quantity"], p["stop_loss"], p["take_profit"]) for p in held]
        result(socket, "activate", {"id": "keeper"})
        time.sleep(1.5)  # let it trade on with the restored book
        with sqlite3.connect(short_tmp / "journal.sqlite") as db:
            reused = db.execute(
                "SELECT client_id, COUNT(*) FROM fills WHERE strategy_id = 'keeper' GROUP BY client_id HAVING COUNT(*) > 1"
            ).fetchall()
            fills = db.execute("SELECT COUNT(*) FROM fills WHERE strategy_id = 'keeper'").fetchone()[0]
        assert fills > len(held) and reused == []  # it kept trading, and no client id was used twice
    finally:
        assert daemon.stop() == 0


def test_the_kill_switch_survives_a_crash_until_released(short_tmp: Path) -> None:
    config = _config(short_tmp, speed=6000)
    data = orjson.loads(config.read_bytes())
    data["risk"] = {"max_daily_loss": 0.5}  # the first losing trade trips it
    config.write_bytes(orjson.dumps(data))
    first = DaemonProcess(config)
    try:
        first.wait_ready()
        wait_for(lambda: result(first.socket, "status")["kill_switch"], "the kill switch", timeout=30)
        first.stop(signal.SIGKILL)
    finally:
        first.stop()
    _pause_feed(config)
    second = DaemonProcess(config)
    try:
        second.wait_ready()
        status = result(second.socket, "status")
        assert status["kill_switch"] is True and status["health"] == "degraded"
        assert result(second.socket, "risk-reset") == {"kill_switch": False, "was": True}
        assert result(second.socket, "status")["kill_switch"] is False
    finally:
        assert second.stop() == 0
    third = DaemonProcess(config)  # released for good: not engaged again after a restart
    try:
        third.wait_ready()
        assert result(third.socket, "status")["kill_switch"] is False
    finally:
        assert third.stop() == 0


def test_runtime_set_survives_a_restart_and_reload_returns_to_the_file(short_tmp: Path) -> None:
    config = _config(short_tmp, speed=0.0001)
    first = DaemonProcess(config)
    try:
        first.wait_ready()
        assert result(first.socket, "set", {"id": "trend", "path": "exits.stop_loss_pct", "value": 0.9})["changed"] == ["exits"]
        assert result(first.socket, "set", {"id": "trend", "path": "quantity", "value": 0.3})["changed"] == ["quantity"]
    finally:
        assert first.stop() == 0
    second = DaemonProcess(config)
    try:
        second.wait_ready()
        running = result(second.socket, "strategies")["loaded"]["trend"]["config"]
        assert (running["quantity"], running["exits"]["stop_loss_pct"]) == (0.3, 0.9)
        assert result(second.socket, "reload", {"id": "trend"})["changed"] == ["exits", "quantity"]
        running = result(second.socket, "strategies")["loaded"]["trend"]["config"]
        assert (running["quantity"], running["exits"]["stop_loss_pct"]) == (0.1, 0.4)
    finally:
        assert second.stop() == 0
    third = DaemonProcess(config)
    try:
        third.wait_ready()
        assert result(third.socket, "strategies")["loaded"]["trend"]["config"]["quantity"] == 0.1
    finally:
        assert third.stop() == 0


def test_daily_loss_tallies_survive_a_crash(short_tmp: Path) -> None:
    config = _config(short_tmp, speed=6000)
    first = DaemonProcess(config)
    try:
        first.wait_ready()
        wait_for(lambda: result(first.socket, "status")["strategies"]["trend"]["day_pnl"] < 0, "a losing day", timeout=30)
        first.stop(signal.SIGKILL)
    finally:
        first.stop()
    with Journal(short_tmp / "journal.sqlite") as journal:
        journalled = orjson.loads(journal.get_meta("risk.day:trend") or "{}")
    assert journalled["pnl"] < 0
    _pause_feed(config)
    second = DaemonProcess(config)
    try:
        second.wait_ready()
        assert result(second.socket, "status")["strategies"]["trend"]["day_pnl"] == journalled["pnl"]
    finally:
        assert second.stop() == 0
