"""The accounting identity equity = start + realised - fees + unrealised, after every event."""
from __future__ import annotations

import math
from typing import Any

import pytest

from bot.config.models import BotConfig
from bot.event_codec import encode_record
from bot.events import Event, KillSwitch, OrderFilled, PortfolioSnapshot, PositionClosed, PositionOpened, PositionReduced
from bot.trading.actions import ClosePercent, OpenPosition
from tests.trading.helpers import SYMBOL, Session, flat, identity_holds, quiet

approx = pytest.approx
SNAPSHOT_EVENTS = (PositionOpened, PositionReduced, PositionClosed)


class IdentityWatch:
    """Checks every loaded strategy's portfolio at every bus event; records violations instead of raising."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.checks = 0
        self.snapshot_checks = 0
        self.violations: list[str] = []
        session.rig.services.bus.subscribe(self)

    def __call__(self, event: Event) -> None:
        manager = self.session.rig.manager
        for sid in manager.ids():
            p = manager.get(sid).portfolio
            expected = p.start + p.realised - p.fees + p.unrealised
            self.checks += 1
            if not math.isclose(p.equity, expected, rel_tol=1e-9, abs_tol=1e-6):
                self.violations.append(f"{event.type}#{event.seq} {sid}: equity {p.equity!r} != {expected!r}")
        if isinstance(event, SNAPSHOT_EVENTS):
            snapshot = event.portfolio
            self.snapshot_checks += 1
            if not identity_holds(snapshot):
                self.violations.append(f"{event.type}#{event.seq} payload of {event.strategy_id}: {snapshot!r}")


def _two_strategies(config: BotConfig | None = None) -> tuple[Session, IdentityWatch]:
    s1 = quiet(
        id="s1",
        quantity=2.0,
        fill={"model": "close", "slippage_bps": 10},
        fees={"taker_bps": 20, "maker_bps": 5},
        exits={
            "stop_loss_pct": 3,
            "take_profit": [{"pct": 2, "close_pct": 30}, {"pct": 4, "close_pct": 30}],
            "trailing": {"activation_pct": 5, "distance_pct": 2},
            "break_even_after_first_take_profit": True,
        },
    )
    s2 = quiet(
        id="s2",
        quantity=1.5,
        fill={"slippage_bps": 15},
        fees={"taker_bps": 10, "maker_bps": 2},
        exits={"stop_loss_pct": 4, "take_profit": [{"pct": 3, "close_pct": 50}]},
        risk={"max_open_positions": 2},
    )
    session = Session(s1, s2, config=config)
    return session, IdentityWatch(session)


def _run_scenario(session: Session) -> None:
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 2.0), strategy_id="s1")  # close model: fills now at 100.1
    session.act(OpenPosition(SYMBOL, "short", 1.5), strategy_id="s2")  # next open
    session.bars((100.5, 103.5, 99.8, 103.0))  # s2 fills; s1 TP1; s1 break-even queued
    session.act(ClosePercent(session.position("s1").id, 50.0), strategy_id="s1")
    session.bars((103.0, 106.0, 102.5, 105.5))  # s1 TP2 (rest 0.1), trailing activates; s2 stopped
    session.act(OpenPosition(SYMBOL, "short", 1.0), strategy_id="s2")
    session.bars((105.0, 107.0, 104.0, 104.5))  # s2 short fills; s1 trail moves to 104.86
    session.bars((104.5, 104.8, 100.0, 101.0))  # s1 trailing stop gapped; s2 TP1
    session.act(ClosePercent(session.position("s2").id, 100.0), strategy_id="s2")
    session.bars(flat(99.0))
    session.act(OpenPosition(SYMBOL, "long", 2.0), strategy_id="s1")
    session.bars((99.5, 101.0, 98.0, 100.0), (100.0, 100.2, 95.0, 96.0))  # s1 ends on its stop


def test_identity_holds_after_every_event_of_a_two_strategy_scenario() -> None:
    """Partial closes, TP ladder, trailing, break-even, stops, shorts, fees, slippage: no violation anywhere."""
    session, watch = _two_strategies()
    _run_scenario(session)
    assert watch.violations == []
    # the scenario really exercised what it claims to
    reasons = {(e.strategy_id, e.fill.reason) for e in session.rig.of_type(OrderFilled)}
    assert {("s1", "take_profit_1"), ("s1", "take_profit_2"), ("s1", "trailing_stop"), ("s1", "stop_loss")} <= reasons
    assert {("s2", "stop_loss"), ("s2", "take_profit_1")} <= reasons
    assert len(session.events(PositionReduced, "s1")) >= 2
    assert len(session.events(PositionReduced, "s2")) >= 1
    assert len(session.events(PositionClosed, "s1")) == 2
    assert len(session.events(PositionClosed, "s2")) == 2
    assert session.orch("s1").portfolio.fees > 0 and session.orch("s2").portfolio.fees > 0
    assert watch.snapshot_checks >= 10
    assert watch.checks > 2 * 30


def test_identity_holds_with_open_positions_at_the_end() -> None:
    """Stopping the same scenario midway (open long with TP1 done, marked at 103) also satisfies it."""
    session, watch = _two_strategies()
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 2.0), strategy_id="s1")
    session.act(OpenPosition(SYMBOL, "short", 1.5), strategy_id="s2")
    session.bars((100.5, 103.5, 99.8, 103.0))
    assert watch.violations == []
    for sid in ("s1", "s2"):
        portfolio = session.orch(sid).portfolio
        assert portfolio.unrealised != 0.0
        assert identity_holds(portfolio.record())


def test_portfolio_numbers_by_hand() -> None:
    """Long 2 with 10 bps slippage and 10 bps taker fee; half closed at 110; numbers computed by hand.

    buy 2 @ 100 * 1.001 = 100.1, fee 0.2002; sell 1 @ 110 * 0.999 = 109.89, fee 0.10989.
    cash = 10000 - 200.2 - 0.2002 + 109.89 - 0.10989 = 9909.37991; realised = 9.79;
    fees = 0.31009; unrealised at 110 = 9.9; equity = cash + 110 = 10019.37991.
    """
    session = Session(quiet(fill={"slippage_bps": 10}, fees={"taker_bps": 10}))
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 2.0))
    session.bars(flat(100))
    portfolio = session.orch().portfolio
    assert portfolio.cash == approx(9799.5998, rel=1e-12)
    assert portfolio.unrealised == approx(-0.2, rel=1e-9)
    assert portfolio.equity == approx(9999.5998, rel=1e-12)
    session.act(ClosePercent(session.position().id, 50.0))
    session.bars(flat(110))
    snapshot = encode_record(portfolio.record())
    expected: dict[str, Any] = {
        "start": 10_000.0,
        "cash": approx(9909.37991, rel=1e-12),
        "equity": approx(10019.37991, rel=1e-12),
        "realised": approx(9.79, rel=1e-9),
        "unrealised": approx(9.9, rel=1e-9),
        "fees": approx(0.31009, rel=1e-9),
    }
    assert {k: snapshot[k] for k in expected} == expected
    assert snapshot["market_value"] == approx(snapshot["equity"] - snapshot["cash"], rel=1e-12)
    # At the fill itself the position is marked at the fill price 109.89: unrealised 9.79.
    reduced = session.events(PositionReduced)
    assert len(reduced) == 1
    in_event = reduced[0].portfolio
    assert _numbers(in_event) == {
        **expected,
        "equity": approx(10019.26991, rel=1e-12),
        "unrealised": approx(9.79, rel=1e-9),
    }


def _numbers(snapshot: PortfolioSnapshot) -> dict[str, float]:
    """The figures `test_portfolio_numbers_by_hand` checks, by name."""
    return {
        "start": snapshot.start,
        "cash": snapshot.cash,
        "equity": snapshot.equity,
        "realised": snapshot.realised,
        "unrealised": snapshot.unrealised,
        "fees": snapshot.fees,
    }


def test_short_portfolio_numbers_by_hand() -> None:
    """Short 1 @ 200 (no costs), marked at 190: cash 10200, market value -190, unrealised +10, equity 10010."""
    session = Session(quiet())
    session.bars(flat(200))
    session.act(OpenPosition(SYMBOL, "short", 1.0))
    session.bars((200.0, 201.0, 189.0, 190.0))
    portfolio = session.orch().portfolio
    assert portfolio.cash == 10_200.0
    assert portfolio.market_value == -190.0
    assert portfolio.unrealised == 10.0
    assert portfolio.equity == 10_010.0
    session.act(ClosePercent(session.position().id, 100.0))
    session.bars(flat(180))
    assert portfolio.cash == 10_020.0
    assert portfolio.realised == 20.0
    assert portfolio.equity == 10_020.0


def test_remaining_position_is_marked_to_the_close_after_a_take_profit() -> None:
    """TP1 sells 0.4 of 1.0 at 102 inside a candle closing at 102.5: the remaining 0.6 is marked at the close.

    realised = 0.4 * 2 = 0.8; unrealised = 0.6 * (102.5 - 100) = 1.5; equity = 10000 + 0.8 + 1.5 = 10002.3.
    Regression: a bar-processing rewrite once left the rest marked at the TP fill price (unrealised 1.2).
    """
    session = Session(quiet(exits={"take_profit": [{"pct": 2, "close_pct": 40}, {"pct": 5, "close_pct": 60}]}))
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 1.0))
    session.bars(flat(100))
    session.bars((100.0, 103.0, 99.5, 102.5))
    portfolio = session.orch().portfolio
    assert portfolio.realised == approx(0.8, rel=1e-9)
    assert portfolio.unrealised == approx(1.5, rel=1e-9)
    assert portfolio.market_value == approx(61.5, rel=1e-12)
    assert portfolio.equity == approx(10_002.3, rel=1e-12)


def test_open_position_is_marked_to_each_close() -> None:
    """Long 1 @ 100: closes 104 then 97 give unrealised +4 then -3 (no fees)."""
    session = Session(quiet())
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 1.0))
    session.bars((100.0, 105.0, 99.0, 104.0))
    portfolio = session.orch().portfolio
    assert portfolio.unrealised == 4.0
    assert portfolio.equity == 10_004.0
    session.bars((104.0, 104.0, 96.0, 97.0))
    assert portfolio.unrealised == -3.0
    assert portfolio.equity == 9_997.0


def test_identity_holds_at_the_kill_switch_event() -> None:
    """A stop that trips the global daily loss limit: every event, kill_switch included, sees a consistent portfolio.

    Regression: the exit was booked with the risk manager (which publishes kill_switch) before revaluing,
    so the kill_switch event saw equity off by entry * quantity (10097.802 instead of 9997.802).
    """
    session = Session(
        quiet(id="s1", exits={"stop_loss_pct": 2}, fees={"taker_bps": 10}),
        quiet(id="s2"),
        config=BotConfig.model_validate({"risk": {"max_daily_loss": 1.5}}),
    )
    watch = IdentityWatch(session)
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 1.0), strategy_id="s1")
    session.bars(flat(100))
    session.bars((99.0, 99.0, 97.0, 97.5))  # stop at 98: -2.0 - fees trips the limit of 1.5
    assert len(session.events(KillSwitch, None)) == 1
    assert len(session.events(PositionClosed, "s1")) == 1
    assert watch.violations == []
