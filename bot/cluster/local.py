"""A worker's minds, answering the hub's messages: in this process (encoded and decoded as over the wire) or behind a worker's NATS subject."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.cluster.messages import (
    Activate,
    Activated,
    Message,
    ProtocolError,
    Refused,
    Turn,
    Warm,
    Warmed,
    decode,
    encode,
)
from bot.cluster.mind import Mind, describe
from bot.config.models import StrategyConfig
from bot.ohlcv import Candle
from bot.strategy.base import Strategy, StrategyContext, Stream
from bot.strategy.catalog import StrategyCatalog
from bot.strategy.config_check import PARAMS_CHECKS


class Answered:
    """Replies already there (a MindTransport's pending replies, answered in process)."""

    def __init__(self, replies: list[bytes]) -> None:
        self._replies = replies

    def result(self) -> list[bytes]:
        """The replies."""
        return self._replies


# The message size an in-process transport allows: a NATS server's default max_payload, so warm-ups are chunked as over the wire.
LOCAL_MAX_MESSAGE_BYTES = 1024 * 1024


class LocalMinds:
    """A worker's minds: the messages a hub sends it are answered here (a MindTransport in process, the worker's handler over NATS)."""

    max_message_bytes = LOCAL_MAX_MESSAGE_BYTES

    def __init__(self, catalog: StrategyCatalog, on_refused: Callable[[str], None] | None = None) -> None:
        self._catalog = catalog
        # Told why, each time a message is refused (the worker counts and logs them).
        self._on_refused = on_refused
        self._minds: dict[str, Mind] = {}
        # Warm-up history received so far, per strategy whose mind is built but not yet warmed.
        self._warming: dict[str, dict[Stream, list[Candle]]] = {}

    def _build_strategy(self, context: StrategyContext) -> Strategy[Any]:
        spec = context.spec
        return self._catalog.build(spec.module, spec.class_name, spec.params, context)

    def strategy_ids(self) -> list[str]:
        """The strategies it holds a warmed mind of."""
        return [sid for sid in self._minds if sid not in self._warming]

    def send(self, message: bytes) -> Answered:
        """`request`, as a MindTransport's pending replies."""
        return Answered(self.request(message))

    def request(self, message: bytes) -> list[bytes]:
        """The replies to one message: what it cannot act on gets one Refused saying why, never an exception."""
        try:
            return [encode(reply) for reply in self._answer(decode(message))]
        except ProtocolError as exc:
            if self._on_refused is not None:
                self._on_refused(str(exc))
            return [encode(Refused(reason=str(exc)))]

    def _answer(self, decoded: Message) -> list[Any]:
        if isinstance(decoded, Activate):
            return [self._activate(decoded)]
        if isinstance(decoded, Warm):
            return [self._warm(decoded)]
        if isinstance(decoded, Turn):
            unknown = sorted({e.sid for e in decoded.entries if e.sid not in self._minds or e.sid in self._warming})
            if unknown:
                raise ProtocolError(f"turn {decoded.k}: no warmed mind of {unknown} here")
            return self._turn(decoded)
        raise ProtocolError(f"a mind answers activations, warm-ups and turns, not {type(decoded).__name__}")

    def _activate(self, message: Activate) -> Activated:
        try:
            spec = StrategyConfig.model_validate_json(bytes(message.spec), context=PARAMS_CHECKS)
            mind = Mind(spec, self._build_strategy)
        except Exception as exc:  # noqa: BLE001  the seam: what its code raises is its failure, reported to the hub
            return Activated(sid=message.sid, failure=describe(exc), streams=[])
        self._minds[message.sid] = mind
        self._warming[message.sid] = {}
        return Activated(sid=message.sid, failure=None, streams=mind.subscriptions())

    def _warm(self, message: Warm) -> Warmed:
        sid = message.sid
        taken = self._warming.get(sid)
        if taken is None:
            raise ProtocolError(f"warm-up of {sid!r}: no mind of it being activated here")
        for part in message.history:
            taken.setdefault((part.symbol, part.tf), []).extend(Candle(*c) for c in part.candles)
        if not message.done:
            return Warmed(sid=sid, failure=None)
        del self._warming[sid]
        try:
            self._minds[sid].warm_up(taken)
        except Exception as exc:  # noqa: BLE001  the seam: what its code raises is its failure, reported to the hub
            del self._minds[sid]
            return Warmed(sid=sid, failure=describe(exc))
        return Warmed(sid=sid, failure=None)

    def _turn(self, turn: Turn) -> list[Any]:
        candle = Candle(*turn.candle)
        decisions = []
        for entry in turn.entries:
            decision = self._minds[entry.sid].decide(turn.k, turn.symbol, turn.tf, candle, turn.ts, entry.kind, entry.view)
            if decision is not None:
                decisions.append(decision)
        return decisions
