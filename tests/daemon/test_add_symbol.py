"""add-symbol: a symbol subscribed mid-session has warm history before any candle is routed to it."""
from __future__ import annotations

import orjson

from tests.control.client import call, result
from tests.daemon.process import DaemonProcess
from tests.support import BTC_1M


def test_add_symbol_warms_history_then_routes(stepped: DaemonProcess) -> None:
    # The feed stands still between steps: nothing is routed to the new symbol until the test steps.
    bad = stepped.folder / "bad_1m.csv"
    bad.write_text("ts_ms,open,high,low,close,volume\n1640991600000,10,9,12,11,1\n")
    refused = call(stepped.socket, "add-symbol", {"symbol": "ETH/USD", "file": "bad_1m.csv"})
    assert not refused["ok"] and refused["error"]["code"] == "invalid_config"
    assert "bad_1m.csv: line 2" in refused["error"]["message"]
    missing = call(stepped.socket, "add-symbol", {"symbol": "ETH/USD", "file": "nope.csv"})
    assert missing["error"]["code"] == "bad_args"
    # The same recorded BTC file under another name: its past candles become history. Copied:
    # a client may name files in the config's folder only (control.allowed_paths widens that).
    (stepped.folder / "eth_1m.csv").write_bytes(BTC_1M.read_bytes())
    added = result(stepped.socket, "add-symbol", {"symbol": "ETH/USD", "file": "eth_1m.csv"})
    assert added["timeframe"] == "1m" and added["history"] == 3_000  # every candle closed by now: the backfill's
    again = call(stepped.socket, "add-symbol", {"symbol": "ETH/USD", "file": "eth_1m.csv"})
    assert again["error"]["code"] == "invalid_state"
    spec = orjson.loads((stepped.folder / "strategies" / "ema_cross.json").read_bytes())
    spec.update({"id": "eth_5m", "symbol": "ETH/USD", "timeframe": "5m"})
    (stepped.folder / "strategies" / "eth_5m.json").write_bytes(orjson.dumps(spec))
    assert result(stepped.socket, "load", {"file": "strategies/eth_5m.json", "activate": True})["state"] == "active"
    # Warm at once: its 5m EMAs were built from the preloaded 1m history before any routing.
    assert result(stepped.socket, "status")["strategies"]["eth_5m"]["warm"] is True
    assert result(stepped.socket, "metrics")["strategies"]["eth_5m"]["candles"] == 0
    stepped.step(30)  # fifteen 1m candles of each of the two symbols; the backfill ended on a 5m boundary
    assert result(stepped.socket, "metrics")["strategies"]["eth_5m"]["candles"] == 3
    status = result(stepped.socket, "status")
    assert status["strategies"]["eth_5m"]["symbols"] == ["ETH/USD"] and status["health"] == "ok"
