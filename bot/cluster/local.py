"""The in-process transport: minds in this process, every message encoded and decoded on the way, as over the wire."""
from __future__ import annotations

from typing import Any

from bot.cluster.messages import Activate, Activated, ProtocolError, Turn, decode, encode
from bot.cluster.mind import Mind, describe
from bot.config.models import StrategyConfig
from bot.ohlcv import Candle
from bot.strategy.base import Strategy, StrategyContext
from bot.strategy.catalog import StrategyCatalog
from bot.strategy.config_check import PARAMS_CHECKS


class LocalMinds:
    """A worker's minds without the worker: the messages a hub sends it are answered here (a MindTransport)."""

    def __init__(self, catalog: StrategyCatalog) -> None:
        self._catalog = catalog
        self._minds: dict[str, Mind] = {}

    def _build_strategy(self, context: StrategyContext) -> Strategy[Any]:
        spec = context.spec
        return self._catalog.build(spec.module, spec.class_name, spec.params, context)

    def strategy_ids(self) -> list[str]:
        """The strategies it holds a mind of."""
        return list(self._minds)

    def request(self, message: bytes) -> list[bytes]:
        """Answer an Activate with one Activated, a Turn with one Decision per entry that decides."""
        decoded = decode(message)
        if isinstance(decoded, Activate):
            return [encode(self._activate(decoded))]
        if isinstance(decoded, Turn):
            return [encode(d) for d in self._turn(decoded)]
        raise ProtocolError(f"a mind answers activations and turns, not {type(decoded).__name__}")

    def _activate(self, message: Activate) -> Activated:
        try:
            spec = StrategyConfig.model_validate_json(bytes(message.spec), context=PARAMS_CHECKS)
            mind = Mind(spec, self._build_strategy)
            mind.warm_up({(h.symbol, h.tf): [Candle(*c) for c in h.candles] for h in message.history})
        except Exception as exc:  # noqa: BLE001  the seam: what its code raises is its failure, reported to the hub
            return Activated(sid=message.sid, failure=describe(exc))
        self._minds[message.sid] = mind
        return Activated(sid=message.sid, failure=None)

    def _turn(self, turn: Turn) -> list[Any]:
        candle = Candle(*turn.candle)
        decisions = []
        for entry in turn.entries:
            decision = self._minds[entry.sid].decide(turn.k, turn.symbol, turn.tf, candle, turn.ts, entry.kind, entry.view)
            if decision is not None:
                decisions.append(decision)
        return decisions
