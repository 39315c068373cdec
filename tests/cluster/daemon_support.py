"""What the daemon worker's tests share: a config with the counting test strategy and a short lease TTL, Sync and Ask messages as the hub sends them."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import msgspec
import orjson

from bot.cluster.fingerprint import strategy_digest
from bot.cluster.messages import Ask, CandleT, StreamHistory, Sync, View, Warm
from bot.strategy.config_load import LoadedConfig, load_config
from tests.support import REPO

CID = "t1"
TTL_S = 2.0
SID = "counting"
# The hub's lane of SID (random per load on a hub).
LANE = "lane-1"
MINUTE_MS = 60_000
# Warm-up candles, then the turns: one a minute on BTC/USD.
START_MS = 1_700_000_000_000 // MINUTE_MS * MINUTE_MS
EMPTY_VIEW = View(positions=[], closed=[], pending_entries=[], marks={})


def daemon_config(tmp: Path, **params: Any) -> Path:
    """config.replay.json's strategies plus `counting` (recording into tmp/asked.txt, `params` added), cluster CID with lease TTL TTL_S."""
    config = orjson.loads((REPO / "config.replay.json").read_bytes())
    for source in config["replay"]["candles"].values():
        source["path"] = str(REPO / source["path"])
    if not (tmp / "strategies").exists():
        shutil.copytree(REPO / "strategies", tmp / "strategies")
    spec = {"id": SID, "module": "counting", "class_name": "Counting", "symbol": "BTC/USD", "timeframe": "1m", "quantity": 0.01,
            "params": {"record": str(tmp / "asked.txt"), **params}, "exits": {"stop_loss_pct": 1.0}}  # fmt: skip
    (tmp / "counting.json").write_bytes(orjson.dumps(spec))
    config["strategies"].append({"file": "counting.json"})
    config["strategy_paths"] = [str(REPO / "tests" / "cluster" / "strategies")]
    config["cluster"] = {"name": CID, "lease_ttl_s": TTL_S}
    path = tmp / "config.json"
    path.write_bytes(orjson.dumps(config))
    return path


def asked(tmp: Path) -> list[int]:
    """The open times the counting strategy decided on, in order."""
    path = tmp / "asked.txt"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def sync_of(
    loaded: LoadedConfig, sid: str = SID, decided: int = 0, pending: int | None = None, digest: str | None = None, lane: str = LANE
) -> Sync:
    """The hub's Sync of `sid` as loaded (its digest computed as the hub does, unless given)."""
    spec = next(s for s in loaded.strategies if s.id == sid)
    raw = msgspec.Raw(spec.model_dump_json(exclude_unset=True).encode())
    return Sync(sid=sid, lane=lane, spec=raw, digest=digest if digest is not None else strategy_digest(loaded.catalog, spec), decided=decided, pending=pending)


def candle(i: int) -> CandleT:
    """The i-th candle of BTC/USD 1m from START_MS."""
    price = 100.0 + i % 7
    return (START_MS + i * MINUTE_MS, price, price + 1.0, price - 1.0, price + 0.5, 10.0)


def warm_chunks(count: int = 40, per_chunk: int = 15) -> list[list[StreamHistory]]:
    """`count` warm-up candles of BTC/USD 1m in chunks of `per_chunk`."""
    candles = [candle(i) for i in range(count)]
    return [[StreamHistory(symbol="BTC/USD", tf="1m", candles=candles[i : i + per_chunk])] for i in range(0, count, per_chunk)]


def warms(sid: str = SID, count: int = 40, per_chunk: int = 15) -> list[Warm]:
    """The Warm messages of a warm-up, the last one `done`."""
    chunks = warm_chunks(count, per_chunk)
    return [Warm(sid=sid, history=chunk, done=i == len(chunks) - 1) for i, chunk in enumerate(chunks)]


def ask(epoch: int, n: int, sid: str = SID, lane: str = LANE) -> Ask:
    """Turn `n` of `sid` under `epoch`: the (1000 + n)-th candle, traded."""
    ts, *_ = bar = candle(1000 + n)
    return Ask(sid=sid, lane=lane, epoch=epoch, n=n, symbol="BTC/USD", tf="1m", ts=ts + MINUTE_MS, candle=bar, kind="trade", view=EMPTY_VIEW)


def loaded_config(path: Path) -> LoadedConfig:
    """The config as the hub loads it."""
    return load_config(path)
