"""`bot ctl` for people: a table or one line per command, --json in either position, and where it finds the daemon."""
from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from tests.control.client import call, result
from tests.control.test_commands import FAST, open_positions, write_strategy
from tests.daemon.process import DaemonProcess
from tests.support import BTC_1M

# A float's noise (47479.01099999999) or a raw epoch-milliseconds time in what ctl prints.
FLOAT_NOISE = re.compile(r"\d\.\d{9,}")
EPOCH_MS = re.compile(r"\b1[5-9]\d{11}\b")
UTC_TIME = re.compile(r"\b20\d\d-\d\d-\d\d \d\d:\d\d(:\d\d(\.\d{3})?)?Z")


def ctl(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`bot ctl ARGS...` as a child process (BOT_SOCKET unset unless `env` sets it)."""
    environment = {key: value for key, value in os.environ.items() if key != "BOT_SOCKET"} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot", "ctl", *args], cwd=cwd, env=environment, capture_output=True, check=False, text=True, timeout=60
    )


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The one line a successful command printed (and nothing on stderr)."""
    assert done.returncode == 0 and done.stderr == "", done
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout
    return lines[0]


def human(text: str) -> None:
    """Output for people: not JSON, no float noise, no epoch milliseconds."""
    assert not text.lstrip().startswith("{"), text
    assert not FLOAT_NOISE.search(text), text
    assert not EPOCH_MS.search(text), text


def test_json_is_taken_before_and_after_the_subcommand(stepped: DaemonProcess) -> None:
    sock = str(stepped.socket)
    for args in (["strategies"], ["positions"], ["validate", "strategies/ema_cross.json"], ["metrics"]):
        before = ctl("--socket", sock, "--json", *args)
        after = ctl("--socket", sock, *args, "--json")
        assert before.returncode == after.returncode == 0, (before, after)
        assert orjson.loads(before.stdout) == orjson.loads(after.stdout), args
        assert orjson.loads(after.stdout)["ok"] is True
    # status too (its uptime moves: compared without it), and --socket after the subcommand.
    replies = [orjson.loads(ctl(*args).stdout)["result"] for args in (["--socket", sock, "--json", "status"], ["status", "--json", "--socket", sock])]
    for reply in replies:
        reply.pop("uptime_s")
    assert replies[0] == replies[1]
    # An unknown argument is the subcommand's own usage error, under its own name.
    done = ctl("--socket", sock, "status", "--bogus")
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == "bot ctl status: error: unrecognized arguments: --bogus", done.stderr


def test_every_command_prints_a_line_or_a_table(stepped: DaemonProcess) -> None:
    daemon = stepped
    sock = str(daemon.socket)
    folder = daemon.folder
    write_strategy(folder, "ema_fast", **FAST)

    assert one_line(ctl("--socket", sock, "load", "strategies/ema_fast.json", "--activate")) == "ema_fast: loaded from strategies/ema_fast.json (active)"
    daemon.step_until(lambda: open_positions(daemon.socket, "ema_fast"), "ema_fast position")
    assert one_line(ctl("--socket", sock, "deactivate", "ema_fast")) == "ema_fast: active -> dormant (policy manage, 1 position kept, exits still enforced)"
    assert one_line(ctl("--socket", sock, "activate", "ema_fast")) == "ema_fast: dormant -> active"
    assert one_line(ctl("--socket", sock, "deactivate", "rsi_reversion", "--policy", "freeze")) == "rsi_reversion: active -> dormant (policy freeze, no position)"
    done = ctl("--socket", sock, "switch", "ema_fast", "rsi_reversion", "--policy", "freeze")
    assert done.returncode == 0 and done.stdout.splitlines() == [
        "ema_fast: active -> dormant (policy freeze, 1 position left as they are, no exit enforced)",
        "rsi_reversion: dormant -> active",
    ], done
    assert one_line(ctl("--socket", sock, "reload", "ema_cross")) == "ema_cross: reloaded, nothing changed"
    assert one_line(ctl("--socket", sock, "set", "ema_cross", "quantity", "0.25")) == "ema_cross: quantity 0.1 -> 0.25"
    assert one_line(ctl("--socket", sock, "set", "ema_cross", "exits.stop_loss_pct", "1.5")) == "ema_cross: exits.stop_loss_pct null -> 1.5"
    assert one_line(ctl("--socket", sock, "validate", "strategies/ema_cross.json")) == "strategies/ema_cross.json: OK (strategy ema_cross)"
    assert one_line(ctl("--socket", sock, "validate", "config.json")) == "config.json: OK (config, 2 strategies: ema_cross, rsi_reversion)"
    line = one_line(ctl("--socket", sock, "unload", "ema_fast"))
    assert re.fullmatch(r"ema_fast: dormant -> unloaded \(1 open position kept in the journal until it is loaded again; equity [\d,]+\.\d\d USD\)", line), line
    (folder / "eth_1m.csv").write_bytes(BTC_1M.read_bytes())
    line = one_line(ctl("--socket", sock, "add-symbol", "ETH/USD", "eth_1m.csv"))
    assert re.fullmatch(r"ETH/USD: added, 1m candles from eth_1m.csv \([\d,]+ candles of history\)", line), line
    assert one_line(ctl("--socket", sock, "remove-symbol", "ETH/USD")) == "ETH/USD: removed (its feed stopped)"
    assert one_line(ctl("--socket", sock, "risk-reset")) == "kill switch was not engaged (nothing to release)"

    # Refusals: one `error:` line per problem on stderr, exit 1, nothing on stdout.
    write_strategy(folder, "bad", id="bad_one", quantity=-1, timeframe="7x")
    done = ctl("--socket", sock, "validate", "strategies/bad.json")
    assert (done.returncode, done.stdout) == (1, ""), done
    bad = folder / "strategies" / "bad.json"
    assert done.stderr.splitlines() == [
        f"error: {bad}: timeframe: unknown timeframe '7x' (known: 1m, 3m, 5m, 15m, 30m, 1h, 2h, 4h, 6h, 12h, 1d)",
        f"error: {bad}: quantity: Input should be greater than 0",
    ], done.stderr
    done = ctl("--socket", sock, "activate", "nope")
    assert (done.returncode, done.stdout, done.stderr.splitlines()) == (1, "", ["error: strategy 'nope' is not loaded"]), done

    assert one_line(ctl("--socket", sock, "shutdown")) == "daemon stopping (it finishes queued candles, then exits)"
    assert daemon.proc.wait(30) == 0


def test_tables_show_times_in_utc_and_prices_without_float_noise(stepped: DaemonProcess) -> None:
    daemon = stepped
    sock = str(daemon.socket)
    write_strategy(daemon.folder, "ema_fast", **FAST)
    write_strategy(daemon.folder, "broken", id="broken", quantity=-1)
    result(daemon.socket, "load", {"file": "strategies/ema_fast.json", "activate": True})
    daemon.step_until(lambda: open_positions(daemon.socket, "ema_fast"), "ema_fast position")

    # Files are shown relative to the folder ctl runs in (here the daemon's).
    done = ctl("--socket", sock, "strategies", cwd=daemon.folder)
    assert done.returncode == 0, done
    human(done.stdout)
    raw = ctl("--socket", sock, "strategies", "--json").stdout
    assert len(done.stdout) < len(raw) / 2, (len(done.stdout), len(raw))
    rows = {line.split("│")[1].strip(): [cell.strip() for cell in line.split("│")[2:-1]] for line in done.stdout.splitlines() if line.startswith("│")}
    assert rows["ema_fast"] == ["active", "BTC/USD", "1m", "declarative", "strategies/ema_fast.json"], rows
    assert rows["rsi_reversion.json"] == ["rsi_reversion", "BTC/USD", "5m", "declarative", "valid"], rows
    assert rows["broken.json"] == ["", "", "", "", "invalid (1 problem)"], rows
    assert f"{daemon.folder / 'strategies' / 'broken.json'}: quantity: Input should be greater than 0" in done.stdout

    done = ctl("--socket", sock, "status")
    assert done.returncode == 0, done
    human(done.stdout)
    status = result(daemon.socket, "status")
    assert UTC_TIME.search(done.stdout.splitlines()[0]), done.stdout

    done = ctl("--socket", sock, "positions")
    assert done.returncode == 0, done
    human(done.stdout)
    position = open_positions(daemon.socket, "ema_fast")[0]
    row = next(line for line in done.stdout.splitlines() if position["position_id"] in line)
    assert UTC_TIME.search(row), row
    assert f"{position['entry_price']:.8g}".rstrip("0").rstrip(".") in row, row
    assert status["strategies"]["ema_fast"]["positions"] == 1


def test_events_print_a_line_per_event_with_utc_time(stepped: DaemonProcess) -> None:
    sock = str(stepped.socket)
    follower = subprocess.Popen(
        [sys.executable, "-m", "bot", "ctl", "--socket", sock, "events", "--type", "strategy_state"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Once it says it follows, the daemon streams to it: the next state change is its first line.
        assert _line_of(follower.stderr) == "following events (strategy_state; all strategies); Ctrl-C to stop"
        result(stepped.socket, "deactivate", {"id": "ema_cross"})
        line = _line_of(follower.stdout)
        assert re.fullmatch(r"\s*\d+ 20\d\d-\d\d-\d\d \d\d:\d\d(:\d\d)?Z strategy_state\s+ema_cross\s+.*state=dormant.*", line), line
        assert "policy=manage" in line, line
    finally:
        follower.terminate()
        follower.wait(30)
        assert follower.stdout is not None and follower.stderr is not None
        follower.stdout.close()
        follower.stderr.close()


def _line_of(stream: Any, timeout: float = 30.0) -> str:
    """The next line of a child's pipe; fails after `timeout` seconds without one."""
    readable, _, _ = select.select([stream], [], [], timeout)
    assert readable, "no line from bot ctl events"
    line: str = stream.readline()
    return line.rstrip("\n")


def test_ctl_finds_the_daemon_in_order_and_never_imports_strategy_code(stepped: DaemonProcess, tmp_path: Path) -> None:
    sock = stepped.socket
    folder = stepped.folder
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    # ./config.json of the folder it runs in.
    assert "ema_cross" in ctl("status", cwd=folder).stdout
    # $BOT_SOCKET, anywhere.
    assert "ema_cross" in ctl("status", cwd=elsewhere, env={"BOT_SOCKET": str(sock)}).stdout
    # --config: only its control.socket is read, relative to its folder; its strategy modules are never imported.
    other = tmp_path / "other"
    shutil.copytree(folder / "strategies", other / "strategies", ignore=shutil.ignore_patterns("__pycache__"))
    marker = tmp_path / "imported"
    (other / "strategies" / "boom.py").write_text(f"open({str(marker)!r}, 'w').close()\nraise SystemExit('strategy code ran')\n")
    (other / "config.json").write_bytes(orjson.dumps({"control": {"socket": os.path.relpath(sock, other)}, "strategies": [{"file": "strategies/ema_cross.json"}]}))
    done = ctl("--config", str(other / "config.json"), "status", cwd=elsewhere)
    assert done.returncode == 0 and "ema_cross" in done.stdout, done
    assert not marker.exists()
    # The order: --socket, then $BOT_SOCKET, then --config, then ./config.json.
    missing = tmp_path / "missing.sock"
    done = ctl("--socket", str(missing), "status", cwd=folder, env={"BOT_SOCKET": str(sock)})
    assert done.returncode == 3 and str(missing) in done.stderr, done
    (elsewhere / "config.json").write_bytes(orjson.dumps({"control": {"socket": str(missing)}}))
    assert ctl("status", cwd=elsewhere, env={"BOT_SOCKET": str(sock)}).returncode == 0  # ./config.json only when nothing else says
    # --config given and $BOT_SOCKET set: the same socket is fine (however each names it)...
    assert ctl("status", "--config", str(other / "config.json"), cwd=folder, env={"BOT_SOCKET": "bot.sock"}).returncode == 0
    # ...two different ones are refused, naming both: with two daemons, a shutdown must never reach the other one.
    done = ctl("shutdown", "--config", str(elsewhere / "config.json"), cwd=elsewhere, env={"BOT_SOCKET": str(sock)})
    assert (done.returncode, done.stdout) == (2, ""), done
    assert done.stderr.splitlines() == [
        (f"error: --config {elsewhere / 'config.json'} names the control socket {missing} but BOT_SOCKET names {sock}: "
        "give only one of them (or --socket PATH)")
    ], done.stderr
    assert call(sock, "status")["ok"] is True

    # Nothing to go by: one line saying how to point it at a daemon, exit 2.
    empty = tmp_path / "empty"
    empty.mkdir()
    done = ctl("status", cwd=empty)
    assert (done.returncode, done.stdout) == (2, ""), done
    assert done.stderr.splitlines() == [
        ("error: no daemon to talk to: give --socket PATH or --config FILE, set BOT_SOCKET, "
        "or run bot ctl in the folder of the daemon's config.json")
    ], done.stderr
    done = ctl("--config", str(empty / "nope.json"), "status", cwd=empty)
    assert (done.returncode, done.stderr.splitlines()) == (2, [f"error: {empty / 'nope.json'}: not found (--config names the daemon's config.json)"]), done
    # A socket found but no daemon answering: exit 3.
    done = ctl("status", cwd=elsewhere)
    assert done.returncode == 3 and done.stderr.splitlines() == [f"error: the bot daemon is not running (no control socket at {missing})"], done
    # The socket the daemon was found at still works as before.
    assert call(sock, "status")["ok"] is True
