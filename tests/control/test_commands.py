"""Control commands against a real daemon: load/activate/deactivate/unload, reload, set, validate, `bot ctl`."""
from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from websockets.asyncio.client import unix_connect

from tests.control.client import call, result
from tests.daemon.process import DaemonProcess

# ema_cross.json retuned to trade often: on the 1m stream it opens a position within a few dozen
# candles and flips every few candles.
FAST = {
    "id": "ema_fast",
    "timeframe": "1m",
    "analyzers": [{"type": "ema_cross", "weight": 1.0, "params": {"fast": 5, "slow": 13}}],
}


# -- helpers ----------------------------------------------------------------------------------------
def write_strategy(folder: Path, name: str, **fields: Any) -> Path:
    """strategies/<name>.json in the daemon's folder: the repo's ema_cross.json with `fields` replaced."""
    spec = orjson.loads((folder / "strategies" / "ema_cross.json").read_bytes())
    spec.update(fields)
    path = folder / "strategies" / f"{name}.json"
    path.write_bytes(orjson.dumps(spec, option=orjson.OPT_INDENT_2))
    return path


def error_of(reply: dict[str, Any], code: str) -> str:
    """The message of an error reply that must carry `code`."""
    assert reply["ok"] is False, reply
    assert reply["error"]["code"] == code, reply
    message: str = reply["error"]["message"]
    return message


def strategy_status(sock: Path, sid: str) -> dict[str, Any] | None:
    """One strategy's entry in `status`, or None when it is not loaded."""
    status: dict[str, Any] | None = result(sock, "status")["strategies"].get(sid)
    return status


def open_positions(sock: Path, sid: str) -> list[dict[str, Any]]:
    """The open positions of one strategy."""
    positions: list[dict[str, Any]] = result(sock, "positions", {"id": sid})[sid]["positions"]
    return positions


def pipelined(sock: Path, *requests: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Send several requests in one go on one connection; the replies."""

    async def go() -> list[dict[str, Any]]:
        with anyio.fail_after(10):
            async with unix_connect(str(sock)) as ws:
                for i, (cmd, args) in enumerate(requests):
                    await ws.send(orjson.dumps({"id": i, "cmd": cmd, "args": args}).decode())
                replies = [orjson.loads(await ws.recv()) for _ in requests]
        assert [r["id"] for r in replies] == list(range(len(requests)))
        return replies

    return anyio.run(go)


def freeze_with_position(daemon: DaemonProcess, sid: str) -> list[dict[str, Any]]:
    """Step a stepped daemon until an active strategy holds a position, then freeze it there; its positions."""
    sock = daemon.socket
    daemon.step_until(lambda: open_positions(sock, sid), f"{sid} position")
    assert result(sock, "deactivate", {"id": sid, "policy": "freeze"}) == {"id": sid, "state": "dormant", "policy": "freeze"}
    positions = open_positions(sock, sid)
    assert positions, f"{sid} was frozen without the position it held"  # no candle came in between
    return positions


def frozen_view(sock: Path, sid: str) -> dict[str, Any]:
    """What must not move while a strategy is frozen: its status entry, positions and processed candles."""
    metrics = result(sock, "metrics")["strategies"][sid]
    return {
        "status": strategy_status(sock, sid),
        "positions": result(sock, "positions", {"id": sid}),
        "candles": metrics["candles"],
        "errors": metrics["errors"],
    }


def ctl(sock: Path, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """`bot ctl --socket SOCK ARGS...` as a child process."""
    return subprocess.run(
        [sys.executable, "-m", "bot", "ctl", "--socket", str(sock), *args],
        capture_output=True,
        check=False,
        text=True,
        timeout=timeout,
    )


# -- 6. load / activate / deactivate / unload -----------------------------------------------------
def test_lifecycle_replies_agree_with_status(stepped: DaemonProcess) -> None:
    daemon = stepped
    sock = daemon.socket
    write_strategy(daemon.folder, "ema_fast", **FAST)

    reply = result(sock, "load", {"file": "strategies/ema_fast.json"})
    assert reply == {"id": "ema_fast", "state": "dormant"}
    status = strategy_status(sock, "ema_fast")
    assert status is not None
    assert (status["state"], status["policy"], status["positions"]) == ("dormant", None, 0)
    assert (status["symbols"], status["timeframe"]) == (["BTC/USD"], "1m")
    loaded = result(sock, "strategies")["loaded"]
    assert loaded["ema_fast"]["state"] == "dormant"
    assert loaded["ema_fast"]["file"].endswith("strategies/ema_fast.json")
    # Loading the same id again is refused; the loaded one is untouched.
    assert "already loaded" in error_of(call(sock, "load", {"file": "strategies/ema_fast.json"}), "invalid_state")
    assert result(sock, "metrics")["strategies"]["ema_fast"]["candles"] == 0  # dormant: nothing routed

    assert result(sock, "activate", {"id": "ema_fast"}) == {"id": "ema_fast", "state": "active"}
    assert strategy_status(sock, "ema_fast")["state"] == "active"  # type: ignore[index]
    assert "already active" in error_of(call(sock, "activate", {"id": "ema_fast"}), "invalid_state")
    assert strategy_status(sock, "ema_fast")["state"] == "active"  # type: ignore[index]
    daemon.step(3)
    assert result(sock, "metrics")["strategies"]["ema_fast"]["candles"] == 3

    # manage: dormant, positions still looked after.
    reply = result(sock, "deactivate", {"id": "ema_fast", "policy": "manage"})
    assert reply == {"id": "ema_fast", "state": "dormant", "policy": "manage"}
    status = strategy_status(sock, "ema_fast")
    assert (status["state"], status["policy"]) == ("dormant", "manage")  # type: ignore[index]
    assert "not active" in error_of(call(sock, "deactivate", {"id": "ema_fast"}), "invalid_state")

    # freeze: positions left exactly as they are while the feed goes on.
    result(sock, "activate", {"id": "ema_fast"})
    frozen = freeze_with_position(daemon, "ema_fast")
    status = strategy_status(sock, "ema_fast")
    assert (status["state"], status["policy"], status["positions"]) == ("dormant", "freeze", len(frozen))  # type: ignore[index]
    daemon.step(30)  # the feed moves on
    assert open_positions(sock, "ema_fast") == frozen

    # close: from holding a position, deactivate closes it at the next candle and trades no more.
    replies = pipelined(sock, ("activate", {"id": "ema_fast"}), ("deactivate", {"id": "ema_fast", "policy": "close"}))
    assert replies[0]["result"] == {"id": "ema_fast", "state": "active"}
    assert replies[1]["result"] == {"id": "ema_fast", "state": "dormant", "policy": "close"}
    daemon.step(1)
    assert open_positions(sock, "ema_fast") == []
    status = strategy_status(sock, "ema_fast")
    assert (status["state"], status["policy"], status["positions"]) == ("dormant", "close", 0)  # type: ignore[index]

    # unload with close_positions: the snapshot shows the position closed; the strategy is gone.
    result(sock, "activate", {"id": "ema_fast"})
    held = freeze_with_position(daemon, "ema_fast")
    snapshot = result(sock, "unload", {"id": "ema_fast", "close_positions": True})
    assert snapshot["strategy_id"] == "ema_fast"
    assert snapshot["positions"] == [] and held
    assert snapshot["pending_orders"] == []
    assert snapshot["closed_trades"] >= 1
    assert strategy_status(sock, "ema_fast") is None
    assert "ema_fast" not in result(sock, "metrics")["strategies"]
    strategies = result(sock, "strategies")
    assert "ema_fast" not in strategies["loaded"]
    assert strategies["available"]["ema_fast.json"]["valid"] is True
    assert "ema_fast" in error_of(call(sock, "positions", {"id": "ema_fast"}), "unknown_strategy")
    assert "ema_fast" in error_of(call(sock, "unload", {"id": "ema_fast"}), "unknown_strategy")

    # It can be loaded again afterwards, fresh.
    assert result(sock, "load", {"file": "strategies/ema_fast.json", "activate": True}) == {"id": "ema_fast", "state": "active"}
    assert result(sock, "metrics")["strategies"]["ema_fast"]["errors"] == 0

    # The repo's strategies went on untouched throughout.
    status = result(sock, "status")
    assert status["health"] == "ok"
    assert {sid: s["state"] for sid, s in status["strategies"].items()} == {
        "ema_cross": "active",
        "rsi_reversion": "active",
        "ema_fast": "active",
    }


def test_load_errors_name_file_and_field(daemon: DaemonProcess) -> None:
    sock = daemon.socket
    bad = write_strategy(daemon.folder, "bad", id="bad_one", quantity=-1)
    message = error_of(call(sock, "load", {"file": "strategies/bad.json"}), "invalid_config")
    assert str(bad) in message and "quantity" in message
    message = error_of(call(sock, "load", {"file": "strategies/missing.json"}), "invalid_config")
    assert "missing.json" in message and "not found" in message
    (daemon.folder / "strategies" / "broken.json").write_text('{"id": "broken", ')
    message = error_of(call(sock, "load", {"file": "strategies/broken.json"}), "invalid_config")
    assert "broken.json" in message and "JSON" in message
    # A symbol without a feed cannot be traded.
    write_strategy(daemon.folder, "eth", id="eth_one", symbol="ETH/BTC")
    assert "ETH/BTC" in error_of(call(sock, "load", {"file": "strategies/eth.json"}), "invalid_state")
    assert set(result(sock, "status")["strategies"]) == {"ema_cross", "rsi_reversion"}


def test_switch_moves_trading_in_one_step(daemon: DaemonProcess) -> None:
    sock = daemon.socket
    write_strategy(daemon.folder, "ema_fast", **FAST)
    result(sock, "load", {"file": "strategies/ema_fast.json"})
    reply = result(sock, "switch", {"from": "ema_cross", "to": "ema_fast", "policy": "freeze"})
    assert reply == {"from": "ema_cross", "to": "ema_fast", "policy": "freeze"}
    status = result(sock, "status")["strategies"]
    assert (status["ema_cross"]["state"], status["ema_cross"]["policy"]) == ("dormant", "freeze")
    assert (status["ema_fast"]["state"], status["ema_fast"]["policy"]) == ("active", None)
    # The source is no longer active, so switching from it again is refused.
    assert "not active" in error_of(call(sock, "switch", {"from": "ema_cross", "to": "rsi_reversion"}), "invalid_state")
    assert "nope" in error_of(call(sock, "switch", {"from": "ema_fast", "to": "nope"}), "unknown_strategy")


def test_unload_reply_reports_the_unloaded_state(daemon: DaemonProcess) -> None:
    snapshot = result(daemon.socket, "unload", {"id": "rsi_reversion"})
    assert strategy_status(daemon.socket, "rsi_reversion") is None
    assert snapshot["state"] == "unloaded"


@pytest.mark.parametrize("cmd", ["load", "validate"])
def test_file_name_with_nul_byte_is_bad_args(daemon: DaemonProcess, cmd: str) -> None:
    reply = call(daemon.socket, cmd, {"file": "strategies/ema\x00cross.json"})
    assert "not a usable file name" in error_of(reply, "bad_args")
    assert result(daemon.socket, "status")["health"] == "ok"


# -- 7. reload ------------------------------------------------------------------------------------
def test_reload_applies_runtime_fields_and_keeps_positions(stepped: DaemonProcess) -> None:
    daemon = stepped
    sock = daemon.socket
    path = write_strategy(daemon.folder, "ema_fast", **FAST)
    result(sock, "load", {"file": "strategies/ema_fast.json", "activate": True})
    held = freeze_with_position(daemon, "ema_fast")
    assert all(p["quantity"] == pytest.approx(0.1) for p in held)
    before = frozen_view(sock, "ema_fast")
    assert before["candles"] > 0

    # Only the quantity changes: applied in place, positions and counters survive.
    write_strategy(daemon.folder, "ema_fast", **FAST, quantity=0.2)
    assert result(sock, "reload", {"id": "ema_fast"}) == {"id": "ema_fast", "changed": ["quantity"]}
    assert frozen_view(sock, "ema_fast") == before

    # An invalid value: refused with file and field, the running strategy untouched.
    write_strategy(daemon.folder, "ema_fast", **FAST, quantity=-1)
    message = error_of(call(sock, "reload", {"id": "ema_fast"}), "invalid_config")
    assert str(path) in message and "quantity" in message
    assert frozen_view(sock, "ema_fast") == before
    assert result(sock, "strategies")["available"]["ema_fast.json"]["valid"] is False
    # It still runs with 0.2: setting 0.2 changes nothing.
    assert result(sock, "set", {"id": "ema_fast", "path": "quantity", "value": 0.2})["changed"] == []

    # A field that needs a rebuild: refused, naming it.
    write_strategy(daemon.folder, "ema_fast", **{**FAST, "timeframe": "5m"}, quantity=0.2)
    message = error_of(call(sock, "reload", {"id": "ema_fast"}), "invalid_config")
    assert "timeframe" in message
    assert frozen_view(sock, "ema_fast") == before

    write_strategy(daemon.folder, "ema_fast", **FAST, quantity=0.2)
    assert result(sock, "reload", {"id": "ema_fast"}) == {"id": "ema_fast", "changed": []}

    # Trading again, new positions use the reloaded quantity (the frozen one kept 0.1).
    result(sock, "activate", {"id": "ema_fast"})
    new = daemon.step_until(
        lambda: [p for p in open_positions(sock, "ema_fast") if p["position_id"] not in {h["position_id"] for h in held}],
        "position opened after the reload",
    )
    assert new[0]["initial_quantity"] == pytest.approx(0.2)


def test_reload_of_an_active_strategy_keeps_its_counters(stepped: DaemonProcess) -> None:
    daemon = stepped
    sock = daemon.socket
    daemon.step(10)  # two of its 5m candles
    before = result(sock, "metrics")["strategies"]["rsi_reversion"]
    spec = orjson.loads((daemon.folder / "strategies" / "rsi_reversion.json").read_bytes())
    spec["quantity"] = 0.3
    (daemon.folder / "strategies" / "rsi_reversion.json").write_bytes(orjson.dumps(spec))
    assert result(sock, "reload", {"id": "rsi_reversion"}) == {"id": "rsi_reversion", "changed": ["quantity"]}
    after = result(sock, "metrics")["strategies"]["rsi_reversion"]
    assert after["candles"] == before["candles"] == 2  # not reset by a rebuild
    assert after["errors"] == 0
    assert strategy_status(sock, "rsi_reversion")["state"] == "active"  # type: ignore[index]
    # An unchanged file changes nothing; an unknown id is refused.
    assert result(sock, "reload", {"id": "ema_cross"}) == {"id": "ema_cross", "changed": []}
    assert "nope" in error_of(call(sock, "reload", {"id": "nope"}), "unknown_strategy")


# -- 8. set ---------------------------------------------------------------------------------------
def test_set_one_parameter_by_dotted_path(stepped: DaemonProcess) -> None:
    daemon = stepped
    sock = daemon.socket
    write_strategy(daemon.folder, "ema_fast", **FAST)
    result(sock, "load", {"file": "strategies/ema_fast.json", "activate": True})
    seen = {p["position_id"] for p in open_positions(sock, "ema_fast")}

    changed = {"id": "ema_fast", "changed": ["exits"], "path": "exits.stop_loss_pct", "old": None, "new": 2.0}
    assert result(sock, "set", {"id": "ema_fast", "path": "exits.stop_loss_pct", "value": 2.0}) == changed
    assert result(sock, "set", {"id": "ema_fast", "path": "exits.stop_loss_pct", "value": 2.0}) == {**changed, "changed": [], "old": 2.0}

    # Invalid values are bad_args naming the path; nothing changes.
    for path, value in [("exits.stop_loss_pct", 150), ("exits.stop_loss_pct", "high"), ("quantity", -1), ("exits.nope", 1), ("nope", 1)]:
        message = error_of(call(sock, "set", {"id": "ema_fast", "path": path, "value": value}), "bad_args")
        assert path in message, message
    # Fields that need a rebuild are refused as invalid_config, naming the field.
    assert "timeframe" in error_of(call(sock, "set", {"id": "ema_fast", "path": "timeframe", "value": "5m"}), "invalid_config")
    assert "symbol" in error_of(call(sock, "set", {"id": "ema_fast", "path": "symbol", "value": "ETH/BTC"}), "invalid_config")
    assert "nope" in error_of(call(sock, "set", {"id": "nope", "path": "quantity", "value": 1}), "unknown_strategy")
    assert result(sock, "set", {"id": "ema_fast", "path": "exits.stop_loss_pct", "value": 2.0})["changed"] == []
    assert result(sock, "set", {"id": "ema_fast", "path": "quantity", "value": 0.1})["changed"] == []

    # Positions opened from now on carry the new stop, 2% below entry.
    new = daemon.step_until(lambda: [p for p in open_positions(sock, "ema_fast") if p["position_id"] not in seen], "position opened after the set")
    assert new[0]["stop_loss"] == pytest.approx(new[0]["entry_price"] * 0.98, rel=1e-6)
    status = strategy_status(sock, "ema_fast")
    assert (status["state"], status["last_error"]) == ("active", None)  # type: ignore[index]


# -- 9. validate ----------------------------------------------------------------------------------
def test_validate_strategy_and_config_files(daemon: DaemonProcess) -> None:
    sock = daemon.socket
    before = result(sock, "status")["strategies"]
    assert result(sock, "validate", {"file": "strategies/ema_cross.json"}) == {"valid": True, "kind": "strategy", "id": "ema_cross"}

    bad = write_strategy(daemon.folder, "bad", id="bad_one", quantity=-1, timeframe="7x")
    verdict = result(sock, "validate", {"file": "strategies/bad.json"})
    assert verdict["valid"] is False
    fields = {p["field"] for p in verdict["problems"]}
    assert {"quantity", "timeframe"} <= fields, verdict
    assert all(p["file"] == str(bad) for p in verdict["problems"]), verdict

    verdict = result(sock, "validate", {"file": "strategies/missing.json"})
    assert verdict["valid"] is False and "not found" in verdict["problems"][0]["reason"]

    assert result(sock, "validate", {"file": "config.json"}) == {"valid": True, "kind": "config", "strategies": ["ema_cross", "rsi_reversion"]}
    config = orjson.loads(daemon.config.read_bytes())
    config["feed"]["speed"] = -1
    config["strategies"].append({"file": "strategies/bad.json"})
    (daemon.folder / "other.json").write_bytes(orjson.dumps(config))
    verdict = result(sock, "validate", {"file": "other.json"})
    assert verdict["valid"] is False
    assert any(p["field"] == "feed.speed" and p["file"].endswith("other.json") for p in verdict["problems"]), verdict

    # Validating applies nothing.
    assert result(sock, "status")["strategies"].keys() == before.keys()
    assert "bad_one" not in result(sock, "strategies")["loaded"]


# -- shutdown -------------------------------------------------------------------------------------
def test_shutdown_command_stops_the_daemon(daemon: DaemonProcess) -> None:
    assert result(daemon.socket, "shutdown") == {"stopping": True}
    daemon.proc.wait(20)
    assert daemon.proc.returncode == 0
    assert not daemon.socket.exists()


# -- 10. bot ctl ----------------------------------------------------------------------------------
def test_ctl_cli(daemon: DaemonProcess) -> None:
    sock = daemon.socket
    done = ctl(sock, "status")
    assert done.returncode == 0, done.stderr
    assert "ema_cross" in done.stdout and "rsi_reversion" in done.stdout
    assert "health ok" in done.stdout

    done = ctl(sock, "--json", "status")
    assert done.returncode == 0, done.stderr
    reply = orjson.loads(done.stdout)
    assert reply["ok"] is True
    assert set(reply["result"]["strategies"]) == {"ema_cross", "rsi_reversion"}

    done = ctl(sock, "activate", "nope")
    assert done.returncode == 1
    assert done.stderr.splitlines() == ["error: strategy 'nope' is not loaded"], done.stderr

    # --config finds the socket from the config file.
    done = subprocess.run(
        [sys.executable, "-m", "bot", "ctl", "--config", str(daemon.config), "deactivate", "ema_cross", "--policy", "freeze"],
        capture_output=True,
        check=False,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    # The feed plays on: ema_cross may or may not hold a position at that moment.
    assert re.fullmatch(r"ema_cross: active -> dormant \(policy freeze, (no position|1 position left as they are, no exit enforced)\)\n", done.stdout), done.stdout
    assert strategy_status(sock, "ema_cross")["policy"] == "freeze"  # type: ignore[index]


def test_ctl_without_a_daemon_exits_3(short_tmp: Path) -> None:
    missing = short_tmp / "nonexistent.sock"
    done = ctl(missing, "status")
    assert done.returncode == 3
    assert "not running" in done.stderr and str(missing) in done.stderr
    assert "Traceback" not in done.stderr

    # A socket file nobody listens on (a daemon that died) is the same.
    stale = short_tmp / "stale.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(stale))
    done = ctl(stale, "status")
    assert done.returncode == 3
    assert "not running" in done.stderr and "Traceback" not in done.stderr


def test_ctl_reports_a_closed_connection_without_a_traceback(daemon: DaemonProcess) -> None:
    done = ctl(daemon.socket, "set", "ema_cross", "description", "x" * 70_000)
    assert done.returncode == 3  # the daemon hung up on a message over its limit: no conversation
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "error" in done.stderr
    assert result(daemon.socket, "status")["health"] == "ok"


def test_ctl_exits_after_sigterm_of_the_daemon(daemon: DaemonProcess) -> None:
    """After the daemon stops, ctl reports it is not running (the socket file is gone)."""
    assert result(daemon.socket, "status")["health"] == "ok"  # fully up: its signal handler is in place
    daemon.proc.send_signal(signal.SIGTERM)
    daemon.proc.wait(20)
    assert daemon.proc.returncode == 0
    done = ctl(daemon.socket, "status")
    assert done.returncode == 3 and "not running" in done.stderr
