"""What hub and worker must share to trade alike, and the differences named when they do not."""
from __future__ import annotations

import hashlib
import inspect
from pathlib import Path

from bot.cluster.messages import PROTOCOL, Fingerprint
from bot.config.models import StrategyConfig
from bot.event_codec import VERSION as CODEC_VERSION
from bot.strategy.catalog import CatalogLookupError, StrategyCatalog
from bot.strategy.config_load import LoadedConfig
from bot.version import bot_version


def _code(catalog: StrategyCatalog, module: str | None, class_name: str | None) -> bytes:
    """The source of the file a strategy's class comes from (b"" when the catalog cannot name it: its config differs then)."""
    try:
        entry = catalog.resolve(module, class_name)
    except CatalogLookupError:
        return b""
    path = entry.path if entry.path is not None else Path(inspect.getfile(entry.cls))
    return path.read_bytes()


def strategy_digest(catalog: StrategyCatalog, spec: StrategyConfig) -> str:
    """A digest of a strategy's config (as given) and of its class's source file: equal where it trades alike."""
    digest = hashlib.sha256(spec.model_dump_json(exclude_unset=True).encode())
    digest.update(b"\0")
    digest.update(_code(catalog, spec.module, spec.class_name))
    return digest.hexdigest()


def fingerprint(loaded: LoadedConfig) -> Fingerprint:
    """This process's fingerprint: versions, and per enabled strategy a digest of its config (as given) and its class's source file."""
    strategies = {spec.id: strategy_digest(loaded.catalog, spec) for spec in loaded.enabled_strategies()}
    return Fingerprint(bot_version=bot_version(), protocol=PROTOCOL, codec=CODEC_VERSION, strategies=strategies)


def differences(hub: Fingerprint, worker: Fingerprint) -> list[str]:
    """What differs between the hub's fingerprint and a worker's, each named (empty: they trade alike)."""
    problems = []
    if hub.bot_version != worker.bot_version:
        problems.append(f"bot version {worker.bot_version} on the worker, {hub.bot_version} on the hub")
    if hub.protocol != worker.protocol:
        problems.append(f"cluster protocol {worker.protocol} on the worker, {hub.protocol} on the hub")
    if hub.codec != worker.codec:
        problems.append(f"event codec {worker.codec} on the worker, {hub.codec} on the hub")
    if set(hub.strategies) != set(worker.strategies):
        problems.append(f"strategy set differs: the hub has {sorted(hub.strategies)}, the worker has {sorted(worker.strategies)}")
    for sid in sorted(set(hub.strategies) & set(worker.strategies)):
        if hub.strategies[sid] != worker.strategies[sid]:
            problems.append(f"strategy {sid}: its config or its code differs from the hub's")
    return problems
