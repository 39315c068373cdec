"""Discovery: strategy modules found in folders, broken ones skipped with a reason, the rest still usable."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from bot.cli import main
from bot.errors import ConfigError, StrategyError
from bot.strategy.catalog import StrategyCatalog
from bot.strategy.config_load import load_config
from tests.support import REPO, Rig

CATALOG = {"ema_cross", "momentum", "mean_reversion", "trend_mtf", "scalping", "pairs_arbitrage", "hybrid"}

GOOD = '''
from pydantic import Field
from bot.strategy.base import Strategy, StrategyParams


class GoodParams(StrategyParams):
    """Parameters."""

    period: int = Field(default=10, ge=2, description="candles")


class Good(Strategy):
    """Does nothing, well.

    Suits tests.
    """

    name = "good"
    version = "2.1.0"
    Params = GoodParams
'''

BROKEN = {
    "syntax_error.py": ("def oops(:\n", "line 1: SyntaxError"),
    "raises.py": ("import json\nraise RuntimeError('no config for me')\n", "line 2: RuntimeError: no config for me"),
    "missing_import.py": ("import not_a_real_package_xyz\n", "ModuleNotFoundError: No module named 'not_a_real_package_xyz'"),
    "exits.py": ("import sys\nsys.exit(3)\n", "SystemExit: 3"),
    "no_doc.py": (
        "from bot.strategy.base import Strategy\nclass NoDoc(Strategy):\n    name = 'no_doc'\n",
        "class NoDoc: needs a docstring",
    ),
    "no_defaults.py": (
        ("from bot.strategy.base import Strategy, StrategyParams\n"
        "class P(StrategyParams):\n    period: int\n"
        "class NoDefaults(Strategy):\n    '''Doc.'''\n    name = 'no_defaults'\n    Params = P\n"),
        "class NoDefaults: every parameter needs a valid default (Params() fails at: period)",
    ),
    "validator_bug.py": (
        ("from pydantic import model_validator\nfrom bot.strategy.base import Strategy, StrategyParams\n"
        "class P(StrategyParams):\n    @model_validator(mode='after')\n    def _bug(self):\n        raise TypeError('oops')\n"
        "class Buggy(Strategy):\n    '''Doc.'''\n    name = 'buggy'\n    Params = P\n"),
        "class Buggy: Params() raised TypeError: oops",
    ),
    "builtin.py": ("x = 1\n", "the name is reserved"),
    "bad_name.py": (
        "from bot.strategy.base import Strategy\nclass BadName(Strategy):\n    '''Doc.'''\n    name = 'Bad Name'\n",
        "class BadName: name must be 1-64 lowercase letters",
    ),
}


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "good.py").write_text(GOOD)
    (folder / "_private.py").write_text("raise RuntimeError('never imported')\n")
    for name, (source, _) in BROKEN.items():
        (folder / name).write_text(source)
    return folder


def test_the_repository_catalog_has_every_strategy_with_metadata_and_valid_defaults() -> None:
    catalog = StrategyCatalog.discover([REPO / "strategies"])
    assert catalog.problems == []
    names = {entry.name for entry in catalog.entries()}
    assert names == CATALOG | {"declarative"}
    for entry in catalog.entries():
        assert entry.version and entry.summary, entry.name
        assert "suit" in entry.description.lower(), f"{entry.name}: the description must say when it suits"
        entry.validate_params(entry.defaults())  # the defaults round-trip through the schema
        assert entry.schema()["type"] == "object"


def test_broken_modules_are_skipped_with_the_module_and_reason_and_the_others_load(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    catalog = StrategyCatalog.discover([folder, REPO / "strategies"])
    assert {e.name for e in catalog.entries()} == CATALOG | {"declarative", "good"}
    problems = {p.path.name: p.reason for p in catalog.problems}
    assert set(problems) == set(BROKEN)
    for name, (_, words) in BROKEN.items():
        assert words in problems[name], (name, problems[name])
        if not problems[name].startswith("class"):
            assert f"module {Path(name).stem!r}" in problems[name]
    good = catalog.get("good")
    assert (good.version, good.defaults(), good.path) == ("2.1.0", {"period": 10}, folder / "good.py")


def test_a_strategy_file_naming_a_broken_module_gets_the_import_error_and_the_others_still_load(tmp_path: Path) -> None:
    _folder(tmp_path)
    files = {
        "ok.json": {"id": "ok", "module": "good", "symbol": "BTC/USD", "quantity": 1, "params": {"period": 5}},
        "bad.json": {"id": "bad", "module": "raises", "symbol": "BTC/USD", "quantity": 1},
        "gone.json": {"id": "gone", "module": "nowhere", "symbol": "BTC/USD", "quantity": 1},
        "skipped.json": {"id": "skipped", "module": "no_defaults", "symbol": "BTC/USD", "quantity": 1},
    }
    for name, body in files.items():
        (tmp_path / name).write_bytes(orjson.dumps(body))
    (tmp_path / "config.json").write_bytes(
        orjson.dumps({"strategy_paths": ["plugins"], "strategies": [{"file": name} for name in files]})
    )
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "config.json")
    problems = {(Path(p.file).name, p.field): p.reason for p in caught.value.problems}
    assert set(problems) == {("bad.json", "module"), ("gone.json", "module"), ("skipped.json", "module")}
    # Its only class was skipped: the reason, not "no strategy module".
    assert problems[("skipped.json", "module")] == (
        "module 'no_defaults' offers no usable strategy: class NoDefaults: every parameter needs a valid default (Params() fails at: period)"
    )
    assert "cannot import module 'raises'" in problems[("bad.json", "module")]
    assert "no config for me" in problems[("bad.json", "module")]
    assert "no strategy module 'nowhere'" in problems[("gone.json", "module")]
    # Without the broken files the good one loads, with its validated params.
    (tmp_path / "config.json").write_bytes(orjson.dumps({"strategy_paths": ["plugins"], "strategies": [{"file": "ok.json"}]}))
    loaded = load_config(tmp_path / "config.json")
    assert loaded.strategies[0].params == {"period": 5}
    assert loaded.catalog.get("good").cls.__name__ == "Good"


def test_module_and_declarative_fields_do_not_mix(tmp_path: Path) -> None:
    body: dict[str, Any] = {
        "id": "mixed", "module": "ema_cross", "symbol": "BTC/USD", "quantity": 1,
        "analyzers": [{"type": "rsi"}], "entry_threshold": 0.5,
    }
    (tmp_path / "mixed.json").write_bytes(orjson.dumps(body))
    (tmp_path / "config.json").write_bytes(orjson.dumps({"strategy_paths": [str(REPO / "strategies")], "strategies": [{"file": "mixed.json"}]}))
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "config.json")
    fields = {p.field: p.reason for p in caught.value.problems}
    assert set(fields) == {"analyzers", "entry_threshold"}
    assert "only the declarative strategy reads" in fields["analyzers"]


def test_a_missing_extra_strategy_folder_is_a_config_problem(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_bytes(orjson.dumps({"strategy_paths": ["nowhere"]}))
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "config.json")
    (problem,) = caught.value.problems
    assert (problem.field, "is not a folder" in problem.reason) == ("strategy_paths[0]", True)


def test_bot_strategies_lists_the_catalog_and_reports_skipped_modules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _folder(tmp_path)
    (tmp_path / "config.json").write_bytes(orjson.dumps({"strategy_paths": ["plugins", str(REPO / "strategies")]}))
    assert main(["strategies", "--config", str(tmp_path / "config.json"), "--json"]) == 0
    captured = capsys.readouterr()
    listed = json.loads(captured.out)
    assert {item["name"] for item in listed} == CATALOG | {"declarative", "good"}
    assert all(item["description"] and item["version"] for item in listed)
    for name in BROKEN:
        assert name in captured.err


def test_bot_strategies_info_shows_description_defaults_and_schema() -> None:
    # A real process with a wide terminal: what a user sees.
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "strategies", "info", "pairs_arbitrage"],
        cwd=REPO, capture_output=True, text=True, timeout=60, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "pairs_arbitrage 1.0.0" in out and "Market-neutral pairs trade" in out
    for row in ("second_symbol", "window", "entry_z", "exit_z", "stop_z", "max_hold_bars", "hedge"):
        assert row in out
    assert '"ols" | "none"' in out and ">= 10, <= 10000" in out
    info = subprocess.run(
        [sys.executable, "-m", "bot.cli", "strategies", "info", "ema_cross", "--json"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    data = json.loads(info.stdout)
    assert data["defaults"]["fast"] == 12 and data["defaults"]["market"]["atr_period"] == 14
    assert data["schema"]["properties"]["slow"]["minimum"] == 2
    missing = subprocess.run([sys.executable, "-m", "bot.cli", "strategies", "info", "nope"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no strategy named 'nope'" in missing.stderr


def test_bot_validate_names_the_strategy_file_the_param_and_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = {"id": "fast", "module": "ema_cross", "symbol": "BTC/USD", "quantity": 1, "params": {"fast": 30, "slow": 10}}
    (tmp_path / "fast.json").write_bytes(orjson.dumps(body))
    (tmp_path / "config.json").write_bytes(orjson.dumps({"strategy_paths": [str(REPO / "strategies")], "strategies": [{"file": "fast.json"}]}))
    assert main(["validate", "--config", str(tmp_path / "config.json")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "fast.json") in err and "params" in err and "fast (30) must be smaller than slow (10)" in err


def test_a_strategy_whose_constructor_raises_fails_its_load_only(tmp_path: Path) -> None:
    from bot.errors import StrategyError
    from tests.support import Rig, module_strategy

    folder = tmp_path / "plugins"
    folder.mkdir()
    body = GOOD.replace('name = "good"', 'name = "typo"') + (
        "\n    def __init__(self, params, context):\n"
        "        super().__init__(params, context)\n"
        "        context.indicators().requir('ema', period=3)\n"
    )
    (folder / "typo.py").write_text(body)
    rig = Rig(catalog=StrategyCatalog.discover([folder, REPO / "strategies"]))
    with pytest.raises(StrategyError, match="AttributeError"):
        rig.manager.load(module_strategy("typo"))
    rig.start(module_strategy("ema_cross", id="fine"))
    assert rig.manager.ids() == ["fine"]


def _one_strategy_config(root: Path, module_text: str) -> Path:
    folder = root / "plugins"
    folder.mkdir()
    (folder / "odd.py").write_text(GOOD.replace('name = "good"', 'name = "odd"') + module_text)
    (root / "odd.json").write_bytes(orjson.dumps({"id": "odd", "module": "odd", "symbol": "BTC/USD", "quantity": 1}))
    (root / "config.json").write_bytes(orjson.dumps({"strategy_paths": ["plugins"], "strategies": [{"file": "odd.json"}]}))
    return root / "config.json"


def test_a_strategy_whose_constructor_raises_fails_alone_and_validate_names_its_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The config still loads (the daemon starts the other strategies; this one fails when loaded), and `bot validate` reports it."""
    config = _one_strategy_config(
        tmp_path,
        "\n    def __init__(self, params, context):\n"
        "        super().__init__(params, context)\n"
        "        context.indicators().requir('ema', period=3)\n",
    )
    (tmp_path / "plugins" / "good.py").write_text(GOOD)
    (tmp_path / "fine.json").write_bytes(orjson.dumps({"id": "fine", "module": "good", "symbol": "BTC/USD", "quantity": 1}))
    config.write_bytes(orjson.dumps({"strategy_paths": ["plugins"], "strategies": [{"file": "odd.json"}, {"file": "fine.json"}]}))
    loaded = load_config(config)
    assert [s.id for s in loaded.strategies] == ["odd", "fine"]
    assert [str(p) for p in loaded.unbuildable] == [
        f"{tmp_path / 'odd.json'}: <file>: the strategy raised while being built: AttributeError: 'IndicatorRegistry' object has no attribute 'requir'"
    ]
    rig = Rig(loaded.bot, {"BTC/USD": "1m"}, loaded.catalog)
    with pytest.raises(StrategyError, match="requir"):
        rig.manager.load(loaded.strategies[0])
    rig.manager.load(loaded.strategies[1])
    assert rig.manager.ids() == ["fine"]
    assert main(["validate", "--config", str(config)]) == 2
    assert "the strategy raised while being built: AttributeError" in capsys.readouterr().err


def test_a_strategy_is_checked_on_a_context_whose_positions_it_can_read(tmp_path: Path) -> None:
    """Built to find the streams it reads, a strategy sees a real (empty) book, as when it is loaded."""
    config = _one_strategy_config(
        tmp_path,
        "\n    def __init__(self, params, context):\n"
        "        super().__init__(params, context)\n"
        "        assert context.is_flat() and context.positions() == [] and context.position() is None\n"
        "        self.extra = 'ETH/USD' if context.last_price() is None else 'none'\n"
        "\n    def subscriptions(self):\n"
        "        return [(self.ctx.symbol, self.ctx.timeframe), (self.extra, '1m')]\n",
    )
    (tmp_path / "config.json").write_bytes(
        orjson.dumps({"strategy_paths": ["plugins"], "strategies": [{"file": "odd.json"}], "feed": {"source": "ccxt"}, "exchange": {"id": "binance", "feed": {"symbols": ["BTC/USD"]}}})
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    # The stream the constructor chose from the book is checked against the feed.
    assert [(p.field, p.reason) for p in caught.value.problems] == [
        ("params", f"the strategy also reads 'ETH/USD', which is not streamed: add it to exchange.feed.symbols in {config}")
    ]


def test_a_params_model_that_skips_strategy_params_is_refused(tmp_path: Path) -> None:
    """A Params model outside StrategyParams would take quoted numbers: the module is skipped with the reason."""
    folder = tmp_path / "strategies"
    folder.mkdir()
    (folder / "plain.py").write_text(
        '"""A strategy whose Params is a plain pydantic model."""\n'
        "from pydantic import BaseModel\n"
        "from bot.strategy.base import Strategy\n\n\n"
        "class Plain(Strategy):\n"
        '    """Buys nothing."""\n\n'
        '    name = "plain"\n'
        '    version = "1"\n\n'
        "    class Params(BaseModel):\n"
        "        size: float = 1.0\n\n"
        "    def on_candle(self, symbol, timeframe, candle):\n"
        "        return None\n"
    )
    catalog = StrategyCatalog.discover([folder])
    assert [e.name for e in catalog.entries()] == ["declarative"]
    assert any("StrategyParams" in p.reason for p in catalog.problems)
