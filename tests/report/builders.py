"""Replay set-ups for the report tests: the repository's strategies plus a trailing-stop one, on given candles."""
from __future__ import annotations

import shutil
from pathlib import Path

import orjson

from tests.support import BASIC_CONFIG, REPO, strategy

TRAIL = {
    "id": "trail",
    "timeframe": "15m",
    "analyzers": [{"type": "ema_cross", "params": {"fast": 5, "slow": 13}}],
    "exits": {"trailing": {"activation_pct": 0.3, "distance_pct": 0.4}},
    "fees": {"taker_bps": 4},
}


def write_replay_config(root: Path, data_file: Path) -> Path:
    """Write config.json and strategies/ under `root`: the repository's strategies and `trail`, over `data_file`."""
    shutil.copytree(REPO / "strategies", root / "strategies")
    (root / "strategies" / "trail.json").write_bytes(orjson.dumps(strategy(**TRAIL).model_dump()))
    config = orjson.loads(BASIC_CONFIG.read_bytes())
    config["replay"]["candles"] = {"BTC/USD": {"path": str(data_file)}}
    config["strategies"] = [*config["strategies"], {"file": "strategies/trail.json"}]
    path = root / "config.json"
    path.write_bytes(orjson.dumps(config))
    return path


def write_two_currency_config(root: Path) -> Path:
    """Write config.json naming the catalog's ema_cross (BTC/USD) and pairs_arbitrage (ETH/BTC, XMR/BTC) over the bundled candles."""
    bundled = orjson.loads((REPO / "config.replay.json").read_bytes())
    candles = {symbol: {**source, "path": str(REPO / source["path"])} for symbol, source in bundled["replay"]["candles"].items()}
    config = {
        "replay": {"candles": candles},
        "risk": bundled["risk"],
        "strategy_defaults": bundled["strategy_defaults"],
        "strategy_paths": [str(REPO / "strategies")],
        "strategies": [{"file": str(REPO / "strategies" / "catalog" / f"{name}.json")} for name in ("ema_cross", "pairs_arbitrage")],
    }
    path = root / "config.json"
    path.write_bytes(orjson.dumps(config))
    return path
