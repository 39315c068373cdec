"""The daemon starts, trades on its clock-driven feed, answers status, and stops cleanly."""
from __future__ import annotations

import stat
from typing import Any

from tests.control.client import result, wait_for
from tests.daemon.process import DaemonProcess


def test_daemon_runs_answers_and_stops_cleanly(daemon: DaemonProcess) -> None:
    assert stat.S_IMODE(daemon.socket.stat().st_mode) == 0o600
    status = result(daemon.socket, "status")
    assert status["health"] == "ok"
    assert set(status["strategies"]) == {"ema_cross", "rsi_reversion"}
    assert all(s["state"] == "active" for s in status["strategies"].values())
    # Clock-driven (feed.speed): candles keep arriving with nobody asking, and the candle clock moves.
    later = wait_for(lambda: _moved_on(daemon, status), "the clock-driven feed to publish more candles")
    assert later["clock_ts"] > status["clock_ts"]
    assert daemon.stop() == 0
    assert not daemon.socket.exists()
    assert "stopped" in daemon.log.read_text()


def _moved_on(daemon: DaemonProcess, before: dict[str, Any]) -> dict[str, Any] | None:
    """The status once the feed has published more candles than in `before`."""
    status: dict[str, Any] = result(daemon.socket, "status")
    return status if status["feed"]["candles"] > before["feed"]["candles"] else None
