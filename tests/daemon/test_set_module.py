"""`bot ctl set` on the repository's own config.json: every default strategy is a strategy module, and set works on each."""
from __future__ import annotations

import csv
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.control.client import result
from tests.daemon.process import DaemonProcess
from tests.support import REPO

# Issue 12 item 1's commands, and the line each prints: the value at the path before and after.
EXAMPLES = [
    (("ema_cross", "quantity", "0.2"), "ema_cross: quantity 0.1 -> 0.2", ("quantity",), 0.2),
    (("momentum", "exits.stop_loss_pct", "5"), "momentum: exits.stop_loss_pct 2 -> 5", ("exits", "stop_loss_pct"), 5.0),
    (("scalping", "risk.max_open_positions", "2"), "scalping: risk.max_open_positions 1 -> 2", ("risk", "max_open_positions"), 2),
    (("hybrid", "fees.taker_bps", "1"), "hybrid: fees.taker_bps 5 -> 1", ("fees", "taker_bps"), 1.0),
]


def repo_copy(folder: Path) -> Path:
    """The repository's config.json with its strategies/ and data/ in `folder`; the config's path."""
    shutil.copy(REPO / "config.json", folder / "config.json")
    shutil.copytree(REPO / "strategies", folder / "strategies", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "data", folder / "data")
    return folder / "config.json"


def ctl_in(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`bot ctl ARGS...` run in `folder`: it finds the daemon through ./config.json."""
    return subprocess.run([sys.executable, "-m", "bot", "ctl", *args], cwd=folder, capture_output=True, check=False, text=True, timeout=60)


def running_config(socket: Path, sid: str) -> dict[str, Any]:
    """A loaded strategy's config as the daemon runs it."""
    config: dict[str, Any] = result(socket, "strategies")["loaded"][sid]["config"]
    return config


def at(config: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = config
    for part in path:
        node = node[part]
    return node


@pytest.fixture
def repo_daemon(short_tmp: Path) -> Iterator[DaemonProcess]:
    """A stepped daemon on a copy of the repository's own config.json (every catalog strategy), held still."""
    process = DaemonProcess(repo_copy(short_tmp), stepped=True)
    process.socket = short_tmp / "run" / "bot.sock"  # the repo's control.socket
    try:
        process.wait_ready(60)
        yield process
    finally:
        process.stop()


def test_set_works_on_every_default_strategy_and_survives_a_restart(repo_daemon: DaemonProcess) -> None:
    folder, socket = repo_daemon.folder, repo_daemon.socket
    for args, line, path, value in EXAMPLES:
        done = ctl_in(folder, "set", *args)
        assert (done.returncode, done.stdout.strip(), done.stderr) == (0, line, ""), done
        assert at(running_config(socket, args[0]), path) == value
    # The same value again changes nothing, and says so.
    done = ctl_in(folder, "set", "hybrid", "fees.taker_bps", "1")
    assert (done.returncode, done.stdout.strip()) == (0, "hybrid: fees.taker_bps is already 1 (nothing changed)"), done
    states = {sid: s["state"] for sid, s in result(socket, "status")["strategies"].items()}
    assert set(states.values()) == {"active"}, states

    # Journalled: a restart runs them with the values set, validated as set validated them.
    assert repo_daemon.stop() == 0
    again = DaemonProcess(repo_daemon.config, stepped=True)
    try:
        again.wait_ready(60)
        for args, _, path, value in EXAMPLES:
            assert at(running_config(socket, args[0]), path) == value, args
        log = again.log.read_text()
        assert "not re-applied" not in log, log[-3000:]
    finally:
        again.stop()


def strategies_json(folder: Path) -> dict[str, Any]:
    """`bot ctl strategies --json`'s reply, as printed."""
    done = ctl_in(folder, "strategies", "--json")
    assert done.returncode == 0, done
    reply: dict[str, Any] = orjson.loads(done.stdout)["result"]
    return reply


def warm(socket: Path, sid: str) -> bool:
    """Whether `status` says a strategy's indicators are all warm."""
    return bool(result(socket, "status")["strategies"][sid]["warm"])


def test_set_of_a_module_param_rebuilds_it_in_place_and_survives_a_restart(repo_daemon: DaemonProcess) -> None:
    folder, socket = repo_daemon.folder, repo_daemon.socket
    # The backfill is some 20 hours of BTC/USD: its 15m indicators are warm, its 1h EMA(50) not yet. Played on
    # until it is (the 1h stream keeps its own history), a rebuild must be warm at once too.
    assert not warm(socket, "trend_mtf")
    repo_daemon.step_until(lambda: warm(socket, "trend_mtf"), "warm trend_mtf", candles=600, limit=20_000)
    before = result(socket, "metrics")["strategies"]["trend_mtf"]
    done = ctl_in(folder, "set", "trend_mtf", "params.fast", "8")
    assert (done.returncode, done.stdout, done.stderr) == (0, "trend_mtf: params.fast 9 -> 8\n", ""), done
    # Running with it at once: the same strategy (state, counters), warmed again from the history, with the new EMA.
    config = strategies_json(folder)["loaded"]["trend_mtf"]["config"]
    assert config["params"] == {"fast": 8, "slow": 21, "trend_timeframe": "1h", "trend_ema": 50, "atr_period": 14, "atr_mult": 3.0}
    status = result(socket, "status")["strategies"]["trend_mtf"]
    assert (status["state"], status["warm"], status["last_error"]) == ("active", True, None)
    done = ctl_in(folder, "set", "trend_mtf", "params.slow", "20", "--json")
    assert orjson.loads(done.stdout)["result"] == {"id": "trend_mtf", "changed": ["params"], "path": "params.slow", "old": 21, "new": 20, "warm": True}
    assert result(socket, "metrics")["strategies"]["trend_mtf"]["candles"] == before["candles"]
    repo_daemon.step(30)
    status = result(socket, "status")["strategies"]["trend_mtf"]
    assert (status["state"], status["last_error"]) == ("active", None)
    assert result(socket, "metrics")["strategies"]["trend_mtf"]["candles"] > before["candles"]
    assert "trend_mtf] params changed: strategy rebuilt, reading BTC/USD 15m, BTC/USD 1h" in repo_daemon.log.read_text()

    # Journalled: a restart runs it with the new params, validated as set validated them.
    assert repo_daemon.stop() == 0
    again = DaemonProcess(repo_daemon.config, stepped=True)
    try:
        again.wait_ready(60)
        assert strategies_json(folder)["loaded"]["trend_mtf"]["config"]["params"]["fast"] == 8
        assert result(socket, "status")["strategies"]["trend_mtf"]["state"] == "active"
        log = again.log.read_text()
        assert "not re-applied" not in log, log[-3000:]
    finally:
        again.stop()


def test_a_new_higher_timeframe_without_enough_history_is_said_not_warm(repo_daemon: DaemonProcess) -> None:
    folder, socket = repo_daemon.folder, repo_daemon.socket
    # A 4h stream is new: the hub builds it from the 1,000 BTC/USD 1m candles it holds, the whole 4h buckets among them.
    assert repo_daemon.last_close is not None
    with (folder / "data" / "BTC-USD-PERP_1m.csv").open(newline="") as stream:
        held = [int(row["ts_ms"]) for row in csv.DictReader(stream) if int(row["ts_ms"]) + 60_000 <= repo_daemon.last_close][-1000:]
    four_hours = 4 * 3_600_000
    whole = [ts for ts in held if ts % four_hours == 0 and ts + four_hours <= repo_daemon.last_close]
    assert 0 < len(whole) < 50
    done = ctl_in(folder, "set", "trend_mtf", "params.trend_timeframe", "4h")
    assert (done.returncode, done.stderr) == (0, ""), done
    assert done.stdout.splitlines() == [
        'trend_mtf: params.trend_timeframe "1h" -> "4h"',
        (f"trend_mtf: not warm yet: {len(whole)} candles of BTC/USD 4h history for ema(period=50,source=close); "
        "it acts on cold indicators until enough candles close"),
    ]
    assert f"[trend_mtf] not warm after the change: {len(whole)} candles of BTC/USD 4h history for ema(period=50,source=close)" in repo_daemon.log.read_text()
    assert not warm(socket, "trend_mtf")
    # --json: the same facts, as data.
    done = ctl_in(folder, "set", "trend_mtf", "params.trend_ema", "3", "--json")
    assert orjson.loads(done.stdout)["result"]["warm"] is True
    done = ctl_in(folder, "set", "trend_mtf", "params.trend_ema", "50", "--json")
    reply = orjson.loads(done.stdout)["result"]
    assert (reply["warm"], reply["cold"]) == (False, [{"symbol": "BTC/USD", "timeframe": "4h", "history": len(whole), "indicators": ["ema(period=50,source=close)"]}])
    # A dormant strategy is warmed when activated, and says so.
    assert ctl_in(folder, "deactivate", "trend_mtf").returncode == 0
    done = ctl_in(folder, "set", "trend_mtf", "params.trend_timeframe", "1h")
    assert done.stdout.splitlines()[1:] == ["trend_mtf: not warm yet: warmed from the candle history when activated"], done


def test_a_param_the_strategy_refuses_and_fields_that_stay_fixed_change_nothing(repo_daemon: DaemonProcess) -> None:
    folder, socket = repo_daemon.folder, repo_daemon.socket
    # Valid for its Params, but its own code refuses to build with it: refused with the reason, the running one untouched.
    done = ctl_in(folder, "set", "trend_mtf", "params.trend_timeframe", "15m")
    assert (done.returncode, done.stdout) == (1, ""), done
    assert done.stderr.splitlines() == [
        ("error: trend_mtf: not changed, the strategy refused it: ValueError: "
        "trend_mtf: params.trend_timeframe (15m) must be longer than the trading timeframe (15m)")
    ], done.stderr
    # A second symbol without a feed.
    done = ctl_in(folder, "set", "pairs_arbitrage", "params.second_symbol", "DOGE/BTC")
    assert done.stderr.splitlines() == [
        "error: pairs_arbitrage: not changed: strategy 'pairs_arbitrage' would read 'DOGE/BTC', which has no candle feed"
    ], done.stderr
    # Symbol and timeframe stay what it was loaded with.
    done = ctl_in(folder, "set", "trend_mtf", "timeframe", "5m")
    assert done.stderr.splitlines() == [
        ("error: trend_mtf: cannot change timeframe of a loaded strategy in place (its positions and orders are on its symbol "
        "and timeframe): change the field in strategies/catalog/trend_mtf.json, then unload and load the strategy")
    ], done.stderr
    loaded = strategies_json(folder)["loaded"]
    assert loaded["trend_mtf"]["config"]["params"]["trend_timeframe"] == "1h" and loaded["trend_mtf"]["config"]["timeframe"] == "15m"
    assert loaded["pairs_arbitrage"]["config"]["params"]["second_symbol"] == "XMR/BTC"
    assert {s["state"] for s in result(socket, "status")["strategies"].values()} == {"active"}


def test_set_of_a_module_param_is_checked_by_its_params(repo_daemon: DaemonProcess) -> None:
    folder, socket = repo_daemon.folder, repo_daemon.socket
    # An invalid one: the module's own Params say why, one line per problem, as `bot validate` prints them.
    done = ctl_in(folder, "set", "trend_mtf", "params.fast", "0")
    assert done.returncode == 1
    assert done.stderr.splitlines() == ["error: trend_mtf: params.fast: Input should be greater than or equal to 1"]
    done = ctl_in(folder, "set", "trend_mtf", "params", '{"fast": 0, "slow": 1, "speed": 3}')
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "error: trend_mtf: params.fast: Input should be greater than or equal to 1",
        "error: trend_mtf: params.slow: Input should be greater than or equal to 2",
        "error: trend_mtf: params.speed: Extra inputs are not permitted",
    ]
    # A problem of the params as a whole (the module's own check across fields): the line leads with the id, once.
    done = ctl_in(folder, "set", "ema_cross", "params.fast", "40")
    assert done.stderr.splitlines() == ["error: ema_cross: params: fast (40) must be smaller than slow (26)"]
    # A declarative strategy's own field is refused for a module, naming it; no pydantic text.
    done = ctl_in(folder, "set", "ema_cross", "entry_threshold", "0.5")
    assert done.stderr.splitlines() == ["error: ema_cross: entry_threshold: only the declarative strategy reads entry_threshold; module 'ema_cross' takes params"]
    done = ctl_in(folder, "set", "ema_cross", "quantity", "-1")
    assert done.stderr.splitlines() == ["error: ema_cross: quantity: Input should be greater than 0"]
    assert "pydantic" not in done.stderr and "validation error" not in done.stderr

    # Nothing changed, and --json gives the reply as it came (the problems one a line in its message).
    assert running_config(socket, "trend_mtf")["params"]["fast"] == 9
    assert running_config(socket, "ema_cross")["quantity"] == 0.1
    done = ctl_in(folder, "set", "trend_mtf", "params.fast", "0", "--json")
    reply = orjson.loads(done.stdout)
    assert (done.returncode, reply["ok"], reply["error"]["code"]) == (1, False, "bad_args")
    assert reply["error"]["message"] == "trend_mtf: params.fast: Input should be greater than or equal to 1"


def test_the_help_example_works_on_the_default_config(repo_daemon: DaemonProcess) -> None:
    done = ctl_in(repo_daemon.folder, "set", "--help")
    examples = [line.strip() for line in done.stdout.splitlines() if line.strip().startswith("bot ctl set ")]
    assert len(examples) >= 3, done.stdout
    for example in examples:
        args = example.removeprefix("bot ctl set ").split(" ", 2)
        value = args[2].strip("'")
        ran = ctl_in(repo_daemon.folder, "set", args[0], args[1], value)
        assert ran.returncode == 0 and ran.stdout.startswith(f"{args[0]}: {args[1]} "), (example, ran)


def test_journalled_changes_are_validated_like_set_at_restart(repo_daemon: DaemonProcess) -> None:
    """Changes in the journal that no longer fit (a module param, here) are reported with field and reason; the file's config runs."""
    folder = repo_daemon.folder
    assert ctl_in(folder, "set", "momentum", "exits.stop_loss_pct", "5").returncode == 0
    assert repo_daemon.stop() == 0
    # What an older version, or a file edited since, could have left: a module param that no longer fits.
    with closing(sqlite3.connect(folder / "run" / "journal.sqlite")) as db, db:
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", ("strategy_overrides:trend_mtf", '{"params": {"fast": 0}}'))
    again = DaemonProcess(repo_daemon.config, stepped=True)
    try:
        again.wait_ready(60)
        log = again.log.read_text()
        assert "[trend_mtf] runtime changes not re-applied: trend_mtf: params.fast: Input should be greater than or equal to 1" in log, log[-3000:]
        assert "[momentum] runtime changes not re-applied" not in log
        assert running_config(repo_daemon.socket, "trend_mtf")["params"]["fast"] == 9
        assert running_config(repo_daemon.socket, "momentum")["exits"]["stop_loss_pct"] == 5.0
        assert result(repo_daemon.socket, "status")["strategies"]["trend_mtf"]["state"] == "active"
    finally:
        again.stop()
