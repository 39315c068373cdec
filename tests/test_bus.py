"""The event bus: tagging rules, filtered subscriptions, bounded async streams."""
from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest

from bot.bus import EventBus, StrategyPublisher
from bot.clock import ReplayClock
from bot.errors import EventTaggingError
from bot.events import ActionFailed, CandleClosed, CandleGap, Event, OrderSubmitted, ReplayFinished, Signal
from bot.ohlcv import Candle

CANDLE = Candle(0, 1.0, 2.0, 0.5, 1.5, 10.0)


def signal(bus: EventBus, strategy_id: str, decision: str = "entry") -> Signal:
    return bus.publish(Signal, None, strategy_id, decision, 1.0, "ETH/BTC", 1.5, {})


def candle(bus: EventBus, ts: int | None = None, symbol: str = "ETH/BTC") -> CandleClosed:
    return bus.publish(CandleClosed, ts, symbol, "1m", CANDLE)


def make_bus() -> tuple[EventBus, ReplayClock]:
    clock = ReplayClock(1_000)
    return EventBus(clock), clock


def test_strategy_event_without_strategy_id_is_refused() -> None:
    bus, _ = make_bus()
    # What mypy refuses statically (a missing or non-str id) the bus refuses at run time.
    with pytest.raises(EventTaggingError, match="action_failed.*strategy_id"):
        bus.publish(ActionFailed, None, None, "open", "boom")  # type: ignore[arg-type]
    with pytest.raises(EventTaggingError, match="action_failed.*strategy_id"):
        bus.publish(ActionFailed, None, "", "open", "boom")
    assert bus.seq == 0


def test_an_event_missing_a_field_or_with_an_unknown_one_cannot_be_built() -> None:
    bus, _ = make_bus()
    with pytest.raises(TypeError, match="Missing required argument 'error'"):
        bus.publish(ActionFailed, None, "s1", "open")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="Unexpected keyword argument 'price'"):
        bus.publish(CandleGap, None, "ETH/BTC", "1m", 0, 120_000, 1, price=1.0)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        CandleClosed(1, 2, 2, "s1", "ETH/BTC", "1m", CANDLE)  # type: ignore[call-arg, arg-type]  # a market event has no strategy id
    assert bus.seq == 0


def test_market_event_has_no_strategy_id_and_subscribing_to_a_non_event_is_refused() -> None:
    bus, _ = make_bus()
    assert candle(bus).strategy_id is None
    with pytest.raises(ValueError, match="not event classes"):
        bus.subscribe(print, types=["candle"])  # type: ignore[list-item]


def test_envelope_is_immutable_and_sequenced_with_clock_time() -> None:
    bus, clock = make_bus()
    first = candle(bus)
    clock.advance_to(5_000)
    second = signal(bus, "s1")
    assert (first.seq, first.ts, first.ts_init) == (1, 1_000, 1_000)
    assert (second.seq, second.ts, second.strategy_id) == (2, 5_000, "s1")
    with pytest.raises(AttributeError, match="immutable"):
        first.seq = 9  # type: ignore[misc]


def test_ts_init_is_the_wall_clock_when_given_and_the_market_time_without() -> None:
    market, wall = ReplayClock(1_000), ReplayClock(777_000)
    live = EventBus(market, wall_clock=wall)
    event = live.publish(CandleClosed, 60_000, "ETH/BTC", "1m", CANDLE)
    assert (event.ts, event.ts_init) == (60_000, 777_000)
    replay = EventBus(market)
    event = replay.publish(CandleClosed, 60_000, "ETH/BTC", "1m", CANDLE)
    assert (event.ts, event.ts_init) == (60_000, 60_000)


def test_subscribe_by_type_by_strategy_and_both() -> None:
    bus, _ = make_bus()
    by_type: list[Event] = []
    by_strategy: list[Event] = []
    both: list[Event] = []
    everything: list[Event] = []
    bus.subscribe(by_type.append, types=[Signal])
    bus.subscribe(by_strategy.append, strategy_id="a")
    bus.subscribe(both.append, types=[Signal], strategy_id="b")
    bus.subscribe(everything.append)
    signal(bus, "a")
    signal(bus, "b")
    bus.publish(ActionFailed, None, "a", "open", "boom")
    candle(bus)
    assert [(e.type, e.strategy_id) for e in by_type] == [("signal", "a"), ("signal", "b")]
    assert [(e.type, e.strategy_id) for e in by_strategy] == [("signal", "a"), ("action_failed", "a")]
    assert [(e.type, e.strategy_id) for e in both] == [("signal", "b")]
    assert len(everything) == 4


def test_unsubscribe_stops_delivery() -> None:
    bus, _ = make_bus()
    got: list[Event] = []
    sub = bus.subscribe(got.append, types=[CandleClosed])
    candle(bus)
    bus.unsubscribe(sub)
    candle(bus)
    assert len(got) == 1
    assert bus.subscriber_count() == 0


def test_strategy_publisher_always_tags() -> None:
    bus, _ = make_bus()
    got: list[Event] = []
    bus.subscribe(got.append)
    StrategyPublisher(bus, "mine")(ActionFailed, None, "open", "boom")
    assert got[0].strategy_id == "mine"
    assert isinstance(got[0], ActionFailed) and got[0].error == "boom"


def test_a_strategy_publisher_refuses_a_market_event() -> None:
    """Its id would otherwise fill the market event's first field: ReplayFinished(candles="a")."""
    bus, _ = make_bus()
    got: list[Event] = []
    bus.subscribe(got.append)
    with pytest.raises(EventTaggingError, match="'replay_finished' is not a strategy event"):
        StrategyPublisher(bus, "a")(ReplayFinished, None, 5)  # type: ignore[type-var, arg-type]
    assert got == [] and bus.seq == 0


@pytest.mark.parametrize("strategy_id", ["", None])
def test_a_strategy_publisher_needs_a_strategy_id(strategy_id: str) -> None:
    """Refused when made, since its events are built with the id and not checked again."""
    bus, _ = make_bus()
    with pytest.raises(EventTaggingError, match="needs a strategy id"):
        StrategyPublisher(bus, strategy_id)


def test_strategy_and_market_events_share_one_sequence_and_keyword_fields_reach_the_event() -> None:
    bus, _ = make_bus()
    got: list[Event] = []
    bus.subscribe(got.append)
    publish = StrategyPublisher(bus, "s")
    candle(bus)
    sent = publish(OrderSubmitted, 7, "s-1", "BTC/USD", "buy", 0.5, "open", "s-p1", "signal", 100.0, order_type="limit", limit_price=99.0)
    candle(bus)
    assert [e.seq for e in got] == [1, 2, 3] and bus.seq == 3
    assert got[1] is sent and sent.ts == 7 and sent.strategy_id == "s"
    assert sent.order_type == "limit" and sent.limit_price == 99.0 and sent.group is None


def test_subscribe_each_delivers_to_the_handler_of_each_class_asked_once_per_route() -> None:
    bus, _ = make_bus()
    asked: list[type[Event]] = []
    got: list[tuple[str, Event]] = []

    def handler_for(cls: type[Event]) -> Callable[[Event], None]:
        asked.append(cls)
        return lambda event: got.append((cls.type, event))

    also: list[Event] = []
    sub = bus.subscribe_each(handler_for)
    bus.subscribe(also.append, types=[CandleClosed])
    first, second = candle(bus), candle(bus)
    failed = StrategyPublisher(bus, "s")(ActionFailed, None, "open", "boom")
    assert got == [("candle", first), ("candle", second), ("action_failed", failed)]
    assert asked == [CandleClosed, ActionFailed] and also == [first, second]
    bus.unsubscribe(sub)
    candle(bus)
    assert len(got) == 3 and len(also) == 3


def test_subscribing_to_a_class_that_is_not_an_event_is_a_value_error() -> None:
    bus, _ = make_bus()
    with pytest.raises(ValueError, match="not event classes.*str"):
        bus.subscribe(print, types=[str])  # type: ignore[list-item]
    assert bus.subscriber_count() == 0


class _TickingClock:
    """A wall clock that moves on by 1 ms at every read, as a real one can between two reads."""

    def __init__(self) -> None:
        self.reads = 0

    def now_ms(self) -> int:
        self.reads += 1
        return 1_000 + self.reads


def test_in_live_an_event_stamped_by_the_wall_clock_gets_the_same_ts_init() -> None:
    wall = _TickingClock()
    bus = EventBus(wall, wall_clock=wall)
    event = candle(bus)
    assert event.ts == event.ts_init and wall.reads == 1
    stamped = candle(bus, ts=60_000)  # a candle's own time: ts_init is when it was seen
    assert (stamped.ts, stamped.ts_init) == (60_000, 1_002)


@pytest.mark.asyncio
async def test_slow_stream_is_bounded_counts_drops_and_never_blocks_publisher() -> None:
    bus, _ = make_bus()
    stream = bus.stream(types=[CandleClosed], maxlen=10)
    for i in range(1_000):
        candle(bus, i)  # synchronous: publishing never waits for the reader
    assert len(stream) == 10
    assert stream.dropped == 990
    received = []
    bus.close_stream(stream)
    async for event in stream:
        received.append(event.ts)
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
        signal(bus, "s1")
        signal(bus, "s2")
        signal(bus, "s1")
        await anyio.wait_all_tasks_blocked()
        bus.close()
    assert received == [1, 3]


def test_before_delivery_runs_first_and_a_failure_stops_delivery() -> None:
    bus, _ = make_bus()
    order: list[str] = []
    bus.subscribe(lambda e: order.append(f"subscriber:{e.seq}"))

    def journal(event: Event) -> None:
        order.append(f"journal:{event.seq}")
        if isinstance(event, Signal) and event.decision == "disk full":
            raise OSError("disk full")

    bus.before_delivery = journal
    signal(bus, "s1")
    with pytest.raises(OSError, match="disk full"):
        signal(bus, "s1", "disk full")
    # The change that could not be recorded was never announced.
    assert order == ["journal:1", "subscriber:1", "journal:2"]
