"""Action handlers and the action queue: what each action does, and how a bad one fails alone."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from bot.errors import ActionError
from bot.events import ActionFailed, OrderFilled, OrderSubmitted, PositionClosed, PositionOpened, PositionReduced, StopUpdated, TrailingActivated
from bot.trading.actions import (
    Action,
    ActionQueue,
    ActivateTrailingStop,
    ClosePair,
    ClosePercent,
    OpenPair,
    OpenPosition,
    UpdateStopLoss,
    fits,
    non_finite,
    unfit,
)
from tests.support import approx_float
from tests.trading.helpers import SYMBOL, Session, flat, quiet

approx = pytest.approx


def _holding(**overrides: Any) -> Session:
    """A session whose strategy s1 holds 1.0 long entered at 100."""
    session = Session(quiet(**overrides))
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 1.0))
    session.bars(flat(100))
    return session


def _failures(session: Session) -> list[tuple[str | None, str]]:
    return [(e.strategy_id, e.kind) for e in session.rig.of_type(ActionFailed)]


# -- handlers that succeed --------------------------------------------------------------------------


def test_open_position_sends_an_entry_that_fills_next_candle() -> None:
    """OpenPosition: order_submitted at once (ref = last close 100), position_opened at the next open 101."""
    session = Session(quiet())
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 0.5, reason="manual"))
    submitted = session.events(OrderSubmitted)
    assert [(o.side, o.quantity, o.intent, o.reason, o.ref_price) for o in submitted] == [
        ("buy", 0.5, "open", "manual", 100)
    ]
    assert session.events(PositionOpened) == []
    session.bars((101.0, 102.0, 100.0, 101.5))
    opened = session.events(PositionOpened)
    assert [(p.position.side, p.position.quantity, p.position.entry_price, p.position.status) for p in opened] == [("long", 0.5, 101.0, "open")]
    orch = session.orch()
    assert orch.actions.done == 1
    assert orch.actions.failed == 0


def test_close_percent_half_then_all() -> None:
    """50% closes 0.5 of 1.0 (reduced), then 100% closes the remaining 0.5 (closed)."""
    session = _holding()
    position = session.position()
    session.act(ClosePercent(position.id, 50.0))
    session.bars(flat(110))
    reduced = session.events(PositionReduced)
    assert [(r.closed_quantity, r.position.quantity, r.price) for r in reduced] == [(0.5, 0.5, 110.0)]
    assert reduced[0].position.realised == approx(5.0, rel=1e-12)
    assert position.status == "partially_closed"

    session.act(ClosePercent(position.id, 100.0))
    session.bars(flat(120))
    closed = session.events(PositionClosed)
    assert len(closed) == 1
    assert closed[0].trade.pnl == approx(15.0, rel=1e-12)  # 0.5 * 10 + 0.5 * 20
    assert closed[0].trade.exit_price == approx(115.0, rel=1e-12)
    assert [f.fill.quantity for f in session.events(OrderFilled)] == [1.0, 0.5, 0.5]
    assert session.orch().positions.positions == {}


def test_close_percent_is_a_percent_of_the_remaining_quantity() -> None:
    """Two sequential 50% closes of 1.0 close 0.5 then 0.25, leaving 0.25."""
    session = _holding()
    position = session.position()
    session.act(ClosePercent(position.id, 50.0))
    session.bars(flat(100))
    session.act(ClosePercent(position.id, 50.0))
    session.bars(flat(100))
    assert [r.closed_quantity for r in session.events(PositionReduced)] == [0.5, 0.25]
    assert position.quantity == approx(0.25, rel=1e-12)


def test_two_half_closes_queued_together_close_the_same_as_one_after_the_other() -> None:
    """Queued in one batch, 50% then 50% of 1.0 send 0.5 and 0.25: each takes its share of what is not yet being closed."""
    session = _holding()
    position = session.position()
    session.act(ClosePercent(position.id, 50.0), ClosePercent(position.id, 50.0))
    session.bars(flat(100))
    assert [r.closed_quantity for r in session.events(PositionReduced)] == [0.5, 0.25]
    assert position.quantity == approx(0.25, rel=1e-12)


def test_update_stop_loss_moves_the_stop_that_then_triggers() -> None:
    """UpdateStopLoss to 99 publishes stop_updated; a low of 98.5 then closes at 99."""
    session = _holding(exits={"stop_loss_pct": 5})
    position = session.position()
    session.act(UpdateStopLoss(position.id, 99.0, reason="tighten"))
    assert [(u.position_id, u.stop_loss, u.trailing_stop, u.anchor, u.reason) for u in session.events(StopUpdated)] == [
        (position.id, 99.0, None, None, "tighten")
    ]
    assert position.stop_loss == 99.0
    session.bars((100.0, 100.5, 98.5, 99.5))
    fills = session.events(OrderFilled)
    assert [(f.fill.reason, f.fill.price) for f in fills[1:]] == [("stop_loss", 99.0)]


def test_activate_trailing_stop_anchors_and_trails() -> None:
    """ActivateTrailingStop(5%, anchor 110): stop 104.5; a high of 120 moves it to 114; a dip to 113 fills at 114."""
    session = _holding()
    position = session.position()
    session.act(ActivateTrailingStop(position.id, 5.0, 110.0))
    activated = session.events(TrailingActivated)
    assert len(activated) == 1
    assert activated[0].anchor == 110.0
    assert activated[0].trailing_stop == approx(104.5, rel=1e-12)
    assert position.trailing_active
    session.bars((106.0, 120.0, 105.0, 118.0))
    assert position.trailing_stop == approx(114.0, rel=1e-12)
    session.bars((118.0, 118.5, 113.0, 113.5))
    fills = session.events(OrderFilled)
    assert [(f.fill.reason, f.fill.price) for f in fills[1:]] == [("trailing_stop", approx_float(114.0, rel=1e-12))]


# -- handlers that fail -----------------------------------------------------------------------------


@pytest.mark.parametrize("percent", [0.0, 150.0, -10.0])
def test_close_percent_out_of_range_fails(percent: float) -> None:
    """close_percent of 0, 150 or -10 is an action_failed event; the position is untouched."""
    session = _holding()
    position = session.position()
    session.act(ClosePercent(position.id, percent))
    assert _failures(session) == [("s1", "close_percent")]
    assert session.orch().actions.failed == 1
    assert session.events(OrderSubmitted)[1:] == []
    assert position.quantity == 1.0


def test_close_percent_of_unknown_position_fails() -> None:
    """close_percent of a position id that does not exist fails and names it."""
    session = _holding()
    session.act(ClosePercent("s1-p99", 50.0))
    failed = session.events(ActionFailed)
    assert [f.kind for f in failed] == ["close_percent"]
    assert "s1-p99" in failed[0].error
    assert session.orch().actions.failed == 1


def test_close_percent_of_a_closed_position_fails() -> None:
    """Once closed, a position id is unknown to close_percent."""
    session = _holding()
    position_id = session.position().id
    session.act(ClosePercent(position_id, 100.0))
    session.bars(flat(100))
    session.act(ClosePercent(position_id, 100.0))
    assert _failures(session) == [("s1", "close_percent")]


def test_close_percent_while_everything_is_already_being_closed_fails() -> None:
    """A second 100% close queued before the first fills has nothing left to close."""
    session = _holding()
    position_id = session.position().id
    session.act(ClosePercent(position_id, 100.0), ClosePercent(position_id, 100.0))
    assert _failures(session) == [("s1", "close_percent")]
    session.bars(flat(100))
    assert [f.fill.quantity for f in session.events(OrderFilled)] == [1.0, 1.0]
    assert len(session.events(PositionClosed)) == 1


def test_update_stop_of_unknown_position_fails() -> None:
    """update_stop_loss on an unknown id fails; nothing is published as stop_updated."""
    session = _holding()
    session.act(UpdateStopLoss("nope", 99.0))
    assert _failures(session) == [("s1", "update_stop_loss")]
    assert session.events(StopUpdated) == []


def test_update_stop_to_a_non_positive_price_fails() -> None:
    """A stop at 0 is refused."""
    session = _holding(exits={"stop_loss_pct": 5})
    position = session.position()
    session.act(UpdateStopLoss(position.id, 0.0))
    assert _failures(session) == [("s1", "update_stop_loss")]
    assert position.stop_loss == approx(95.0, rel=1e-12)


@pytest.mark.parametrize("distance", [0.0, 100.0, -1.0, 150.0])
def test_trailing_distance_out_of_range_fails(distance: float) -> None:
    """A trailing distance outside (0, 100) percent fails; trailing stays inactive."""
    session = _holding()
    position = session.position()
    session.act(ActivateTrailingStop(position.id, distance, 100.0))
    assert _failures(session) == [("s1", "activate_trailing_stop")]
    assert not position.trailing_active
    assert position.trailing_stop is None
    assert session.events(TrailingActivated) == []


def test_activate_trailing_on_unknown_position_fails() -> None:
    """activate_trailing_stop on an unknown id fails."""
    session = _holding()
    session.act(ActivateTrailingStop("s1-p42", 5.0, 100.0))
    assert _failures(session) == [("s1", "activate_trailing_stop")]


@pytest.mark.parametrize("quantity", [0.0, -1.0])
def test_open_position_with_non_positive_quantity_fails(quantity: float) -> None:
    """An entry of 0 or a negative quantity fails without sending an order."""
    session = Session(quiet())
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", quantity))
    assert _failures(session) == [("s1", "open_position")]
    assert session.events(OrderSubmitted) == []


def test_open_position_before_any_price_fails() -> None:
    """Without a last close there is no reference price: the entry fails."""
    session = Session(quiet())
    session.act(OpenPosition(SYMBOL, "long", 1.0))
    assert _failures(session) == [("s1", "open_position")]
    assert session.events(OrderSubmitted) == []


def test_failures_are_counted_and_do_not_stop_the_queue() -> None:
    """Bad actions between good ones: each fails alone, the rest run, counts are 3 failed / 2 done."""
    session = _holding(exits={"stop_loss_pct": 5})
    position = session.position()
    session.act(
        ClosePercent(position.id, 0.0),
        UpdateStopLoss(position.id, 97.0),
        ClosePercent("ghost", 10.0),
        ActivateTrailingStop(position.id, 100.0, 100.0),
        ClosePercent(position.id, 25.0),
    )
    orch = session.orch()
    assert orch.actions.failed == 3
    assert orch.actions.done == 1 + 2  # the entry earlier, then update + close
    assert [kind for _, kind in _failures(session)] == ["close_percent", "close_percent", "activate_trailing_stop"]
    assert all(sid == "s1" for sid, _ in _failures(session))
    assert position.stop_loss == 97.0
    session.bars(flat(100))
    assert [r.closed_quantity for r in session.events(PositionReduced)] == [0.25]


def test_failures_are_tagged_with_the_failing_strategy_only() -> None:
    """s2's bad action produces an action_failed tagged s2; s1's queue count is untouched."""
    session = Session(quiet(id="s1"), quiet(id="s2"))
    session.bars(flat(100))
    session.act(ClosePercent("x", 50.0), strategy_id="s2")
    assert _failures(session) == [("s2", "close_percent")]
    assert session.orch("s2").actions.failed == 1
    assert session.orch("s1").actions.failed == 0


# -- the queue itself -------------------------------------------------------------------------------


def _noop(action: Action) -> None:
    return None


def test_queue_missing_a_handler_kind_is_refused() -> None:
    """Every action kind needs a handler at construction."""
    handlers = {"open_position": _noop, "close_percent": _noop, "update_stop_loss": _noop}
    with pytest.raises(ValueError, match="activate_trailing_stop"):
        ActionQueue(handlers, lambda action, error: None)


@dataclass(frozen=True)
class _Bogus:
    """An action-like object of a kind no handler knows."""

    kind: ClassVar[str] = "teleport"


def test_unknown_action_kind_raises_action_error() -> None:
    """An object whose kind has no handler raises ActionError from drain, never falls through."""
    seen: list[str] = []
    handlers = {
        "open_position": lambda a: seen.append("open"),
        "close_percent": lambda a: seen.append("close"),
        "update_stop_loss": lambda a: seen.append("stop"),
        "activate_trailing_stop": lambda a: seen.append("trail"),
        "open_pair": lambda a: seen.append("pair"),
        "close_pair": lambda a: seen.append("unpair"),
    }
    failures: list[Any] = []
    queue = ActionQueue(handlers, lambda action, error: failures.append((action, error)))
    queue.put(_Bogus())  # type: ignore[arg-type]
    with pytest.raises(ActionError, match="teleport"):
        queue.drain()
    assert seen == []
    assert queue.done == 0


def test_unknown_action_kind_on_an_orchestrator_raises() -> None:
    """The same through a real orchestrator's queue."""
    session = Session(quiet())
    session.bars(flat(100))
    orch = session.orch()
    orch.actions.put(_Bogus())  # type: ignore[arg-type]
    with pytest.raises(ActionError):
        orch.actions.drain()


@pytest.mark.parametrize(
    "action",
    [
        OpenPosition("BTC/USD", "long", 0.1),
        OpenPosition("BTC/USD", "short", 1, "signal", 100.5),
        OpenPosition("BTC/USD", "long", float("nan")),
        OpenPosition("BTC/USD", "long", float("inf")),
        OpenPosition("BTC/USD", "up", 1.0),  # type: ignore[arg-type]
        OpenPosition("BTC/USD", "long", True),
        OpenPosition(None, "long", 1.0),  # type: ignore[arg-type]
        OpenPosition("BTC/USD", "long", 1.0, "signal", "100"),  # type: ignore[arg-type]
        ClosePercent("p1", 50.0),
        ClosePercent("p1", "50"),  # type: ignore[arg-type]
        UpdateStopLoss("p1", 99.0),
        UpdateStopLoss("p1", -float("inf")),
        ActivateTrailingStop("p1", 1.0, 100.0),
        ActivateTrailingStop("p1", 1.0, None),  # type: ignore[arg-type]
        OpenPair(OpenPosition("A/B", "long", 1.0), OpenPosition("C/B", "short", 2.0)),
        OpenPair(OpenPosition("A/B", "long", 1.0), OpenPosition("C/B", "short", float("nan"))),
        OpenPair(OpenPosition("A/B", "long", 1.0), None),  # type: ignore[arg-type]
        ClosePair("g1"),
        ClosePair(None),  # type: ignore[arg-type]
    ],
)
def test_the_quick_test_of_an_action_agrees_with_the_refusals(action: Action) -> None:
    # fits() is only a fast path: an action it passes is one non_finite and unfit pass too, and one it fails they refuse.
    assert fits(action) == (non_finite(action) is None and unfit(action) is None)
