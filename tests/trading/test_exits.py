"""Exit semantics: stop-loss, take-profit ladder, trailing stop and break-even, long and short."""
from __future__ import annotations

from typing import Any

import pytest

from bot.events import OrderFilled, PositionClosed, PositionReduced, StopUpdated, TrailingActivated
from bot.trading.actions import OpenPosition, Side
from tests.trading.helpers import SYMBOL, Session, flat, quiet

approx = pytest.approx


def _open(exits: dict[str, Any], side: Side = "long", quantity: float = 1.0, **overrides: Any) -> Session:
    """A session whose strategy holds one position entered at exactly 100 (next open of a flat 100 tape)."""
    session = Session(quiet(exits=exits, **overrides))
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, side, quantity))
    session.bars(flat(100))
    position = session.position()
    assert position.entry_price == 100.0
    return session


def _exit_fills(session: Session) -> list[tuple[Any, ...]]:
    return [(f.fill.reason, f.fill.side, f.fill.price, f.fill.quantity) for f in session.events(OrderFilled)[1:]]


# -- stop-loss ------------------------------------------------------------------------------------


def test_stop_loss_triggers_intrabar_at_the_stop_price() -> None:
    """Stop 2% below 100 = 98; a candle opening 99.5 with low 97 closes at 98, not at the low or close."""
    session = _open({"stop_loss_pct": 2})
    assert session.position().stop_loss == approx(98.0, rel=1e-12)
    session.bars((99.5, 99.8, 98.5, 99.0))  # low 98.5 stays above the stop
    assert session.events(PositionClosed) == []
    session.bars((99.5, 100.0, 97.0, 99.0))
    assert _exit_fills(session) == [("stop_loss", "sell", approx(98.0, rel=1e-12), 1.0)]
    closed = session.events(PositionClosed)
    assert len(closed) == 1
    assert closed[0].trade.exit_reason == "stop_loss"
    assert closed[0].trade.pnl == approx(-2.0, rel=1e-9)
    assert session.orch().positions.positions == {}


def test_stop_touched_exactly_triggers() -> None:
    """A low equal to the stop (98) is enough: fills at 98."""
    session = _open({"stop_loss_pct": 2})
    session.bars((99.0, 99.5, 98.0, 99.0))
    assert _exit_fills(session) == [("stop_loss", "sell", approx(98.0, rel=1e-12), 1.0)]


def test_gap_down_through_stop_fills_at_the_open() -> None:
    """Stop 98, next candle opens at 96 (below the stop): the fill is at 96, the worse price."""
    session = _open({"stop_loss_pct": 2})
    session.bars((96.0, 97.0, 95.0, 96.5))
    assert _exit_fills(session) == [("stop_loss", "sell", 96.0, 1.0)]
    assert session.events(PositionClosed)[0].trade.pnl == approx(-4.0, rel=1e-12)


def test_stop_wins_when_stop_and_take_profit_share_a_candle() -> None:
    """Stop 98 and TP 103 both inside (100, 104, 97, 101): only the stop fills, TP never does."""
    session = _open({"stop_loss_pct": 2, "take_profit": [{"pct": 3, "close_pct": 100}]})
    session.bars((100.0, 104.0, 97.0, 101.0))
    assert _exit_fills(session) == [("stop_loss", "sell", approx(98.0, rel=1e-12), 1.0)]
    assert session.events(PositionReduced) == []
    closed = session.events(PositionClosed)
    assert [c.trade.exit_reason for c in closed] == ["stop_loss"]
    assert closed[0].trade.pnl == approx(-2.0, rel=1e-9)


# -- take-profit ladder ----------------------------------------------------------------------------


def test_two_step_take_profit_ladder_closes_in_parts() -> None:
    """TP1 +2% closes 40% (0.4 @ 102), TP2 +5% closes the other 60% (0.6 @ 105); PnL 0.8 then 3.0."""
    session = _open({"take_profit": [{"pct": 2, "close_pct": 40}, {"pct": 5, "close_pct": 60}]})
    session.bars((100.0, 103.0, 99.5, 102.5))
    reduced = session.events(PositionReduced)
    assert len(reduced) == 1
    assert reduced[0].closed_quantity == approx(0.4, rel=1e-12)
    assert reduced[0].position.quantity == approx(0.6, rel=1e-12)
    assert reduced[0].price == 102.0
    assert reduced[0].reason == "take_profit_1"
    assert reduced[0].position.status == "partially_closed"
    assert reduced[0].position.realised == approx(0.8, rel=1e-9)  # (102 - 100) * 0.4
    assert session.events(PositionClosed) == []

    session.bars((102.5, 104.9, 102.0, 104.0))  # TP2 at 105 not reached
    assert session.events(PositionClosed) == []

    session.bars((104.0, 106.0, 103.5, 105.5))
    closed = session.events(PositionClosed)
    assert len(closed) == 1
    assert closed[0].trade.exit_reason == "take_profit_2"
    assert closed[0].trade.quantity == 1.0
    assert closed[0].trade.pnl == approx(3.8, rel=1e-9)  # 0.8 + (105 - 100) * 0.6
    assert closed[0].trade.exit_price == approx(103.8, rel=1e-9)  # (0.4 * 102 + 0.6 * 105) / 1
    assert _exit_fills(session) == [
        ("take_profit_1", "sell", 102.0, approx(0.4, rel=1e-12)),
        ("take_profit_2", "sell", 105.0, approx(0.6, rel=1e-12)),
    ]
    assert session.orch().portfolio.realised == approx(3.8, rel=1e-9)
    # order of events: reduced strictly before closed
    types = [type(e) for e in session.rig.events if isinstance(e, (PositionReduced, PositionClosed))]
    assert types == [PositionReduced, PositionClosed]


def test_take_profit_touched_exactly_triggers() -> None:
    """A high equal to TP1 (102) is enough: 0.5 fills at 102; a high of 101.99 is not."""
    session = _open({"take_profit": [{"pct": 2, "close_pct": 50}, {"pct": 10, "close_pct": 50}]})
    session.bars((100.0, 101.99, 99.5, 101.0))
    assert _exit_fills(session) == []
    session.bars((101.0, 102.0, 100.5, 101.5))
    assert _exit_fills(session) == [("take_profit_1", "sell", 102.0, 0.5)]


def test_take_profit_gapped_through_fills_at_the_open() -> None:
    """TP1 at 102 with the candle opening at 103: the fill is at 103, the better price."""
    session = _open({"take_profit": [{"pct": 2, "close_pct": 50}, {"pct": 10, "close_pct": 50}]})
    session.bars((103.0, 104.0, 102.5, 103.5))
    assert _exit_fills(session) == [("take_profit_1", "sell", 103.0, 0.5)]
    assert session.events(PositionReduced)[0].position.realised == approx(1.5, rel=1e-12)  # (103 - 100) * 0.5


def test_both_ladder_steps_in_one_candle_fill_in_order() -> None:
    """A candle reaching past TP1 (102) and TP2 (105) fills both at their own prices, in order."""
    session = _open({"take_profit": [{"pct": 2, "close_pct": 50}, {"pct": 5, "close_pct": 50}]})
    session.bars((100.0, 106.0, 99.5, 105.5))
    assert _exit_fills(session) == [("take_profit_1", "sell", 102.0, 0.5), ("take_profit_2", "sell", 105.0, 0.5)]
    assert session.events(PositionClosed)[0].trade.pnl == approx(3.5, rel=1e-12)


def test_break_even_stop_after_first_take_profit() -> None:
    """After TP1 fills, the stop moves from 95 to the entry 100; a dip to 99 then closes the rest at 100."""
    session = _open(
        {
            "stop_loss_pct": 5,
            "take_profit": [{"pct": 2, "close_pct": 50}, {"pct": 10, "close_pct": 50}],
            "break_even_after_first_take_profit": True,
        }
    )
    assert session.position().stop_loss == approx(95.0, rel=1e-12)
    session.bars((100.0, 102.5, 100.5, 101.5))
    updates = session.events(StopUpdated)
    assert [(u.stop_loss, u.reason) for u in updates] == [(100.0, "break_even")]
    assert session.position().stop_loss == 100.0
    session.bars((101.0, 101.5, 99.0, 99.5))
    assert _exit_fills(session) == [("take_profit_1", "sell", 102.0, 0.5), ("stop_loss", "sell", 100.0, 0.5)]
    closed = session.events(PositionClosed)[0]
    assert closed.trade.pnl == approx(1.0, rel=1e-12)  # (102 - 100) * 0.5 + 0
    assert len(session.events(StopUpdated)) == 1


# -- trailing stop --------------------------------------------------------------------------------


def test_trailing_stop_activates_trails_highs_and_triggers_without_look_ahead() -> None:
    """Activation +2% (102), distance 5%.

    - close 100.5: not activated;
    - close 102 (high 103): activated, anchored at the close 102 -> stop 96.9 (not 97.85 from the high);
    - high 110: stop trails to 104.5; high 109 leaves it there;
    - a candle with low 104 and high 120 triggers at 104.5: its own high (-> 114) is not used.
    """
    session = _open({"trailing": {"activation_pct": 2, "distance_pct": 5}})
    position = session.position()
    session.bars((100.0, 101.0, 99.0, 100.5))
    assert session.events(TrailingActivated) == []
    assert position.trailing_stop is None

    session.bars((100.5, 103.0, 100.0, 102.0))
    activated = session.events(TrailingActivated)
    assert len(activated) == 1
    assert activated[0].anchor == 102.0
    assert activated[0].distance_pct == 5
    assert activated[0].trailing_stop == approx(96.9, rel=1e-12)

    session.bars((102.0, 110.0, 101.0, 108.0))
    assert position.trailing_stop == approx(104.5, rel=1e-12)
    session.bars((108.0, 109.0, 105.0, 106.0))
    assert position.trailing_stop == approx(104.5, rel=1e-12)
    assert session.events(PositionClosed) == []

    session.bars((106.0, 120.0, 104.0, 115.0))
    assert _exit_fills(session) == [("trailing_stop", "sell", approx(104.5, rel=1e-12), 1.0)]
    closed = session.events(PositionClosed)
    assert len(closed) == 1
    assert closed[0].trade.exit_reason == "trailing_stop"
    assert closed[0].trade.pnl == approx(4.5, rel=1e-9)
    assert len(session.events(TrailingActivated)) == 1


def test_trailing_stop_is_not_raised_by_the_candle_that_sets_a_new_high_and_falls() -> None:
    """Stop 104.5 in force; a candle with high 112 and low 105 does not trigger (106.4 applies from the next)."""
    session = _open({"trailing": {"activation_pct": 1, "distance_pct": 5}})
    session.bars((100.0, 101.5, 99.5, 101.0))  # activates on close 101 >= 101: anchor 101 -> 95.95
    assert session.position().trailing_stop == approx(95.95, rel=1e-12)
    session.bars((101.0, 110.0, 99.0, 109.0))  # 99 > 95.95: no trigger; the stop trails to 104.5
    assert session.position().trailing_stop == approx(104.5, rel=1e-12)
    session.bars((109.0, 112.0, 105.0, 106.0))  # low 105 > 104.5; 112 * 0.95 = 106.4 from the next candle
    assert session.events(PositionClosed) == []
    assert session.position().trailing_stop == approx(106.4, rel=1e-12)
    session.bars((106.5, 107.0, 106.0, 106.2))  # low 106 <= 106.4 < open 106.5: fills at 106.4
    assert _exit_fills(session) == [("trailing_stop", "sell", approx(106.4, rel=1e-12), 1.0)]


def test_trailing_stop_binds_only_when_tighter_than_the_stop_loss() -> None:
    """Stop-loss 97 vs trailing 96.9 (activation on close 102): the stop-loss 97 is the one that fills."""
    session = _open({"stop_loss_pct": 3, "trailing": {"activation_pct": 2, "distance_pct": 5}})
    session.bars((100.0, 102.5, 99.0, 102.0))
    assert session.position().trailing_stop == approx(96.9, rel=1e-12)
    session.bars((101.0, 101.0, 96.0, 96.5))
    assert _exit_fills(session) == [("stop_loss", "sell", approx(97.0, rel=1e-12), 1.0)]


# -- short positions --------------------------------------------------------------------------------


def test_short_stop_loss_triggers_above_entry() -> None:
    """Short at 100 with stop 2%: stop at 102 (a buy); a candle with high 103 closes it at 102."""
    session = _open({"stop_loss_pct": 2}, side="short")
    position = session.position()
    assert position.side == "short"
    assert position.stop_loss == approx(102.0, rel=1e-12)
    session.bars((100.5, 103.0, 99.0, 101.0))
    assert _exit_fills(session) == [("stop_loss", "buy", approx(102.0, rel=1e-12), 1.0)]
    assert session.events(PositionClosed)[0].trade.pnl == approx(-2.0, rel=1e-9)


def test_short_gap_up_through_stop_fills_at_the_open() -> None:
    """Short stop 102; a candle opening at 104 fills the buy-back at 104."""
    session = _open({"stop_loss_pct": 2}, side="short")
    session.bars((104.0, 105.0, 103.0, 104.5))
    assert _exit_fills(session) == [("stop_loss", "buy", 104.0, 1.0)]
    assert session.events(PositionClosed)[0].trade.pnl == approx(-4.0, rel=1e-12)


def test_short_stop_wins_over_take_profit_in_one_candle() -> None:
    """Short stop 102 and TP 97 both inside (100, 103, 96, 99): only the stop fills."""
    session = _open({"stop_loss_pct": 2, "take_profit": [{"pct": 3, "close_pct": 100}]}, side="short")
    session.bars((100.0, 103.0, 96.0, 99.0))
    assert _exit_fills(session) == [("stop_loss", "buy", approx(102.0, rel=1e-12), 1.0)]


def test_short_take_profit_ladder_and_gap() -> None:
    """Short TP1 -2% (98, half) and TP2 -5% (95): TP1 fills at 98, TP2 gapped under fills at the open 94."""
    session = _open({"take_profit": [{"pct": 2, "close_pct": 50}, {"pct": 5, "close_pct": 50}]}, side="short")
    session.bars((99.5, 100.0, 97.5, 98.5))
    assert _exit_fills(session) == [("take_profit_1", "buy", 98.0, 0.5)]
    assert session.events(PositionReduced)[0].position.realised == approx(1.0, rel=1e-12)
    session.bars((94.0, 94.5, 93.0, 93.5))
    assert _exit_fills(session)[1] == ("take_profit_2", "buy", 94.0, 0.5)
    assert session.events(PositionClosed)[0].trade.pnl == approx(4.0, rel=1e-12)  # 1.0 + (100 - 94) * 0.5


def test_short_trailing_stop_trails_the_lows() -> None:
    """Short, activation -2% (98), distance 5%: anchor 98 -> 102.9; low 90 -> 94.5; a rally to 95 fills at 94.5."""
    session = _open({"trailing": {"activation_pct": 2, "distance_pct": 5}}, side="short")
    session.bars((99.0, 99.5, 97.0, 98.0))
    assert session.events(TrailingActivated)[0].trailing_stop == approx(102.9, rel=1e-12)
    session.bars((98.0, 99.0, 90.0, 92.0))
    assert session.position().trailing_stop == approx(94.5, rel=1e-12)
    session.bars((92.0, 95.0, 80.0, 85.0))  # the low 80 of the triggering candle does not tighten the stop
    assert _exit_fills(session) == [("trailing_stop", "buy", approx(94.5, rel=1e-12), 1.0)]
    assert session.events(PositionClosed)[0].trade.pnl == approx(5.5, rel=1e-9)


def test_short_break_even_after_first_take_profit() -> None:
    """Short: after TP1 at 98 the stop moves from 105 down to 100; a rally to 101 closes the rest at 100."""
    session = _open(
        {
            "stop_loss_pct": 5,
            "take_profit": [{"pct": 2, "close_pct": 50}, {"pct": 10, "close_pct": 50}],
            "break_even_after_first_take_profit": True,
        },
        side="short",
    )
    session.bars((99.5, 99.8, 97.5, 98.5))
    assert [(u.stop_loss, u.reason) for u in session.events(StopUpdated)] == [(100.0, "break_even")]
    session.bars((99.0, 101.0, 98.9, 100.5))
    assert _exit_fills(session) == [("take_profit_1", "buy", 98.0, 0.5), ("stop_loss", "buy", 100.0, 0.5)]
