"""What the command line imports: `bot --help` only the parser's modules, `bot replay` nothing of the daemon, control or live code,
and nothing of the cluster (nats) unless a cluster is configured.

Each case runs the real command line (bot.cli.main) in a fresh interpreter that then writes its
sys.modules to a file, so no import made by this test process can hide one.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.config.builders import valid_strategy, write_setup
from tests.daemon.process import short_tmp, write_daemon_config
from tests.support import BTC_1M

__all__ = ["short_tmp"]

# Runs main(ARGS), then writes sorted(sys.modules) to the file named by the first argument.
_PROBE = """\
import json, sys
from bot.cli import main
try:
    code = main(sys.argv[2:])
except SystemExit as stop:
    code = stop.code
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""
# The parser's own modules: the command line, its leaves, and the packages holding an argument module.
_PARSER_MODULES = {"bot", "bot.cli", "bot.errors", "bot.log_options", "bot.control", "bot.live", "bot.strategy", "bot.sweep"}
# Libraries a command loads only when it runs (the event loop, config models, output, exchanges, charts).
_HEAVY = ("anyio", "asyncio", "ccxt", "msgspec", "orjson", "plotly", "pydantic", "rich", "sqlite3", "websockets")
# What only the daemon, `bot ctl`, `bot record` and `bot report` need.
_NOT_FOR_REPLAY = ("bot.daemon", "bot.control", "bot.live", "bot.report", "bot.journal", "ccxt", "websockets", "plotly", "rich", "bot.cluster", "nats")
# The cluster extra and our code on it: loaded only when a command runs a cluster.
_CLUSTER = ("bot.cluster", "nats")
# `bot run` until its control socket is up, then a SIGTERM to itself (a graceful stop), then the same report as _PROBE.
_RUN_PROBE = """\
import json, os, signal, sys, threading, time
from pathlib import Path
from bot.cli import main

def stop_when_up():
    deadline = time.monotonic() + 60
    while not Path("bot.sock").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=stop_when_up, daemon=True).start()
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""
_SUBCOMMANDS = ("version", "replay", "validate", "report", "run", "strategies", "sweep", "ctl", "record")


def _imported(args: list[str], cwd: Path, probe: str = _PROBE) -> tuple[object, list[str]]:
    """The exit code of `bot ARGS` run in `cwd`, and every module it imported."""
    (cwd / "probe.py").write_text(probe)
    report = cwd / "modules.json"
    done = subprocess.run([sys.executable, "probe.py", str(report), *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert report.exists(), done.stderr
    found = json.loads(report.read_text())
    return found["code"], found["modules"]


def _of(modules: list[str], roots: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == root or m.startswith(root + ".") for root in roots)]


def _beyond_the_parser(modules: list[str]) -> list[str]:
    """The bot modules that are neither the parser's own nor an argument module (`*_args`)."""
    return [m for m in modules if m.split(".")[0] == "bot" and m not in _PARSER_MODULES and not m.endswith("_args")]


@pytest.mark.parametrize("args", [["--help"], *([name, "--help"] for name in _SUBCOMMANDS), ["ctl", "status", "--help"]], ids=" ".join)
def test_help_imports_the_parser_and_nothing_a_command_runs(args: list[str], tmp_path: Path) -> None:
    code, modules = _imported(args, tmp_path)
    assert code == 0
    assert _beyond_the_parser(modules) == []
    assert _of(modules, _HEAVY) == []


def test_a_replay_imports_nothing_of_the_daemon_control_live_or_report(tmp_path: Path) -> None:
    candles = tmp_path / "btc.csv"
    with BTC_1M.open() as recorded:
        candles.write_text("".join(line for _, line in zip(range(1_001), recorded)))
    write_setup(tmp_path, {"a.json": valid_strategy()}, {"replay": {"candles": {"BTC/USD": {"path": str(candles)}}}})
    code, modules = _imported(["replay", "--quiet", "--config", "config.json", "--out", "out"], tmp_path)
    assert code == 0
    assert (tmp_path / "out" / "report.json").is_file()
    assert [m for m in _of(modules, _NOT_FOR_REPLAY) if not m.endswith("_args") and m not in _PARSER_MODULES] == []


def test_ctl_finds_the_daemon_without_the_config_models(tmp_path: Path) -> None:
    # The socket named by ./config.json (read as plain JSON) and no daemon on it: the refusal comes
    # before anything is sent, and nothing of pydantic or the daemon was loaded on the way.
    (tmp_path / "config.json").write_text(json.dumps({"control": {"socket": "run/none.sock"}}))
    code, modules = _imported(["ctl", "status"], tmp_path)
    assert code not in (0, None)
    assert _of(modules, ("pydantic", "bot.config.models", "bot.config.loader", "bot.daemon", "ccxt")) == []


def test_validate_with_a_cluster_section_reads_it_without_loading_the_cluster(tmp_path: Path) -> None:
    cluster = {"url": "nats://127.0.0.1:4222", "user_env": "BOT_NATS_USER", "password_env": "BOT_NATS_PASSWORD"}
    write_setup(tmp_path, {"a.json": valid_strategy()}, {"cluster": cluster, "replay": {"candles": {"BTC/USD": {"path": str(BTC_1M)}}}})
    code, modules = _imported(["validate", "--config", "config.json"], tmp_path)
    assert code == 0
    assert _of(modules, _CLUSTER) == []


def test_the_single_process_daemon_imports_nothing_of_the_cluster(short_tmp: Path) -> None:
    write_daemon_config(short_tmp, feed={"speed": 1, "backfill": 10})
    code, modules = _imported(["run", "--config", "config.json"], short_tmp, _RUN_PROBE)
    assert code == 0
    assert "bot.kernel.daemon" in modules, "the probe stopped before the daemon ran"
    assert _of(modules, _CLUSTER) == []
