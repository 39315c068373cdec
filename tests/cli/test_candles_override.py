"""`bot replay --candles SYMBOL=PATH` replaces the named symbol's file and keeps the config's other sources."""
from __future__ import annotations

import json
from pathlib import Path

from bot.event_codec import event_lines
from tests.cli.test_cli import error_lines, run_bot
from tests.config.builders import valid_strategy, write_setup
from tests.support import BTC_1M, ETH_1M

# Rows of the shortened BTC/USD file the command line names (after its header).
_ROWS = 600


def _candle_counts(events: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in event_lines(events.read_bytes()):
        event = json.loads(line)
        if event["type"] == "candle" and event["payload"]["timeframe"] == "1m":
            symbol = event["payload"]["symbol"]
            counts[symbol] = counts.get(symbol, 0) + 1
    return counts


def test_candles_argument_overrides_one_symbol_and_keeps_the_others(tmp_path: Path) -> None:
    strategies = {"btc.json": valid_strategy(id="btc"), "eth.json": valid_strategy(id="eth", symbol="ETH/BTC")}
    # The config's BTC/USD file does not exist: only the command line's file may be read for it.
    candles = {"BTC/USD": {"path": "data/missing_1m.csv"}, "ETH/BTC": {"path": str(ETH_1M), "timeframe": "1m"}}
    write_setup(tmp_path, strategies, {"replay": {"candles": candles}})
    with BTC_1M.open() as source:
        (tmp_path / "short_1m.csv").write_text("".join(next(source) for _ in range(_ROWS + 1)))

    result = run_bot("replay", "--config", "config.json", "--candles", "BTC/USD=short_1m.csv", "--out", "out", "--quiet", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert error_lines(result.stderr) == []
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["replay"]["sources"] == ["short_1m.csv", str(ETH_1M)]
    assert set(report["strategies"]) == {"btc", "eth"}
    assert _candle_counts(tmp_path / "out" / "events.jsonl") == {"BTC/USD": _ROWS, "ETH/BTC": 14_397}


def test_candles_argument_for_a_symbol_the_config_lacks_is_added(tmp_path: Path) -> None:
    strategies = {"btc.json": valid_strategy(id="btc"), "eth.json": valid_strategy(id="eth", symbol="ETH/BTC")}
    with BTC_1M.open() as source:
        (tmp_path / "short_1m.csv").write_text("".join(next(source) for _ in range(_ROWS + 1)))
    write_setup(tmp_path, strategies, {"replay": {"candles": {"BTC/USD": {"path": "short_1m.csv"}}}})

    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        "error: strategies/eth.json: symbol: no candles for 'ETH/BTC': add it to replay.candles or pass --candles ETH/BTC=PATH"
    ]
    replay = run_bot("replay", "--config", "config.json", "--candles", f"ETH/BTC={ETH_1M}", "--out", "out", "--quiet", cwd=tmp_path)
    assert replay.returncode == 0, replay.stderr
    assert _candle_counts(tmp_path / "out" / "events.jsonl") == {"BTC/USD": _ROWS, "ETH/BTC": 14_397}
