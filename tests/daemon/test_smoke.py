"""The daemon starts, trades on its clock-driven feed, answers status, and stops cleanly."""
from __future__ import annotations

import stat
import time

from tests.daemon.client import result
from tests.daemon.conftest import DaemonProcess


def test_daemon_runs_answers_and_stops_cleanly(daemon: DaemonProcess) -> None:
    assert stat.S_IMODE(daemon.socket.stat().st_mode) == 0o600
    status = result(daemon.socket, "status")
    assert status["health"] == "ok"
    assert set(status["strategies"]) == {"ema_cross", "rsi_reversion"}
    assert all(s["state"] == "active" for s in status["strategies"].values())
    first = status["feed"]["candles"]
    time.sleep(1.0)
    later = result(daemon.socket, "status")
    assert later["feed"]["candles"] > first  # clock-driven: candles keep arriving
    assert later["clock_ts"] > status["clock_ts"]
    assert daemon.stop() == 0
    assert not daemon.socket.exists()
    assert "stopped" in daemon.log.read_text()
