"""`bot replay --jobs N`: the same outputs as one process, byte for byte, on the repository's configs and recorded candles."""
from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.kernel.jobs import split
from tests.cli.test_cli import error_lines, flat, run_bot
from tests.support import REPO

OUTPUTS = ("events.jsonl", "trades.csv", "equity.csv", "report.json")
# A week of the configs' candles: every strategy trades, the pairs strategy on both its symbols.
WEEK = ("--to", "2022-01-08")
# The same week after a warm-up: strategies are loaded, the warm-up read, then they are activated.
WARMED = ("--from", "2022-01-04", "--to", "2022-01-11")

FLAKY = '''
"""Test strategy: buys on its first candle with a stop, raises on candle `fail_at` (then only its stop is enforced)."""
from pydantic import Field

from bot.strategy.base import Strategy, StrategyParams


class FlakyParams(StrategyParams):
    """When it fails."""

    fail_at: int = Field(default=10, ge=1)


class Flaky(Strategy[FlakyParams]):
    """Buys on its first candle; raises on candle fail_at."""

    name = "flaky"
    version = "1.0.0"

    def __init__(self, params: FlakyParams, context) -> None:
        super().__init__(params, context)
        self.seen = 0

    def on_candle(self, symbol, timeframe, candle) -> None:
        self.seen += 1
        if self.seen == 1:
            self.ctx.open("long")
        if self.seen == self.params.fail_at:
            raise RuntimeError(f"flaky fails on candle {self.seen}")
'''

STUCK = '''
"""Test strategy: on its first candle it writes its process id to the file `marker` names and blocks for good."""
import os
import select
import threading

from bot.strategy.base import Strategy, StrategyParams


class StuckParams(StrategyParams):
    """Where to say it is stuck."""

    marker: str = ""


class Stuck(Strategy[StuckParams]):
    """Blocks on its first candle."""

    name = "stuck"
    version = "1.0.0"

    def on_candle(self, symbol, timeframe, candle) -> None:
        with open(self.params.marker, "w") as marker:  # a FIFO the test reads, or a plain file
            marker.write(str(os.getpid()))
        threading.Event().wait()
'''

CRASH = '''
"""Test strategy: ends its process's replay with SystemExit, which no strategy guard catches."""
from bot.strategy.base import Strategy, StrategyParams


class Crash(Strategy[StrategyParams]):
    """Exits on its first candle."""

    name = "crash"
    version = "1.0.0"

    def on_candle(self, symbol, timeframe, candle) -> None:
        raise SystemExit("crash strategy ends its process")
'''


def same_outputs(first: Path, second: Path) -> None:
    for name in OUTPUTS:
        assert (first / name).read_bytes() == (second / name).read_bytes(), f"{name} differs between {first} and {second}"


def copied_config(tmp_path: Path, name: str, **changes: Any) -> Path:
    """The repository's config `name` in `tmp_path` with its strategies folder, candle paths made absolute, top-level keys changed (None: removed)."""
    shutil.copytree(REPO / "strategies", tmp_path / "strategies", ignore=shutil.ignore_patterns("__pycache__"))
    config = json.loads((REPO / name).read_text())
    for source in config["replay"]["candles"].values():
        source["path"] = str(REPO / source["path"])
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    path = tmp_path / name
    path.write_text(json.dumps(config))
    return path


def replay(config: Path, out: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    result = run_bot("replay", "--config", config, "--out", out, "--quiet", *args, cwd=config.parent)
    assert result.returncode == code, result.stderr
    return result


@pytest.mark.parametrize("name", ["config.replay.json", "config.json"])
@pytest.mark.parametrize("window", [WEEK, WARMED], ids=["week", "warmed-up"])
def test_jobs_2_writes_the_outputs_of_one_process(tmp_path: Path, name: str, window: tuple[str, ...]) -> None:
    # Without the global risk limits the seven strategies (the pairs one on two symbols, trend_mtf on 1h too) run in two processes.
    config = copied_config(tmp_path, name, risk=None)
    one = replay(config, tmp_path / "one", *window)
    two = replay(config, tmp_path / "two", "--jobs", "2", *window)
    assert "note:" not in two.stderr
    same_outputs(tmp_path / "one", tmp_path / "two")
    assert (tmp_path / "one" / "events.jsonl").read_bytes().count(b'"type":"position_closed"') > 50
    assert one.returncode == two.returncode == 0


def test_global_risk_limits_keep_one_process(tmp_path: Path) -> None:
    # config.replay.json caps exposure and daily loss per currency: the kill switch ties every strategy to the others.
    result = run_bot("replay", "--config", "config.replay.json", "--out", tmp_path / "two", "--quiet", "--jobs", "2", *WEEK, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "note: --jobs 2: running in one process: the global limit risk.max_total_exposure (USD, BTC) couples the strategies" in flat(result.stderr)
    one = run_bot("replay", "--config", "config.replay.json", "--out", tmp_path / "one", "--quiet", *WEEK, cwd=REPO)
    assert one.returncode == 0, one.stderr
    same_outputs(tmp_path / "one", tmp_path / "two")


def test_failed_strategies_protect_in_the_order_they_failed(tmp_path: Path) -> None:
    # first fails later than second, each with a position its stop still closes; they run in different processes.
    config = copied_config(tmp_path, "config.replay.json", risk=None)
    (tmp_path / "strategies" / "flaky.py").write_text(FLAKY)
    files = []
    for sid, fail_at in (("first", 40), ("ema_between", 0), ("second", 20), ("third", 20)):
        spec: dict[str, Any] = {"id": sid, "symbol": "BTC/USD", "timeframe": "1m", "quantity": 0.1}
        if fail_at:
            spec |= {"module": "flaky", "params": {"fail_at": fail_at}, "exits": {"stop_loss_pct": 0.3}}
        else:
            spec |= {"analyzers": [{"type": "ema_cross", "params": {"fast": 5, "slow": 20}}]}
        (tmp_path / "strategies" / f"{sid}.json").write_text(json.dumps(spec))
        files.append({"file": f"strategies/{sid}.json"})
    data = json.loads(config.read_text())
    data["strategies"] = files
    config.write_text(json.dumps(data))
    replay(config, tmp_path / "one", *WEEK, code=3)  # 3: a strategy failed
    replay(config, tmp_path / "two", "--jobs", "3", *WEEK, code=3)
    same_outputs(tmp_path / "one", tmp_path / "two")
    # Each failed one's stop closed its position later, on the protect route.
    trades = (tmp_path / "one" / "trades.csv").read_text()
    assert all(f"{sid},BTC/USD,long" in trades for sid in ("first", "second", "third"))
    states = json.loads((tmp_path / "one" / "report.json").read_bytes())["strategies"]
    assert [states[sid]["state"] for sid in ("first", "ema_between", "second", "third")] == ["failed", "active", "failed", "failed"]


def strategy_files(tmp_path: Path, specs: list[dict[str, Any]], module: str, source: str) -> Path:
    """A config on the BTC-PERP candles of the repository with these strategies, and `module` in its strategies folder."""
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / f"{module}.py").write_text(source)
    refs = []
    for spec in specs:
        (tmp_path / "strategies" / f"{spec['id']}.json").write_text(json.dumps({"symbol": "BTC/USD", "timeframe": "1m", "quantity": 0.1, **spec}))
        refs.append({"file": f"strategies/{spec['id']}.json"})
    config = {"replay": {"candles": {"BTC/USD": {"path": str(REPO / "data" / "BTC-USD-PERP_1m.csv"), "timeframe": "1m"}}}, "strategies": refs}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


WORDY = '''
"""Test strategy: opens on one candle, closes on the next with an exit reason that csv must quote (a line break, a comma, quotes)."""
from bot.strategy.base import Strategy, StrategyParams


class Wordy(Strategy[StrategyParams]):
    """Flips every candle; its closes say why on two lines."""

    name = "wordy"
    version = "1.0.0"

    def on_candle(self, symbol, timeframe, candle) -> None:
        position = self.ctx.position(symbol)
        if position is None:
            self.ctx.open("long")
        else:
            self.ctx.close(position, reason='flip,\\n"again"')
'''


def test_jobs_2_merges_trade_rows_whose_exit_reason_spans_lines(tmp_path: Path) -> None:
    config = strategy_files(tmp_path, [{"id": sid, "module": "wordy"} for sid in ("a", "b", "c")], "wordy", WORDY)
    replay(config, tmp_path / "one", *WEEK)
    replay(config, tmp_path / "two", "--jobs", "2", *WEEK)
    same_outputs(tmp_path / "one", tmp_path / "two")
    assert b'"flip,\n""again"""' in (tmp_path / "one" / "trades.csv").read_bytes()


def test_a_failing_process_stops_the_others_and_fails_the_command(tmp_path: Path) -> None:
    marker = tmp_path / "stuck.pid"
    specs: list[dict[str, Any]] = [
        {"id": "stuck", "module": "stuck", "params": {"marker": str(marker)}},
        {"id": "crash", "module": "crash"},
    ]
    config = strategy_files(tmp_path, specs, "stuck", STUCK)
    (tmp_path / "strategies" / "crash.py").write_text(CRASH)
    # The part replaying `stuck` never ends by itself: the command ends only because it is stopped.
    result = run_bot("replay", "--config", config, "--out", tmp_path / "out", "--quiet", "--jobs", "2", *WEEK, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert error_lines(result.stderr) == ["error: the replay process of strategies crash failed: SystemExit: crash strategy ends its process"]
    assert not (tmp_path / "out").exists()
    if marker.exists():
        assert_gone(int(marker.read_text()))


def assert_gone(pid: int) -> None:
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def stuck_pid(fifo: Path) -> int:
    """The process id the stuck strategy writes into `fifo` once it blocks (waits for it: no polling)."""
    descriptor = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        text = b""
        while True:
            ready, _, _ = select.select([descriptor], [], [], 60)
            assert ready, "the stuck strategy never wrote its process id"
            chunk = os.read(descriptor, 64)
            if not chunk and text:
                return int(text)
            text += chunk
    finally:
        os.close(descriptor)


def test_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    marker = tmp_path / "stuck.pid"
    os.mkfifo(marker)
    specs: list[dict[str, Any]] = [{"id": "stuck", "module": "stuck", "params": {"marker": str(marker)}}, {"id": "ema", "analyzers": [{"type": "ema_cross", "params": {"fast": 5, "slow": 20}}]}]
    config = strategy_files(tmp_path, specs, "stuck", STUCK)
    command = [sys.executable, "-m", "bot", "replay", "--config", str(config), "--out", str(tmp_path / "out"), "--quiet", "--jobs", "2", *WEEK]
    # SIGINT at its default, as in a terminal (a shell starting the tests in the background ignores it, and exec keeps that).
    default_sigint = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.executable, sys.argv[1:])"
    with subprocess.Popen(
        [sys.executable, "-c", default_sigint, *command], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    ) as bot:
        # The stuck part is replaying (its pid is written) once the marker appears; the other may be done or not.
        pid = stuck_pid(marker)
        os.killpg(bot.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
        bot.wait(timeout=60)
    assert bot.returncode != 0
    assert_gone(pid)


def test_sigterm_stops_every_process(tmp_path: Path) -> None:
    marker = tmp_path / "stuck.pid"
    os.mkfifo(marker)
    specs: list[dict[str, Any]] = [{"id": "stuck", "module": "stuck", "params": {"marker": str(marker)}}, {"id": "ema", "analyzers": [{"type": "ema_cross", "params": {"fast": 5, "slow": 20}}]}]
    config = strategy_files(tmp_path, specs, "stuck", STUCK)
    command = [sys.executable, "-m", "bot", "replay", "--config", str(config), "--out", str(tmp_path / "out"), "--quiet", "--jobs", "2", *WEEK]
    with subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as bot:
        pid = stuck_pid(marker)
        bot.terminate()  # SIGTERM to the command alone, as a service manager sends it
        bot.wait(timeout=60)
    assert bot.returncode != 0
    assert_gone(pid)


def test_split_keeps_config_order_and_puts_the_longer_runs_last() -> None:
    assert split(10, 2) == [range(5), range(5, 10)]
    assert split(7, 3) == [range(2), range(2, 4), range(4, 7)]
    assert split(2, 4) == [range(1), range(1, 2)]


def test_refusals_before_the_replay_are_those_of_one_process(tmp_path: Path) -> None:
    config = copied_config(tmp_path, "config.replay.json", risk=None)
    for args in (("--from", "2030-01-01"),):
        one = run_bot("replay", "--config", config, "--out", tmp_path / "one", "--quiet", *args, cwd=tmp_path)
        two = run_bot("replay", "--config", config, "--out", tmp_path / "two", "--quiet", "--jobs", "2", *args, cwd=tmp_path)
        assert one.returncode == two.returncode == 2
        assert error_lines(one.stderr) == error_lines(two.stderr) != []
        assert not (tmp_path / "one").exists() and not (tmp_path / "two").exists()
    (tmp_path / "file").write_text("")
    two = run_bot("replay", "--config", config, "--out", tmp_path / "file", "--quiet", "--jobs", "2", *WEEK, cwd=tmp_path)
    assert two.returncode == 2
    assert error_lines(two.stderr) == [f"error: replay aborted: output folder {tmp_path / 'file'} exists and is not a folder (partial output in {tmp_path / 'file'})"]


def test_a_strategy_reading_a_symbol_without_candles_aborts_as_in_one_process(tmp_path: Path) -> None:
    # A pairs strategy whose second symbol has no candle file fails when loaded: one process aborts there, partial outputs written.
    config = copied_config(tmp_path, "config.replay.json", risk=None)
    spec = json.loads((tmp_path / "strategies" / "catalog" / "pairs_arbitrage.json").read_text())
    spec["id"] = "pairs_doge"
    spec["params"]["second_symbol"] = "DOGE/BTC"
    (tmp_path / "strategies" / "pairs_doge.json").write_text(json.dumps(spec))
    data = json.loads(config.read_text())
    data["strategies"].insert(1, {"file": "strategies/pairs_doge.json"})
    config.write_text(json.dumps(data))
    one = replay(config, tmp_path / "one", *WEEK, code=2)
    two = replay(config, tmp_path / "two", "--jobs", "2", *WEEK, code=2)
    assert error_lines(two.stderr) == [line.replace("/one", "/two") for line in error_lines(one.stderr)]
    assert "pairs_doge" in error_lines(one.stderr)[0]
    same_outputs(tmp_path / "one", tmp_path / "two")
