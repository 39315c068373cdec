"""Risk limits: per-strategy and global, the kill switch, and how rejections are reported."""
from __future__ import annotations

from typing import Any

import pytest

from bot.config.models import BotConfig
from bot.trading.actions import ClosePercent, OpenPosition
from tests.trading.helpers import DAY, MINUTE, SYMBOL, T0, Session, flat, quiet


def _rejections(session: Session, strategy_id: str = "s1") -> list[tuple[str, str]]:
    return [(p["rule"], p["reason"]) for p in session.payloads("risk_rejected", strategy_id)]


def _rules(session: Session, strategy_id: str = "s1") -> list[str]:
    return [rule for rule, _ in _rejections(session, strategy_id)]


def _global(**risk: Any) -> BotConfig:
    return BotConfig.model_validate({"risk": risk})


# -- per-strategy limits ------------------------------------------------------------------------------


def test_max_open_positions_counts_open_positions() -> None:
    """Limit 2: two filled positions, then a third entry is rejected with the rule and a reason."""
    session = Session(quiet(risk={"max_open_positions": 2}))
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 1.0))
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 1.0))
    session.bars(flat(100))
    assert len(session.orch().positions.positions) == 2
    session.act(OpenPosition(SYMBOL, "long", 1.0))
    rejected = session.events("risk_rejected")
    assert len(rejected) == 1
    assert rejected[0].strategy_id == "s1"
    assert rejected[0].payload["rule"] == "max_open_positions"
    assert rejected[0].payload["reason"]
    assert rejected[0].payload["quantity"] == 1.0
    assert len(session.payloads("order_submitted")) == 2


def test_max_open_positions_counts_a_pending_entry() -> None:
    """Limit 1: an entry waiting for the next open already uses the one slot."""
    session = Session(quiet())
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 1.0), OpenPosition(SYMBOL, "long", 1.0))
    assert _rules(session) == ["max_open_positions"]
    session.bars(flat(100))
    assert len(session.orch().positions.positions) == 1


def test_max_open_positions_counts_every_pending_entry() -> None:
    """Limit 2: of three entries sent before the next open, the third is rejected; two positions open.

    Regression: open_count once counted pending entries per symbol, not per order, and let all three in.
    """
    session = Session(quiet(risk={"max_open_positions": 2}))
    session.bars(flat(100))
    session.act(*(OpenPosition(SYMBOL, "long", 1.0) for _ in range(3)))
    session.bars(flat(100))
    assert _rules(session) == ["max_open_positions"]
    assert len(session.orch().positions.positions) == 2


def test_closing_frees_an_open_position_slot() -> None:
    """Limit 1: after the position closes, a new entry is accepted."""
    session = Session(quiet())
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 1.0))
    session.bars(flat(100))
    session.act(ClosePercent(session.position().id, 100.0))
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 1.0))
    assert _rules(session) == []
    assert len(session.payloads("order_submitted")) == 3


def test_max_position_size() -> None:
    """Limit 0.5: 0.6 is rejected, 0.5 is accepted."""
    session = Session(quiet(risk={"max_position_size": 0.5}))
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 0.6))
    assert _rules(session) == ["max_position_size"]
    assert "0.6" in _rejections(session)[0][1]
    session.act(OpenPosition(SYMBOL, "long", 0.5))
    assert _rules(session) == ["max_position_size"]
    session.bars(flat(100))
    assert session.position().quantity == 0.5


def test_max_daily_loss_blocks_entries_for_the_rest_of_the_utc_day() -> None:
    """A stop loses 2.0 (limit 1.5) on Jan 1: a new entry that day is rejected; on Jan 2 it is accepted."""
    session = Session(quiet(exits={"stop_loss_pct": 2}, risk={"max_daily_loss": 1.5}), start_ts=T0 + 12 * 3_600_000)
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 1.0))
    session.bars(flat(100))  # entry at 100, stop 98
    session.bars((99.0, 99.0, 97.0, 97.5))  # stopped out at 98: -2.0
    closed = session.payloads("position_closed")
    assert len(closed) == 1
    assert closed[0]["pnl"] == pytest.approx(-2.0, rel=1e-9)

    session.act(OpenPosition(SYMBOL, "long", 1.0))
    assert _rules(session) == ["max_daily_loss"]
    session.bars(flat(100))  # later the same day: still blocked
    session.act(OpenPosition(SYMBOL, "long", 1.0))
    assert _rules(session) == ["max_daily_loss", "max_daily_loss"]
    assert len(session.payloads("order_submitted")) == 2  # the first entry and the stop

    session.jump_to(T0 + DAY + 12 * 3_600_000)  # noon, Jan 2
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 1.0))
    assert _rules(session) == ["max_daily_loss", "max_daily_loss"]
    assert len(session.payloads("order_submitted")) == 3


def test_daily_loss_below_the_limit_allows_entries() -> None:
    """A loss of 1.0 under a limit of 1.5 does not block."""
    session = Session(quiet(exits={"stop_loss_pct": 1}, risk={"max_daily_loss": 1.5}))
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 1.0))
    session.bars(flat(100))
    session.bars((99.5, 99.5, 98.0, 98.5))  # stop at 99: -1.0
    session.act(OpenPosition(SYMBOL, "long", 1.0))
    assert _rules(session) == []


def test_daily_loss_counts_fees() -> None:
    """Loss 1.0 plus fees 0.2 + 0.198 (taker 20 bps) reaches a limit of 1.3: net of fees, entries stop."""
    session = Session(quiet(exits={"stop_loss_pct": 1}, fees={"taker_bps": 20}, risk={"max_daily_loss": 1.3}))
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 1.0))
    session.bars(flat(100))
    session.bars((99.5, 99.5, 98.0, 98.5))  # stop at 99: -1.0 - 0.2 - 0.198 = -1.398
    assert session.payloads("position_closed")[0]["pnl"] == pytest.approx(-1.398, rel=1e-9)
    session.act(OpenPosition(SYMBOL, "long", 1.0))
    assert _rules(session) == ["max_daily_loss"]


# -- global limits --------------------------------------------------------------------------------------


def test_global_max_total_exposure_across_strategies() -> None:
    """Cap 150 of notional: s1 takes 100, s2's 100 would make 200 -> rejected; after s1 exits, s2 fits."""
    session = Session(quiet(id="s1"), quiet(id="s2"), config=_global(max_total_exposure=150))
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 1.0), strategy_id="s1")
    session.act(OpenPosition(SYMBOL, "long", 1.0), strategy_id="s2")
    assert _rules(session, "s1") == []
    assert _rules(session, "s2") == ["max_total_exposure"]
    assert session.events("risk_rejected", "s2")[0].strategy_id == "s2"
    session.act(OpenPosition(SYMBOL, "long", 0.5), strategy_id="s2")  # 100 + 50 = 150 is within the cap
    assert _rules(session, "s2") == ["max_total_exposure"]
    session.bars(flat(100))
    session.act(ClosePercent(session.position("s1").id, 100.0), strategy_id="s1")
    session.bars(flat(100))
    assert session.orch("s1").positions.positions == {}
    session.act(OpenPosition(SYMBOL, "long", 0.5), strategy_id="s1")  # 50 + 50 = 100
    assert _rules(session, "s1") == []
    assert len(session.payloads("order_submitted", "s1")) == 3


def test_partial_close_releases_exposure_in_proportion() -> None:
    """Cap 150: s1 holds 100 of notional; after closing half it holds 50, so s2 fits 1.0 (50 + 100)."""
    session = Session(quiet(id="s1"), quiet(id="s2"), config=_global(max_total_exposure=150))
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 1.0), strategy_id="s1")
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 1.0), strategy_id="s2")
    assert _rules(session, "s2") == ["max_total_exposure"]
    session.act(ClosePercent(session.position("s1").id, 50.0), strategy_id="s1")
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 1.0), strategy_id="s2")
    assert _rules(session, "s2") == ["max_total_exposure"]


def test_global_daily_loss_trips_the_kill_switch() -> None:
    """Global limit 1.5: s1's stop loses 2.0 -> one untagged kill_switch event; every strategy's entries are
    rejected with rule kill_switch (also a strategy loaded later, also the next day), while exits still work."""
    session = Session(
        quiet(id="s1", exits={"stop_loss_pct": 2}),
        quiet(id="s2", exits={"stop_loss_pct": 10}, risk={"max_open_positions": 3}),
        config=_global(max_daily_loss=1.5),
    )
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 1.0), strategy_id="s1")
    session.act(OpenPosition(SYMBOL, "long", 1.0), strategy_id="s2")
    session.bars(flat(100))
    assert session.events("kill_switch", None) == []
    session.bars((99.0, 99.0, 97.0, 97.5))  # s1 stopped at 98: -2.0; s2's stop at 90 holds

    kills = session.events("kill_switch", None)
    assert len(kills) == 1
    assert kills[0].strategy_id is None
    assert kills[0].payload["tripped_by"] == "s1"
    assert kills[0].payload["limit"] == 1.5
    assert kills[0].payload["daily_loss"] == pytest.approx(2.0, rel=1e-9)
    assert session.rig.services.risk.kill_switch

    session.act(OpenPosition(SYMBOL, "long", 1.0), strategy_id="s1")
    session.act(OpenPosition(SYMBOL, "long", 1.0), strategy_id="s2")
    assert _rules(session, "s1") == ["kill_switch"]
    assert _rules(session, "s2") == ["kill_switch"]
    assert all(reason for _, reason in _rejections(session, "s1") + _rejections(session, "s2"))

    # exits still work: s2 closes by action at a further loss, with no second kill_switch event
    session.act(ClosePercent(session.position("s2").id, 100.0), strategy_id="s2")
    session.bars(flat(96))
    assert [c["pnl"] for c in session.payloads("position_closed", "s2")] == [pytest.approx(-4.0, rel=1e-9)]
    assert session.orch("s2").positions.positions == {}
    assert len(session.events("kill_switch", None)) == 1

    # a strategy loaded after the trip is blocked too
    session.rig.start(quiet(id="s3"))
    session.bars(flat(96))
    session.act(OpenPosition(SYMBOL, "long", 1.0), strategy_id="s3")
    assert _rules(session, "s3") == ["kill_switch"]

    # it stays engaged on the next UTC day until an operator resets it
    session.jump_to(T0 + DAY + 60 * MINUTE)
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 1.0), strategy_id="s1")
    assert _rules(session, "s1") == ["kill_switch", "kill_switch"]
    session.rig.services.risk.reset_kill_switch()
    session.act(OpenPosition(SYMBOL, "long", 1.0), strategy_id="s1")
    assert _rules(session, "s1") == ["kill_switch", "kill_switch"]
    assert session.payloads("order_submitted", "s1")[-1]["intent"] == "open"

    rejected = [e for e in session.rig.events if e.type == "risk_rejected"]
    assert [(e.strategy_id, e.payload["rule"]) for e in rejected] == [
        ("s1", "kill_switch"),
        ("s2", "kill_switch"),
        ("s3", "kill_switch"),
        ("s1", "kill_switch"),
    ]
    assert all(isinstance(e.payload["reason"], str) and e.payload["reason"] for e in rejected)


def test_kill_switch_does_not_block_stops_of_open_positions() -> None:
    """After the trip, s2's stop-loss still fires."""
    session = Session(
        quiet(id="s1", exits={"stop_loss_pct": 2}),
        quiet(id="s2", exits={"stop_loss_pct": 4}),
        config=_global(max_daily_loss=1.5),
    )
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 1.0), strategy_id="s1")
    session.act(OpenPosition(SYMBOL, "long", 1.0), strategy_id="s2")
    session.bars(flat(100))
    session.bars((99.0, 99.0, 97.0, 97.5))  # trips
    assert len(session.events("kill_switch", None)) == 1
    session.bars((97.5, 97.5, 95.0, 95.5))  # s2's stop at 96
    closed = session.payloads("position_closed", "s2")
    assert [(c["exit_reason"], c["exit_price"]) for c in closed] == [("stop_loss", pytest.approx(96.0, rel=1e-12))]
    assert len(session.events("kill_switch", None)) == 1


def test_global_daily_loss_sums_strategies() -> None:
    """Global limit 3: s1 loses 2 (no trip), s2 loses 2 (total 4 -> trip, tripped_by s2)."""
    session = Session(
        quiet(id="s1", exits={"stop_loss_pct": 2}),
        quiet(id="s2", exits={"stop_loss_pct": 4}, quantity=0.5),
        config=_global(max_daily_loss=3),
    )
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 1.0), strategy_id="s1")
    session.act(OpenPosition(SYMBOL, "long", 0.5), strategy_id="s2")
    session.bars(flat(100))
    session.bars((99.0, 99.0, 97.0, 97.5))  # s1 at 98: -2
    assert session.events("kill_switch", None) == []
    session.act(OpenPosition(SYMBOL, "long", 1.0), strategy_id="s1")
    assert _rules(session, "s1") == []
    session.bars((97.5, 97.5, 95.8, 96.5))  # s2 at 96: -2 -> -4 total (s1 re-entered at 97.5, stop 95.55 holds)
    kills = session.events("kill_switch", None)
    assert len(kills) == 1
    assert kills[0].payload["tripped_by"] == "s2"
    assert kills[0].payload["daily_loss"] == pytest.approx(4.0, rel=1e-9)
