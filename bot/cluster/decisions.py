"""A mind's decision carried out on the hub's book: its events published in its slot, its failure raised, its actions queued and settled."""
from __future__ import annotations

import msgspec

from bot.bus import StrategyPublisher
from bot.cluster.messages import Decision, action_of
from bot.errors import BotError
from bot.event_codec import decode_message
from bot.events import ActionFailed, Signal
from bot.ohlcv import Candle
from bot.strategy.guard import RemoteStrategyError
from bot.strategy.orchestrator import TradingOrchestrator
from bot.trading.positions import Position


class ForeignEvent(BotError):
    """A mind sent an event that is not its own signal or refused action."""


def own_event(sid: str, raw: msgspec.Raw) -> Signal | ActionFailed:
    """An event a strategy's mind sent: only its own signals and refused actions are its to send (ForeignEvent otherwise)."""
    event = decode_message(bytes(raw))
    if not isinstance(event, Signal | ActionFailed) or event.strategy_id != sid:
        raise ForeignEvent(f"strategy {sid!r}: its mind sent a {event.type} event of {event.strategy_id!r}")
    return event


def apply_decision(
    owner: TradingOrchestrator,
    publish: StrategyPublisher,
    decision: Decision,
    events: list[Signal | ActionFailed],
    held: list[Position] | None,
    trading: bool,
    candle: Candle,
    ts: int,
    settle_ts: int | None = None,
) -> None:
    """Carry out `decision` (its `events` decoded by own_event) on `owner`'s book, as its in-process turn would after the strategy's call.

    RemoteStrategyError when the mind failed (the caller fails the strategy). `trading`: a
    candle of its trading stream (exits of `held` managed, the candle counted), else another
    timeframe's. `settle_ts`: the clock to settle on, when something may have moved it since `bar`.
    """
    for event in events:
        # Sequenced here, in its slot: the same event the in-process publish builds.
        if isinstance(event, Signal):
            publish(Signal, event.ts, event.decision, event.score, event.symbol, event.close, event.analyzers)
        else:
            # An action its context refused: failed in its book's count, as in process.
            publish(ActionFailed, event.ts, event.kind, event.error)
            owner.actions.failed += 1
    failure = decision.failure
    if failure is not None:
        raise RemoteStrategyError(failure.type_name, failure.message, failure.where)
    for action in decision.actions:
        owner.actions.put(action_of(action))
    if trading:
        owner.settle(held, candle, decision.busy_ns, settle_ts)
    else:
        owner.settle_other(ts)
