"""The event bus: tagging rules, filtered subscriptions, bounded async streams."""
from __future__ import annotations

import dataclasses

import anyio
import pytest

from bot.bus import EventBus, StrategyPublisher
from bot.clock import ReplayClock
from bot.errors import EventTaggingError
from bot.events import Event


def make_bus() -> tuple[EventBus, ReplayClock]:
    clock = ReplayClock(1_000)
    return EventBus(clock), clock


def test_strategy_event_without_strategy_id_is_refused() -> None:
    bus, _ = make_bus()
    with pytest.raises(EventTaggingError, match="order_filled.*strategy_id"):
        bus.publish("order_filled", {"price": 1.0})
    assert bus.seq == 0


def test_market_event_with_strategy_id_and_unknown_type_are_refused() -> None:
    bus, _ = make_bus()
    with pytest.raises(EventTaggingError, match="market-wide"):
        bus.publish("candle", {}, strategy_id="s1")
    with pytest.raises(EventTaggingError, match="unknown event type"):
        bus.publish("no_such_type", {})


def test_envelope_is_immutable_and_sequenced_with_clock_time() -> None:
    bus, clock = make_bus()
    first = bus.publish("candle", {"n": 1})
    clock.advance_to(5_000)
    second = bus.publish("signal", {"n": 2}, strategy_id="s1")
    assert (first.seq, first.ts) == (1, 1_000)
    assert (second.seq, second.ts, second.strategy_id) == (2, 5_000, "s1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.seq = 9  # type: ignore[misc]


def test_subscribe_by_type_by_strategy_and_both() -> None:
    bus, _ = make_bus()
    by_type: list[Event] = []
    by_strategy: list[Event] = []
    both: list[Event] = []
    everything: list[Event] = []
    bus.subscribe(by_type.append, types=["signal"])
    bus.subscribe(by_strategy.append, strategy_id="a")
    bus.subscribe(both.append, types=["signal"], strategy_id="b")
    bus.subscribe(everything.append)
    bus.publish("signal", {}, "a")
    bus.publish("signal", {}, "b")
    bus.publish("order_filled", {}, "a")
    bus.publish("candle", {})
    assert [(e.type, e.strategy_id) for e in by_type] == [("signal", "a"), ("signal", "b")]
    assert [(e.type, e.strategy_id) for e in by_strategy] == [("signal", "a"), ("order_filled", "a")]
    assert [(e.type, e.strategy_id) for e in both] == [("signal", "b")]
    assert len(everything) == 4


def test_unsubscribe_stops_delivery_and_unknown_types_rejected() -> None:
    bus, _ = make_bus()
    got: list[Event] = []
    sub = bus.subscribe(got.append, types=["candle"])
    bus.publish("candle", {})
    bus.unsubscribe(sub)
    bus.publish("candle", {})
    assert len(got) == 1
    assert bus.subscriber_count() == 0
    with pytest.raises(ValueError, match="unknown event types"):
        bus.subscribe(got.append, types=["candel"])


def test_strategy_publisher_always_tags() -> None:
    bus, _ = make_bus()
    got: list[Event] = []
    bus.subscribe(got.append)
    StrategyPublisher(bus, "mine")("signal", {"x": 1})
    assert got[0].strategy_id == "mine"


@pytest.mark.asyncio
async def test_slow_stream_is_bounded_counts_drops_and_never_blocks_publisher() -> None:
    bus, _ = make_bus()
    stream = bus.stream(types=["candle"], maxlen=10)
    with anyio.fail_after(1):
        for i in range(1_000):
            bus.publish("candle", {"i": i})  # synchronous: never waits for the reader
    assert len(stream) == 10
    assert stream.dropped == 990
    received = []
    bus.close_stream(stream)
    async for event in stream:
        received.append(event.payload["i"])
    assert received == list(range(990, 1_000))


@pytest.mark.asyncio
async def test_stream_delivers_to_a_waiting_consumer_and_ends_on_close() -> None:
    bus, _ = make_bus()
    stream = bus.stream(strategy_id="s1")
    received: list[int] = []

    async def consume() -> None:
        async for event in stream:
            received.append(event.seq)

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        await anyio.wait_all_tasks_blocked()
        bus.publish("signal", {}, "s1")
        bus.publish("signal", {}, "s2")
        bus.publish("signal", {}, "s1")
        await anyio.wait_all_tasks_blocked()
        bus.close()
    assert received == [1, 3]


def test_before_delivery_runs_first_and_a_failure_stops_delivery() -> None:
    bus, _ = make_bus()
    order: list[str] = []
    bus.subscribe(lambda e: order.append(f"subscriber:{e.seq}"))

    def journal(event: Event) -> None:
        order.append(f"journal:{event.seq}")
        if event.payload.get("disk") == "full":
            raise OSError("disk full")

    bus.before_delivery = journal
    bus.publish("signal", {}, "s1")
    with pytest.raises(OSError, match="disk full"):
        bus.publish("signal", {"disk": "full"}, "s1")
    # The change that could not be recorded was never announced.
    assert order == ["journal:1", "subscriber:1", "journal:2"]
