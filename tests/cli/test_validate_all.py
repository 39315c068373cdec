"""`bot validate` reports every problem in one run, and checks an exchange section against ccxt."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.cli.test_cli import error_lines, run_bot
from tests.config.builders import valid_strategy, write_setup
from tests.support import BTC_1M, REPO


def module_strategy(**overrides: Any) -> dict[str, Any]:
    """A valid strategy file of the ema_cross module on BTC/USD 1m, with top-level `overrides`."""
    body: dict[str, Any] = {"id": "cross", "module": "ema_cross", "symbol": "BTC/USD", "timeframe": "1m", "quantity": 0.1, "params": {"fast": 3, "slow": 8}}
    return {**body, **overrides}


def project_with_ema_cross(root: Path) -> None:
    """The repository's ema_cross module beside the config, where discovery finds it."""
    (root / "strategies").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "strategies" / "ema_cross.py", root / "strategies" / "ema_cross.py")


def test_a_missing_strategy_file_and_a_missing_candle_file_are_reported_together(tmp_path: Path) -> None:
    write_setup(
        tmp_path,
        {"a.json": valid_strategy(id="a")},
        {"replay": {"candles": {"BTC/USD": {"path": "data/missing_1m.csv"}}}},
        refs=[{"file": "strategies/a.json"}, {"file": "strategies/gone.json"}],
    )
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        "error: strategies/gone.json: <file>: file not found (named by config.json strategies[1].file)",
        "error: config.json: replay.candles.BTC/USD.path: candle file not found: data/missing_1m.csv",
    ]
    assert result.stdout == ""


def test_a_bad_timeframe_a_negative_stop_and_bad_params_are_reported_together(tmp_path: Path) -> None:
    project_with_ema_cross(tmp_path)
    strategy = module_strategy(timeframe="7m", exits={"stop_loss_pct": -1}, params={"fast": "3", "slow": 8})
    write_setup(tmp_path, {"cross.json": strategy}, {"replay": {"candles": {"BTC/USD": {"path": str(BTC_1M)}}}})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2
    errors = error_lines(result.stderr)
    assert [line.split(": ")[1:3] for line in errors] == [
        ["strategies/cross.json", "timeframe"],
        ["strategies/cross.json", "exits.stop_loss_pct"],
        ["strategies/cross.json", "params.fast"],
    ]
    assert errors[2] == "error: strategies/cross.json: params.fast: a string is not a number (strategy 'ema_cross')"


def test_config_json_strategy_file_and_candle_content_problems_come_in_one_run(tmp_path: Path) -> None:
    project_with_ema_cross(tmp_path)
    (tmp_path / "bad_1m.csv").write_text("ts_ms,open,high,low,close,volume\n1640991600000,10,12,9,11,1\n1640991660000,11,9,10,10,1\n")
    write_setup(
        tmp_path,
        {"cross.json": module_strategy(params={"fast": 9, "slow": 8})},
        {"risk": {"max_total_exposure": -5}, "replay": {"candles": {"BTC/USD": {"path": "bad_1m.csv", "timeframe": "1m"}}}},
    )
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        "error: config.json: risk.max_total_exposure: Input should be greater than 0",
        "error: strategies/cross.json: params: fast (9) must be smaller than slow (8) (strategy 'ema_cross')",
        "error: bad_1m.csv: line 3: high 9.0 below low 10.0",
    ]


def test_a_broken_replay_section_still_reports_the_strategy_files(tmp_path: Path) -> None:
    write_setup(tmp_path, {"a.json": valid_strategy(quantity=0)}, {"replay": {"candles": {"BTC/USD": {"path": 5}}}})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        "error: config.json: replay.candles.BTC/USD.path: Input should be a valid string",
        "error: strategies/a.json: quantity: Input should be greater than 0",
    ]


def test_replay_refuses_with_every_problem_before_writing(tmp_path: Path) -> None:
    write_setup(tmp_path, {"a.json": valid_strategy(quantity=0), "b.json": valid_strategy(id="b", symbol="ETH/BTC")})
    result = run_bot("replay", "--config", "config.json", "--candles", "BTC/USD=missing_1m.csv", "--out", "out", "--quiet", cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        "error: strategies/a.json: quantity: Input should be greater than 0",
        "error: command line: --candles BTC/USD: candle file not found: missing_1m.csv",
        "error: strategies/b.json: symbol: no candles for 'ETH/BTC': add it to replay.candles or pass --candles ETH/BTC=PATH",
    ]
    assert not (tmp_path / "out").exists()


def _with_exchange(root: Path, exchange: dict[str, Any]) -> None:
    write_setup(root, {"a.json": valid_strategy()}, {"replay": {"candles": {"BTC/USD": {"path": str(BTC_1M)}}}, "exchange": exchange})


def test_validate_refuses_an_exchange_ccxt_does_not_have(tmp_path: Path) -> None:
    _with_exchange(tmp_path, {"id": "nosuchexchange"})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == ["error: config.json: exchange.id: ccxt has no exchange 'nosuchexchange'"]


def test_validate_refuses_an_exchange_without_candles(tmp_path: Path) -> None:
    # bitbns trades through ccxt but offers no OHLCV endpoint (has['fetchOHLCV'] is False).
    _with_exchange(tmp_path, {"id": "bitbns"})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        "error: config.json: exchange.id: bitbns serves no candles in ccxt (no fetchOHLCV): the live feed and bot record need them"
    ]


def test_validate_accepts_an_exchange_with_candles(tmp_path: Path) -> None:
    _with_exchange(tmp_path, {"id": "binance"})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("config.json: OK")


_IMPORTS_CCXT = "import sys\nfrom bot.cli import main\ncode = main(sys.argv[1:])\nprint(code, 'ccxt' in sys.modules)\n"


def _probe(cwd: Path) -> subprocess.CompletedProcess[str]:
    """`bot validate` run in a process that then says whether ccxt was imported."""
    return subprocess.run(
        [sys.executable, "probe.py", "validate", "--config", "config.json"], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_ccxt_is_imported_only_for_a_config_with_an_exchange_section(tmp_path: Path) -> None:
    write_setup(tmp_path, {"a.json": valid_strategy()}, {"replay": {"candles": {"BTC/USD": {"path": str(BTC_1M)}}}})
    (tmp_path / "probe.py").write_text(_IMPORTS_CCXT)
    recorded = _probe(tmp_path)
    assert recorded.stdout.splitlines()[-1] == "0 False", recorded.stderr
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "exchange": {"id": "binance"}}))
    live = _probe(tmp_path)
    assert live.stdout.splitlines()[-1] == "0 True", live.stderr


def test_load_config_itself_never_imports_ccxt(tmp_path: Path) -> None:
    """The daemon validates configs a control client names with load_config: that must import no code (ccxt included)."""
    _with_exchange(tmp_path, {"id": "nosuchexchange"})
    code = "import sys\nfrom bot.strategy.config_load import load_config\nload_config('config.json')\nprint('ccxt' in sys.modules)\n"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False"]
