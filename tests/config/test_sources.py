"""Candle sources: which file feeds each symbol, and whether every enabled strategy can be fed."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from bot.candles.sources import CandleSource
from bot.errors import ConfigProblem
from bot.replay.sources import parse_candle_arg, resolve_sources
from bot.strategy.config_load import LoadedConfig, load_config
from tests.config.builders import valid_strategy, write_setup
from tests.support import BTC_1M, ETH_1M, ETH_5M


def load(root: Path, strategies: dict[str, Any], candles: dict[str, Any] | None = None) -> LoadedConfig:
    """Write and load a config whose replay.candles is `candles`."""
    return load_config(write_setup(root, strategies, {"replay": {"candles": candles or {}}}))


def strategy_file(root: Path, name: str) -> str:
    """How resolve_sources names a strategy file."""
    return str((root / "strategies" / name).resolve())


def test_config_candles_resolve_relative_to_config_json(tmp_path: Path) -> None:
    shutil.copy(BTC_1M, tmp_path / "btc_1m.csv")
    loaded = load(tmp_path, {"a.json": valid_strategy(timeframe="15m")}, {"BTC/USD": {"path": "btc_1m.csv"}})
    sources, problems = resolve_sources(loaded)
    assert problems == []
    assert sources == [CandleSource("BTC/USD", tmp_path / "btc_1m.csv", "1m")]


def test_timeframe_is_inferred_from_the_file_name_or_taken_from_config(tmp_path: Path) -> None:
    strategies = {"a.json": valid_strategy(symbol="ETH/BTC", timeframe="15m")}
    inferred, problems = resolve_sources(load(tmp_path, strategies, {"ETH/BTC": {"path": str(ETH_5M)}}))
    assert problems == []
    assert inferred[0].timeframe == "5m"
    stated, problems = resolve_sources(load(tmp_path, strategies, {"ETH/BTC": {"path": str(ETH_5M), "timeframe": "15m"}}))
    assert problems == []
    assert stated[0].timeframe == "15m"


def test_timeframe_is_inferred_from_rows_without_a_name_token(tmp_path: Path) -> None:
    shutil.copy(ETH_5M, tmp_path / "ethbtc.csv")
    loaded = load(tmp_path, {"a.json": valid_strategy(symbol="ETH/BTC", timeframe="5m")}, {"ETH/BTC": {"path": "ethbtc.csv"}})
    sources, problems = resolve_sources(loaded)
    assert problems == []
    assert sources[0].timeframe == "5m"


def test_missing_candle_file_in_config(tmp_path: Path) -> None:
    loaded = load(tmp_path, {"a.json": valid_strategy()}, {"BTC/USD": {"path": "data/nope_1m.csv"}})
    sources, problems = resolve_sources(loaded)
    assert sources == []
    # One problem for the missing file, none repeated for the strategy it would have fed.
    assert len(problems) == 1
    problem = problems[0]
    assert (problem.file, problem.field) == (str(tmp_path / "config.json"), "replay.candles.BTC/USD.path")
    assert "candle file not found" in problem.reason
    assert str(tmp_path / "data" / "nope_1m.csv") in problem.reason


def test_missing_candle_file_on_the_command_line(tmp_path: Path) -> None:
    loaded = load(tmp_path, {"a.json": valid_strategy()})
    sources, problems = resolve_sources(loaded, {"BTC/USD": str(tmp_path / "gone_1m.csv")})
    assert sources == []
    assert [(p.file, p.field) for p in problems] == [("command line", "--candles BTC/USD")]
    assert "candle file not found" in problems[0].reason


def test_strategy_whose_symbol_has_no_candles(tmp_path: Path) -> None:
    strategies = {"a.json": valid_strategy(id="a"), "b.json": valid_strategy(id="b", symbol="ETH/BTC")}
    sources, problems = resolve_sources(load(tmp_path, strategies, {"BTC/USD": {"path": str(BTC_1M)}}))
    assert [s.symbol for s in sources] == ["BTC/USD"]
    assert len(problems) == 1
    problem = problems[0]
    assert (problem.file, problem.field) == (strategy_file(tmp_path, "b.json"), "symbol")
    assert "no candles for 'ETH/BTC'" in problem.reason
    assert "--candles ETH/BTC=PATH" in problem.reason


def test_disabled_strategy_needs_no_candles(tmp_path: Path) -> None:
    strategies = {"a.json": valid_strategy(id="a"), "b.json": valid_strategy(id="b", symbol="ETH/BTC", enabled=False)}
    sources, problems = resolve_sources(load(tmp_path, strategies, {"BTC/USD": {"path": str(BTC_1M)}}))
    assert problems == []
    assert len(sources) == 1


def test_missing_file_of_another_symbol_does_not_hide_a_symbol_without_candles(tmp_path: Path) -> None:
    loaded = load(tmp_path, {"a.json": valid_strategy(symbol="BTC/USD")}, {"BTC/USDT": {"path": "nope_1m.csv"}})
    _, problems = resolve_sources(loaded)
    assert {(Path(p.file).name, p.field) for p in problems} == {("config.json", "replay.candles.BTC/USDT.path"), ("a.json", "symbol")}


def test_1m_strategy_on_5m_candles_cannot_be_derived(tmp_path: Path) -> None:
    strategies = {"a.json": valid_strategy(symbol="ETH/BTC", timeframe="1m")}
    _, problems = resolve_sources(load(tmp_path, strategies, {"ETH/BTC": {"path": str(ETH_5M)}}))
    assert len(problems) == 1
    problem = problems[0]
    assert (problem.file, problem.field) == (strategy_file(tmp_path, "a.json"), "timeframe")
    assert "1m cannot be built from ETH/BTC's 5m candles" in problem.reason
    assert str(ETH_5M) in problem.reason


@pytest.mark.parametrize("timeframe", ["5m", "15m", "1h", "1d"])
def test_multiples_of_the_file_timeframe_can_be_derived(tmp_path: Path, timeframe: str) -> None:
    strategies = {"a.json": valid_strategy(symbol="ETH/BTC", timeframe=timeframe)}
    _, problems = resolve_sources(load(tmp_path, strategies, {"ETH/BTC": {"path": str(ETH_5M)}}))
    assert problems == []


def test_3m_strategy_on_5m_candles_is_not_a_multiple(tmp_path: Path) -> None:
    strategies = {"a.json": valid_strategy(symbol="ETH/BTC", timeframe="3m")}
    _, problems = resolve_sources(load(tmp_path, strategies, {"ETH/BTC": {"path": str(ETH_5M)}}))
    assert [p.field for p in problems] == ["timeframe"]
    assert "3m cannot be built" in problems[0].reason


def test_filter_timeframe_that_cannot_be_derived_is_a_problem(tmp_path: Path) -> None:
    filters = [{"type": "mtf_trend", "params": {"timeframe": "3m"}}]
    strategies = {"a.json": valid_strategy(symbol="ETH/BTC", timeframe="5m", filters=filters)}
    _, problems = resolve_sources(load(tmp_path, strategies, {"ETH/BTC": {"path": str(ETH_5M)}}))
    assert len(problems) == 1
    assert "3m cannot be built from ETH/BTC's 5m candles" in problems[0].reason


def test_underivable_filter_timeframe_names_the_filter_field(tmp_path: Path) -> None:
    filters = [{"type": "mtf_trend", "params": {"timeframe": "3m"}}]
    strategies = {"a.json": valid_strategy(symbol="ETH/BTC", timeframe="5m", filters=filters)}
    _, problems = resolve_sources(load(tmp_path, strategies, {"ETH/BTC": {"path": str(ETH_5M)}}))
    assert [p.field for p in problems] == ["filters[0].params.timeframe"]


def test_command_line_candles_override_the_config(tmp_path: Path) -> None:
    strategies = {"a.json": valid_strategy(symbol="ETH/BTC", timeframe="1m")}
    # The config names a missing 5m file with its own settings; the command line's 1m file
    # replaces it, and none of the config entry's settings carries over.
    candles = {"ETH/BTC": {"path": "missing_5m.csv", "timeframe": "5m", "shift_days": 3}, "BTC/USD": {"path": str(BTC_1M)}}
    loaded = load(tmp_path, strategies, candles)
    sources, problems = resolve_sources(loaded, {"ETH/BTC": str(ETH_1M)})
    assert problems == []
    assert sources == [CandleSource("ETH/BTC", ETH_1M, "1m"), CandleSource("BTC/USD", BTC_1M, "1m")]


def test_command_line_override_keeps_the_config_sources_it_does_not_name(tmp_path: Path) -> None:
    strategies = {"a.json": valid_strategy(id="a"), "b.json": valid_strategy(id="b", symbol="ETH/BTC")}
    loaded = load(tmp_path, strategies, {"BTC/USD": {"path": str(BTC_1M)}})
    sources, problems = resolve_sources(loaded, {"ETH/BTC": str(ETH_1M)})
    assert problems == []
    assert [(s.symbol, s.path) for s in sources] == [("BTC/USD", BTC_1M), ("ETH/BTC", ETH_1M)]


def test_a_missing_config_file_the_command_line_does_not_replace_is_still_reported(tmp_path: Path) -> None:
    strategies = {"a.json": valid_strategy(symbol="ETH/BTC")}
    loaded = load(tmp_path, strategies, {"ETH/BTC": {"path": str(ETH_1M)}, "BTC/USD": {"path": "missing_1m.csv"}})
    sources, problems = resolve_sources(loaded, {"ETH/BTC": str(ETH_1M)})
    assert [s.symbol for s in sources] == ["ETH/BTC"]
    assert [(p.file, p.field) for p in problems] == [(str(tmp_path / "config.json"), "replay.candles.BTC/USD.path")]


def test_unreadable_candle_file_without_name_token_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "btc.csv").write_text("ts_ms,open,high,low,close,volume\n1640991600000,10,12,9,11,1\n")
    loaded = load(tmp_path, {"a.json": valid_strategy()})
    sources, problems = resolve_sources(loaded, {"BTC/USD": str(tmp_path / "btc.csv")})
    assert sources == []
    assert [(p.file, p.field) for p in problems] == [("command line", "--candles BTC/USD")]
    assert "cannot infer timeframe" in problems[0].reason


def test_problems_from_several_strategies_are_all_reported(tmp_path: Path) -> None:
    strategies = {
        "a.json": valid_strategy(id="a", symbol="XRP/USDT"),
        "b.json": valid_strategy(id="b", symbol="ETH/BTC", timeframe="1m"),
        "c.json": valid_strategy(id="c", symbol="ETH/BTC", timeframe="15m"),
    }
    _, problems = resolve_sources(load(tmp_path, strategies, {"ETH/BTC": {"path": str(ETH_5M)}}))
    assert [(Path(p.file).name, p.field) for p in problems] == [("a.json", "symbol"), ("b.json", "timeframe")]
    assert all(isinstance(p, ConfigProblem) for p in problems)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("BTC/USD=data/btc.csv", ("BTC/USD", "data/btc.csv")),
        (" BTC/USD = data/btc.csv ", ("BTC/USD", "data/btc.csv")),
        ("BTC/USD=a=b.csv", ("BTC/USD", "a=b.csv")),
    ],
)
def test_parse_candle_arg(text: str, expected: tuple[str, str]) -> None:
    assert parse_candle_arg(text) == expected


@pytest.mark.parametrize("text", ["BTC/USD", "=data/btc.csv", "BTC/USD=", " = ", "", "   "])
def test_parse_candle_arg_errors(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_candle_arg(text)
    assert str(info.value) == f"--candles expects SYMBOL=PATH, got {text!r}"
