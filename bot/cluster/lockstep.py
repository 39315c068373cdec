"""Lockstep: each candle's strategy work handed to minds elsewhere, their decisions applied on the hub in load order, as in process.

Per delivered candle (the manager's StreamRouter in place of deliver_stream):
pass 1, in load order: every active route's book does its part before the decision (`bar`),
taped, and its view is taken; the step: one Turn per transport, one Decision per route back;
pass 2, in load order: the tape replayed, the decision's signals published, its failure
reported or its actions queued and settled; then the protect routes, as deliver_stream does.
Why that is the in-process order, byte for byte: bot.cluster.tape.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import msgspec

from bot.bus import StrategyPublisher
from bot.cluster.chunks import candles_per_chunk, history_chunks
from bot.cluster.decisions import ForeignEvent, apply_decision, own_event
from bot.cluster.messages import (
    Activate,
    Activated,
    Decision,
    Message,
    Refused,
    Turn,
    TurnEntry,
    TurnKind,
    Warm,
    Warmed,
    decode,
    encode,
)
from bot.cluster.mind import ViewTaker
from bot.cluster.tape import Tape, TapedPublisher, TapedRisk
from bot.config.models import StrategyConfig
from bot.errors import BotError
from bot.events import ActionFailed, Event, Signal, StrategyStateChanged
from bot.ohlcv import Candle
from bot.services import BotServices
from bot.strategy.guard import deliver_stream
from bot.strategy.orchestrator import TradingOrchestrator
from bot.trading.positions import Position
from bot.trading.risk import RiskView

_Key = tuple[str, str]
_Route = tuple[TradingOrchestrator, Callable[[str, str, Candle, int], None]]
_Routes = dict[_Key, tuple[_Route, ...]]
_NO_ROUTES: _Routes = {}
# A strategy's decision and the events it carries, decoded and checked.
_Answer = tuple[Decision, list[Signal | ActionFailed]]


def _own_event(sid: str, raw: msgspec.Raw) -> Signal | ActionFailed:
    """An event a strategy's mind sent: only its own signals and refused actions are its to send."""
    try:
        return own_event(sid, raw)
    except ForeignEvent as exc:
        raise LockstepError(str(exc)) from None


class LockstepError(BotError):
    """The minds answered what lockstep cannot apply (a missing or foreign decision, a failed activation, a worker gone): the run stops.

    A BotError: the replay ends as aborted, its report saying why.
    """


class PendingReplies(Protocol):
    """The replies to a message sent, once they are all there."""

    def result(self) -> list[bytes]:
        """Wait for the replies; LockstepError when they cannot come (the worker is gone)."""
        ...


class MindTransport(Protocol):
    """How the hub reaches the minds of some strategies: one encoded message out, the encoded replies back."""

    @property
    def max_message_bytes(self) -> int:
        """The largest message it carries (a NATS server's max_payload)."""
        ...

    def send(self, message: bytes) -> PendingReplies:
        """Send `message` (Activate, Warm or Turn); its replies (one Activated or Warmed, or one Decision per entry that decides) to wait for."""
        ...


def _reply(transport: MindTransport, message: bytes) -> Message:
    """The one reply `message` gets; a worker's refusal is the run's end."""
    replies = transport.send(message).result()
    if len(replies) != 1:
        raise LockstepError(f"{len(replies)} replies where one was due")
    reply = decode(replies[0])
    if isinstance(reply, Refused):
        raise LockstepError(f"a worker refused a message: {reply.reason}")
    return reply


class LockstepRouter:
    """Routes every stream's candles through minds reached over transports, strategies assigned round-robin in load order."""

    def __init__(self, services: BotServices, transports: list[MindTransport]) -> None:
        if not transports:
            raise ValueError("lockstep needs at least one transport")
        self._services = services
        self._transports = transports
        self._tapes: dict[str, Tape] = {}
        self._views: dict[str, ViewTaker] = {}
        self._specs: dict[str, StrategyConfig] = {}
        self._where: dict[str, MindTransport] = {}
        self._publishers: dict[str, StrategyPublisher] = {}
        self._k = 0
        # A failed activation, raised by the next step: the bus only logs what its subscriber raises.
        self._broken: LockstepError | None = None
        # A strategy's mind is built and warmed when the hub announces it active: the history then is what its orchestrator warmed on.
        services.bus.subscribe(self._on_state, [StrategyStateChanged])

    # -- the books' seam (the factory) ----------------------------------------------------------
    def book(self, spec: StrategyConfig, publish: StrategyPublisher, risk: RiskView) -> tuple[StrategyPublisher, RiskView]:
        """A taped publisher and risk view for the strategy's book; its mind goes to the next transport."""
        tape = Tape()
        self._tapes[spec.id] = tape
        self._views[spec.id] = ViewTaker()
        self._specs[spec.id] = spec
        self._where[spec.id] = self._transports[len(self._where) % len(self._transports)]
        return TapedPublisher(publish, tape), TapedRisk(risk, tape)

    def assignment(self) -> list[list[str]]:
        """Per transport, in order, the strategies whose minds it holds."""
        return [[sid for sid, where in self._where.items() if where is transport] for transport in self._transports]

    def _on_state(self, event: Event) -> None:
        assert isinstance(event, StrategyStateChanged)
        if event.change != "activated" or event.strategy_id not in self._specs or self._broken is not None:
            return  # once broken, the run stops on the first cause
        try:
            self._activate(event.strategy_id)
        except LockstepError as exc:
            self._broken = exc
            raise
        except Exception as exc:
            # Whatever reaching the worker raised: the run stops on it, not on a later symptom.
            self._broken = LockstepError(f"strategy {event.strategy_id!r}: its activation failed: {type(exc).__name__}: {exc}")
            raise self._broken from exc

    def _activate(self, sid: str) -> None:
        transport = self._where[sid]
        # The fields it was given, as a strategy file holds them: a dump of every field also names the declarative
        # strategy's own defaults, which a module strategy's config must not.
        spec = msgspec.Raw(self._specs[sid].model_dump_json(exclude_unset=True).encode())
        activated = _reply(transport, encode(Activate(sid=sid, spec=spec)))
        if not isinstance(activated, Activated) or activated.sid != sid:
            raise LockstepError(f"strategy {sid!r}: its mind answered its activation with {activated!r}")
        # Its orchestrator was built and warmed on the same history with the same code: a mind that cannot is not the same strategy.
        if activated.failure is not None:
            raise LockstepError(f"strategy {sid!r}: its mind could not be built: {activated.failure.type_name}: {activated.failure.message}")
        hub = self._services.hub
        history = [(symbol, tf, hub.history(symbol, tf)) for symbol, tf in activated.streams]
        chunks = list(history_chunks(history, candles_per_chunk(transport.max_message_bytes)))
        for i, chunk in enumerate(chunks):
            warmed = _reply(transport, encode(Warm(sid=sid, history=chunk, done=i == len(chunks) - 1)))
            if not isinstance(warmed, Warmed) or warmed.sid != sid:
                raise LockstepError(f"strategy {sid!r}: its mind answered its warm-up with {warmed!r}")
            if warmed.failure is not None:
                raise LockstepError(f"strategy {sid!r}: its mind failed to warm up: {warmed.failure.type_name}: {warmed.failure.message}")

    # -- the router (the manager) ----------------------------------------------------------------
    def deliver(
        self,
        active: _Routes,
        protect: _Routes,
        key: _Key,
        on_trade_error: Callable[[TradingOrchestrator, Exception], None],
        on_protect_error: Callable[[TradingOrchestrator, Exception], None],
        protected: Callable[[tuple[_Route, ...]], None],
        symbol: str,
        timeframe: str,
        candle: Candle,
        ts: int,
    ) -> None:
        """One lockstep step for a candle of stream `key` (see the module's docstring)."""
        if self._broken is not None:
            raise self._broken
        routes = active.get(key)
        # Read first, as deliver_stream does: a strategy failing on this candle is protected from the next one.
        guarding = protect.get(key)
        if routes:
            self._step(routes, on_trade_error, symbol, timeframe, candle, ts)
        if guarding:
            # The protect routes exactly as in process: deliver_stream with no active route.
            deliver_stream(_NO_ROUTES, protect, key, on_trade_error, on_protect_error, protected, symbol, timeframe, candle, ts)

    def _step(
        self, routes: tuple[_Route, ...], on_trade_error: Callable[[TradingOrchestrator, Exception], None],
        symbol: str, timeframe: str, candle: Candle, ts: int,
    ) -> None:
        held: dict[str, list[Position] | None] = {}
        bar_failed: dict[str, Exception] = {}
        entries: dict[int, list[TurnEntry]] = {}
        for owner, handler in routes:
            sid = owner.strategy_id
            kind: TurnKind = "trade" if handler == owner.on_candle else "other"
            if kind == "trade":
                tape = self._tapes[sid]
                tape.recording = True
                try:
                    held[sid] = owner.bar(symbol, candle, ts)
                except Exception as exc:  # noqa: BLE001  reported in its slot, as in process
                    bar_failed[sid] = exc
                    continue
                finally:
                    tape.recording = False
            view = self._views[sid].take(owner.positions, list(dict.fromkeys(s for s, _ in owner.subscriptions())))
            entries.setdefault(id(self._where[sid]), []).append(TurnEntry(sid=sid, kind=kind, view=view))
        decisions = self._ask(entries, symbol, timeframe, candle, ts)
        for owner, handler in routes:
            sid = owner.strategy_id
            trading = sid in held or sid in bar_failed
            if trading:
                self._tapes[sid].replay()
            failed = bar_failed.get(sid)
            if failed is not None:
                on_trade_error(owner, failed)
                continue
            try:
                self._apply(owner, decisions[sid], held.get(sid), trading, candle, ts)
            except Exception as exc:  # noqa: BLE001  the seam: its failure, or what settling raised, fails it alone
                on_trade_error(owner, exc)

    def _apply(self, owner: TradingOrchestrator, answer: _Answer, held: list[Position] | None, trading: bool, candle: Candle, ts: int) -> None:
        decision, events = answer
        sid = owner.strategy_id
        publish = self._publishers.get(sid)
        if publish is None:
            # Straight to the bus, not the book's taped publisher: the decision's events are sequenced in their slot.
            publish = self._publishers[sid] = StrategyPublisher(self._services.bus, sid)
        apply_decision(owner, publish, decision, events, held, trading, candle, ts)

    def _ask(self, entries: dict[int, list[TurnEntry]], symbol: str, timeframe: str, candle: Candle, ts: int) -> dict[str, _Answer]:
        """Every transport's decisions on its entries, checked whole before any is applied: what a worker gets wrong stops the run."""
        answers: dict[str, _Answer] = {}
        # Every worker's turn sent before any reply is awaited: the workers decide at once.
        sent: list[tuple[int, list[TurnEntry], PendingReplies]] = []
        for transport in self._transports:
            mine = entries.get(id(transport))
            if not mine:
                continue
            self._k += 1
            turn = Turn(k=self._k, symbol=symbol, tf=timeframe, candle=tuple(candle), ts=ts, entries=mine)  # type: ignore[arg-type]
            sent.append((self._k, mine, transport.send(encode(turn))))
        for k, mine, pending in sent:
            asked = {entry.sid for entry in mine}
            for reply in pending.result():
                decision = decode(reply)
                if isinstance(decision, Refused):
                    raise LockstepError(f"turn {k} ({symbol} {timeframe} {ts}): a worker refused it: {decision.reason}")
                if not isinstance(decision, Decision) or decision.k != k:
                    raise LockstepError(f"turn {k}: a reply that is not its decision: {decision!r}")
                sid = decision.sid
                if sid not in asked:
                    raise LockstepError(f"turn {k} ({symbol} {timeframe} {ts}): a decision for {sid!r}, not asked of that worker")
                if sid in answers:
                    raise LockstepError(f"turn {k} ({symbol} {timeframe} {ts}): two decisions for {sid!r}")
                answers[sid] = (decision, [_own_event(sid, raw) for raw in decision.events])
            missing = sorted(entry.sid for entry in mine if entry.kind != "history" and entry.sid not in answers)
            if missing:
                raise LockstepError(f"turn {k} ({symbol} {timeframe} {ts}): no decision for {missing}")
        return answers

    def history(self, routes: tuple[_Route, ...], symbol: str, timeframe: str, candle: Candle, ts: int) -> None:
        """A candle that is history to the strategies trading on its stream: their minds take it too (nothing is decided)."""
        if self._broken is not None:
            raise self._broken
        entries: dict[int, list[TurnEntry]] = {}
        for owner, _ in routes:
            if owner.state == "active":
                entries.setdefault(id(self._where[owner.strategy_id]), []).append(TurnEntry(sid=owner.strategy_id, kind="history", view=None))
        if entries and self._ask(entries, symbol, timeframe, candle, ts):
            raise LockstepError(f"a decision on history {symbol} {timeframe} {ts}")
