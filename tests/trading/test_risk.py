"""Risk limits: per-strategy and global, the kill switch, and how rejections are reported."""
from __future__ import annotations

from typing import Any

import pytest

from bot.config.models import BotConfig
from bot.errors import StrategyStateError
from bot.events import KillSwitch, OrderSubmitted, PositionClosed, RiskRejected
from bot.trading.actions import ClosePercent, OpenPosition
from bot.trading.risk import DailyTally
from tests.support import Rig, approx_float, candles_from
from tests.trading.helpers import DAY, MINUTE, SYMBOL, T0, Session, flat, quiet


def _rejections(session: Session, strategy_id: str = "s1") -> list[tuple[str, str]]:
    return [(p.rule, p.reason) for p in session.events(RiskRejected, strategy_id)]


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
    rejected = session.events(RiskRejected)
    assert len(rejected) == 1
    assert rejected[0].strategy_id == "s1"
    assert rejected[0].rule == "max_open_positions"
    assert rejected[0].reason
    assert rejected[0].quantity == 1.0
    assert len(session.events(OrderSubmitted)) == 2


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
    assert len(session.events(OrderSubmitted)) == 3


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
    closed = session.events(PositionClosed)
    assert len(closed) == 1
    assert closed[0].trade.pnl == pytest.approx(-2.0, rel=1e-9)

    session.act(OpenPosition(SYMBOL, "long", 1.0))
    assert _rules(session) == ["max_daily_loss"]
    session.bars(flat(100))  # later the same day: still blocked
    session.act(OpenPosition(SYMBOL, "long", 1.0))
    assert _rules(session) == ["max_daily_loss", "max_daily_loss"]
    assert len(session.events(OrderSubmitted)) == 2  # the first entry and the stop

    session.jump_to(T0 + DAY + 12 * 3_600_000)  # noon, Jan 2
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 1.0))
    assert _rules(session) == ["max_daily_loss", "max_daily_loss"]
    assert len(session.events(OrderSubmitted)) == 3


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
    assert session.events(PositionClosed)[0].trade.pnl == pytest.approx(-1.398, rel=1e-9)
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
    assert session.events(RiskRejected, "s2")[0].strategy_id == "s2"
    session.act(OpenPosition(SYMBOL, "long", 0.5), strategy_id="s2")  # 100 + 50 = 150 is within the cap
    assert _rules(session, "s2") == ["max_total_exposure"]
    session.bars(flat(100))
    session.act(ClosePercent(session.position("s1").id, 100.0), strategy_id="s1")
    session.bars(flat(100))
    assert session.orch("s1").positions.positions == {}
    session.act(OpenPosition(SYMBOL, "long", 0.5), strategy_id="s1")  # 50 + 50 = 100
    assert _rules(session, "s1") == []
    assert len(session.events(OrderSubmitted, "s1")) == 3


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
    assert session.events(KillSwitch, None) == []
    session.bars((99.0, 99.0, 97.0, 97.5))  # s1 stopped at 98: -2.0; s2's stop at 90 holds

    kills = session.events(KillSwitch, None)
    assert len(kills) == 1
    assert kills[0].strategy_id is None
    assert kills[0].tripped_by == "s1"
    assert kills[0].limit == 1.5
    assert kills[0].daily_loss == pytest.approx(2.0, rel=1e-9)
    assert session.rig.services.risk.kill_switch

    session.act(OpenPosition(SYMBOL, "long", 1.0), strategy_id="s1")
    session.act(OpenPosition(SYMBOL, "long", 1.0), strategy_id="s2")
    assert _rules(session, "s1") == ["kill_switch"]
    assert _rules(session, "s2") == ["kill_switch"]
    assert all(reason for _, reason in _rejections(session, "s1") + _rejections(session, "s2"))

    # exits still work: s2 closes by action at a further loss, with no second kill_switch event
    session.act(ClosePercent(session.position("s2").id, 100.0), strategy_id="s2")
    session.bars(flat(96))
    assert [c.trade.pnl for c in session.events(PositionClosed, "s2")] == [pytest.approx(-4.0, rel=1e-9)]
    assert session.orch("s2").positions.positions == {}
    assert len(session.events(KillSwitch, None)) == 1

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
    assert session.events(OrderSubmitted, "s1")[-1].intent == "open"

    rejected = session.rig.of_type(RiskRejected)
    assert [(e.strategy_id, e.rule) for e in rejected] == [
        ("s1", "kill_switch"),
        ("s2", "kill_switch"),
        ("s3", "kill_switch"),
        ("s1", "kill_switch"),
    ]
    assert all(isinstance(e.reason, str) and e.reason for e in rejected)


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
    assert len(session.events(KillSwitch, None)) == 1
    session.bars((97.5, 97.5, 95.0, 95.5))  # s2's stop at 96
    closed = session.events(PositionClosed, "s2")
    assert [(c.trade.exit_reason, c.trade.exit_price) for c in closed] == [("stop_loss", approx_float(96.0, rel=1e-12))]
    assert len(session.events(KillSwitch, None)) == 1


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
    assert session.events(KillSwitch, None) == []
    session.act(OpenPosition(SYMBOL, "long", 1.0), strategy_id="s1")
    assert _rules(session, "s1") == []
    session.bars((97.5, 97.5, 95.8, 96.5))  # s2 at 96: -2 -> -4 total (s1 re-entered at 97.5, stop 95.55 holds)
    kills = session.events(KillSwitch, None)
    assert len(kills) == 1
    assert kills[0].tripped_by == "s2"
    assert kills[0].daily_loss == pytest.approx(4.0, rel=1e-9)


# -- global limits per quote currency ---------------------------------------------------------------------

ETH_BTC = "ETH/BTC"


class TwoCurrencies:
    """s1 trades BTC/USD (counts in USD), s2 trades ETH/BTC (counts in BTC), on one 1m tape each (or `symbols`)."""

    def __init__(self, config: BotConfig, symbols: tuple[str, str] = (SYMBOL, ETH_BTC), **s2: Any) -> None:
        self.symbols = symbols
        self.rig = Rig(config, feeds={symbol: "1m" for symbol in symbols})
        slots = {"max_open_positions": 3}
        self.rig.start(
            quiet(id="s1", symbol=symbols[0], exits={"stop_loss_pct": 2}, risk=slots), quiet(id="s2", symbol=symbols[1], risk=slots, **s2)
        )
        self.next_ts = T0

    def bars(self, usd: float | tuple[float, float, float, float], btc: float | tuple[float, float, float, float]) -> None:
        """One candle on each symbol (a number: a flat candle at that price)."""
        rows = [usd if isinstance(usd, tuple) else flat(usd), btc if isinstance(btc, tuple) else flat(btc)]
        for symbol, row in zip(self.symbols, rows):
            self.rig.feed(symbol, candles_from([row], start_ts=self.next_ts))
        self.next_ts += MINUTE

    def act(self, strategy_id: str, *actions: Any) -> None:
        orchestrator = self.rig.manager.get(strategy_id)
        for action in actions:
            orchestrator.actions.put(action)
        orchestrator.actions.drain()

    def rules(self, strategy_id: str) -> list[str]:
        return [e.rule for e in self.rig.of_type(RiskRejected, strategy_id)]

    def kills(self) -> list[tuple[float, float, str | None, str]]:
        """(daily_loss, limit, currency, tripped_by) of each kill switch."""
        return [(e.daily_loss, e.limit, e.currency, e.tripped_by) for e in self.rig.of_type(KillSwitch)]


def test_exposure_is_capped_per_currency_never_summed_across() -> None:
    """USD cap 150, BTC cap 60: s1 holds 100 USD of notional, s2 50 BTC; each is measured against its own cap only."""
    two = TwoCurrencies(_global(max_total_exposure={"USD": 150, "BTC": 60}))
    two.bars(100, 0.5)
    two.act("s1", OpenPosition(SYMBOL, "long", 1.0))  # 100 USD
    two.act("s2", OpenPosition(ETH_BTC, "long", 100.0))  # 50 BTC: 150.0 summed, yet within the BTC cap
    two.bars(100, 0.5)
    assert two.rules("s1") == two.rules("s2") == []
    assert two.rig.services.risk.total_exposure("USD") == 100.0
    assert two.rig.services.risk.total_exposure("BTC") == 50.0
    two.act("s1", OpenPosition(SYMBOL, "long", 0.5))  # 150 USD: at the USD cap, the 50 BTC do not count
    two.act("s2", OpenPosition(ETH_BTC, "long", 30.0))  # 65 BTC: above the BTC cap
    assert two.rules("s1") == []
    assert two.rules("s2") == ["max_total_exposure"]
    [reason] = [e.reason for e in two.rig.of_type(RiskRejected, "s2")]
    assert reason == "total exposure would be 65 BTC, limit 60.0"


def test_a_loss_in_one_currency_never_counts_against_another_currencys_limit() -> None:
    """USD limit 1.5, no BTC limit: s2 loses 5 BTC (no trip, s1 trades on); then s1 loses 2 USD and trips
    the kill switch, which reports 2.0 USD, not 7, and then holds every entry in both currencies."""
    two = TwoCurrencies(_global(max_daily_loss={"USD": 1.5, "BTC": None}), exits={"stop_loss_pct": 10})
    two.bars(100, 0.5)
    two.act("s2", OpenPosition(ETH_BTC, "long", 100.0))
    two.bars(100, 0.5)  # s2 filled at 0.5, stop at 0.45
    two.bars(100, (0.5, 0.5, 0.44, 0.44))  # stopped at 0.45: -5 BTC
    assert [e.trade.pnl for e in two.rig.of_type(PositionClosed, "s2")] == [pytest.approx(-5.0, rel=1e-9)]
    assert two.kills() == [] and not two.rig.services.risk.kill_switch
    two.act("s1", OpenPosition(SYMBOL, "long", 1.0))
    assert two.rules("s1") == []
    two.bars(100, 0.44)  # s1 filled at 100, stop at 98
    two.bars((99.0, 99.0, 97.0, 97.5), 0.44)  # stopped at 98: -2 USD
    assert two.kills() == [(approx_float(2.0, rel=1e-9), 1.5, "USD", "s1")]
    two.act("s2", OpenPosition(ETH_BTC, "long", 1.0))
    assert two.rules("s2") == ["kill_switch"]
    risk = two.rig.services.risk
    assert risk.tally("USD").pnl == pytest.approx(-2.0, rel=1e-9)
    assert risk.tally("BTC").pnl == pytest.approx(-5.0, rel=1e-9)


def test_a_btc_loss_trips_the_btc_limit_and_names_its_currency() -> None:
    """BTC limit 4: s2's loss of 5 BTC trips it (tripped_by s2, currency BTC); the USD limit is untouched."""
    two = TwoCurrencies(_global(max_daily_loss={"USD": 1_000, "BTC": 4}), exits={"stop_loss_pct": 10})
    two.bars(100, 0.5)
    two.act("s2", OpenPosition(ETH_BTC, "long", 100.0))
    two.bars(100, 0.5)
    two.bars(100, (0.5, 0.5, 0.44, 0.44))
    assert two.kills() == [(approx_float(5.0, rel=1e-9), 4.0, "BTC", "s2")]
    two.act("s1", OpenPosition(SYMBOL, "long", 1.0))
    assert two.rules("s1") == ["kill_switch"]
    # The refusal of a USD entry says which currency's loss holds it.
    [reason] = [e.reason for e in two.rig.of_type(RiskRejected, "s1")]
    assert reason == "kill switch engaged: the global daily loss limit in BTC was reached"


@pytest.mark.parametrize(
    ("risk", "reason"),
    [
        (
            {"max_daily_loss": 1500},
            ("strategy 's2' trades in BTC, and the global risk.max_daily_loss cannot hold for it: a plain number holds for one currency, "
            "but the strategies trade in USD, BTC: money is never added across currencies, so write the limit per currency: "
            '{"USD": <amount>, "BTC": <amount>}'),
        ),
        (
            {"max_total_exposure": {"USD": 50_000}},
            ("strategy 's2' trades in BTC, and the global risk.max_total_exposure cannot hold for it: "
            'no limit for BTC: add "BTC": <amount> (or "BTC": null for no limit in BTC)'),
        ),
    ],
)
def test_a_strategy_in_a_currency_the_global_limits_do_not_cover_is_refused_at_load(risk: dict[str, Any], reason: str) -> None:
    """Loaded at runtime (as `bot ctl load` does), a BTC strategy beside a USD one is refused when a global limit
    is a plain number or has no entry for BTC; nothing of it stays behind, and a USD strategy still loads."""
    rig = Rig(_global(**risk), feeds={SYMBOL: "1m", ETH_BTC: "1m"})
    rig.start(quiet(id="s1"))
    with pytest.raises(StrategyStateError) as refused:
        rig.manager.load(quiet(id="s2", symbol=ETH_BTC))
    assert str(refused.value) == reason
    assert rig.manager.ids() == ["s1"] and rig.services.risk.tracked() == ["s1"]
    rig.start(quiet(id="s3"))
    assert rig.services.risk.tracked() == ["s1", "s3"]


def test_a_plain_number_still_holds_for_strategies_of_one_currency() -> None:
    """Backward compatible: with BTC strategies only, max_daily_loss 4 is the BTC limit; a 5 BTC loss trips it."""
    rig = Rig(_global(max_daily_loss=4), feeds={ETH_BTC: "1m"})
    rig.start(quiet(id="a", symbol=ETH_BTC, exits={"stop_loss_pct": 10}), quiet(id="b", symbol=ETH_BTC))
    rig.feed(ETH_BTC, candles_from([flat(0.5)]))
    orchestrator = rig.manager.get("a")
    orchestrator.actions.put(OpenPosition(ETH_BTC, "long", 100.0))
    orchestrator.actions.drain()
    rig.feed(ETH_BTC, candles_from([flat(0.5), (0.5, 0.5, 0.44, 0.44)], start_ts=T0 + MINUTE))
    kills = [(e.daily_loss, e.limit, e.currency, e.tripped_by) for e in rig.of_type(KillSwitch)]
    assert kills == [(approx_float(5.0, rel=1e-9), 4.0, "BTC", "a")]


def test_daily_tallies_are_journalled_and_restored_per_currency() -> None:
    """daily_state is the strategy's own tally with its currency; changed_tallies gives each booked currency's
    global tally once; restore_tally puts it back in its currency, restore_daily the strategy's own."""
    two = TwoCurrencies(_global(max_daily_loss={"USD": 3, "BTC": 6}), exits={"stop_loss_pct": 10})
    risk = two.rig.services.risk
    two.bars(100, 0.5)
    two.act("s2", OpenPosition(ETH_BTC, "long", 100.0))
    two.bars(100, 0.5)
    two.bars(100, (0.5, 0.5, 0.44, 0.44))  # -5 BTC
    day = T0 // DAY
    saved = {sid: risk.daily_state(sid) for sid in ("s1", "s2")}
    assert saved == {"s1": DailyTally("USD", -1, 0.0), "s2": DailyTally("BTC", day, approx_float(-5.0, rel=1e-9))}
    tallies = risk.changed_tallies()
    assert tallies == {"BTC": DailyTally("BTC", day, approx_float(-5.0, rel=1e-9))}
    assert risk.changed_tallies() == {}  # nothing booked since

    again = TwoCurrencies(_global(max_daily_loss={"USD": 3, "BTC": 6}), exits={"stop_loss_pct": 10})
    for sid, state in saved.items():
        assert state is not None
        again.rig.services.risk.restore_daily(sid, state)
    for tally in tallies.values():
        again.rig.services.risk.restore_tally(tally)
    assert again.rig.services.risk.daily_state("s2") == saved["s2"]
    assert again.rig.services.risk.tally("BTC").pnl == pytest.approx(-5.0, rel=1e-9)
    assert again.rig.services.risk.tally("USD") == DailyTally("USD", -1, 0.0)
    # 1.5 BTC more makes 6.5 BTC that day: the restored BTC tally trips the BTC limit; USD never moved.
    again.next_ts = two.next_ts
    again.bars(100, 0.5)
    again.act("s2", OpenPosition(ETH_BTC, "long", 30.0))
    again.bars(100, 0.5)
    again.bars(100, (0.5, 0.5, 0.44, 0.44))
    assert again.kills() == [(approx_float(6.5, rel=1e-9), 6.0, "BTC", "s2")]


def test_each_symbol_without_a_quote_keeps_its_own_tally_and_limit() -> None:
    """BTCUSD and ETHUSD (not BASE/QUOTE) have no known quote, so each is a currency group of its own, never added to
    the other: s2 loses 5 on ETHUSD, s1 then 2 on BTCUSD, and nothing trips at 6 (added, 7 would have); s2's next
    loss of 1.5 makes ETHUSD's 6.5, which trips ETHUSD's limit, named as a symbol whose quote is unknown."""
    two = TwoCurrencies(
        _global(max_daily_loss={"BTCUSD": 6, "ETHUSD": 6}, max_total_exposure={"BTCUSD": 1_000, "ETHUSD": 1_000}),
        symbols=("BTCUSD", "ETHUSD"),
        exits={"stop_loss_pct": 10},
    )
    risk = two.rig.services.risk
    two.bars(100, 0.5)
    two.act("s2", OpenPosition("ETHUSD", "long", 100.0))
    two.bars(100, 0.5)
    two.bars(100, (0.5, 0.5, 0.44, 0.44))  # -5
    two.act("s1", OpenPosition("BTCUSD", "long", 1.0))
    two.bars(100, 0.44)
    two.bars((99.0, 99.0, 97.0, 97.5), 0.44)  # -2
    assert two.kills() == []
    assert (risk.tally("BTCUSD").pnl, risk.tally("ETHUSD").pnl) == (approx_float(-2.0, rel=1e-9), approx_float(-5.0, rel=1e-9))
    assert risk.total_exposure("BTCUSD") == 0.0 and risk.tally("") == DailyTally("", -1, 0.0)
    two.act("s2", OpenPosition("ETHUSD", "long", 30.0))
    two.bars(97.5, 0.44)
    two.bars(97.5, (0.44, 0.44, 0.38, 0.38))  # stopped at 0.396: -1.32 more, 6.32 in all
    assert two.kills() == [(approx_float(6.32, rel=1e-9), 6.0, "ETHUSD", "s2")]
    two.act("s1", OpenPosition("BTCUSD", "long", 1.0))
    [reason] = [e.reason for e in two.rig.of_type(RiskRejected, "s1")]
    assert reason == "kill switch engaged: the global daily loss limit in ETHUSD (quote unknown) was reached"


def test_a_plain_limit_cannot_hold_for_two_symbols_without_a_quote() -> None:
    """Loaded at runtime beside BTCUSD, a strategy on ETHUSD is refused while a global limit is one plain number."""
    rig = Rig(_global(max_daily_loss=6), feeds={"BTCUSD": "1m", "ETHUSD": "1m"})
    rig.start(quiet(id="s1", symbol="BTCUSD"))
    with pytest.raises(StrategyStateError) as refused:
        rig.manager.load(quiet(id="s2", symbol="ETHUSD"))
    assert str(refused.value).startswith(
        "strategy 's2' trades in ETHUSD (quote unknown), and the global risk.max_daily_loss cannot hold for it: a plain number "
        "holds for one currency, but the strategies trade in BTCUSD (quote unknown), ETHUSD (quote unknown)"
    )
    assert "write 'BTCUSD' and 'ETHUSD' as BASE/QUOTE (preferred" in str(refused.value)


def test_a_day_pnl_is_of_the_day_asked_about_never_yesterdays() -> None:
    """s1 loses 2 on day one; asked on day two (nothing booked yet) its day PnL and its currency's are 0, on day one -2."""
    two = TwoCurrencies(_global(max_daily_loss={"USD": 100, "BTC": 100}))
    risk = two.rig.services.risk
    two.bars(100, 0.5)
    two.act("s1", OpenPosition(SYMBOL, "long", 1.0))
    two.bars(100, 0.5)
    two.bars((99.0, 99.0, 97.0, 97.5), 0.5)  # stopped at 98: -2
    assert risk.day_pnl("s1", T0 + 3 * MINUTE) == pytest.approx(-2.0, rel=1e-9)
    assert risk.currency_days(T0 + 3 * MINUTE) == {
        "USD": {"day_pnl": pytest.approx(-2.0, rel=1e-9), "max_daily_loss": 100.0},
        "BTC": {"day_pnl": 0.0, "max_daily_loss": 100.0},
    }
    assert risk.day_pnl("s1", T0 + DAY) == 0.0
    assert risk.currency_days(T0 + DAY)["USD"]["day_pnl"] == 0.0


def test_the_risk_manager_is_built_before_the_bus_and_a_strategys_view_announces_the_trip() -> None:
    """No hook at construction: the risk manager takes its limits only, and the risk view bound with a bus announces
    there the kill switch its booking trips (untagged, with the currency and the strategy), once."""
    from bot.bus import EventBus
    from bot.clock import ReplayClock
    from bot.config.models import GlobalRiskConfig, StrategyRiskConfig
    from bot.events import Event, KillSwitch
    from bot.trading.risk import RiskManager

    risk = RiskManager(GlobalRiskConfig.model_validate({"max_daily_loss": 1.5}))
    bus = EventBus(ReplayClock())
    heard: list[Event] = []
    bus.subscribe(heard.append)
    view = risk.bind("s1", StrategyRiskConfig(), "BTC/USD", bus)
    view.book(-1.0, T0)
    assert heard == [] and not risk.kill_switch
    view.book(-1.0, T0)
    assert risk.kill_switch and risk.tripped_in == "USD"
    (kill,) = heard
    assert isinstance(kill, KillSwitch) and kill.strategy_id is None
    assert (kill.daily_loss, kill.limit, kill.currency, kill.tripped_by) == (2.0, 1.5, "USD", "s1")
    view.book(-1.0, T0)  # engaged already: no second announcement
    assert len(heard) == 1
