"""The exit rules as pure functions: hand-made positions and recorded candles in, triggers out, nothing mutated."""
from __future__ import annotations

import copy
from itertools import islice, pairwise

from bot.bus import EventBus, StrategyPublisher
from bot.candles.reader import read_candles
from bot.clock import ReplayClock
from bot.config.models import ExitConfig, FeesConfig, FillConfig, GlobalRiskConfig, StrategyRiskConfig
from bot.events import Event, PositionClosed
from bot.ohlcv import Candle
from bot.trading.exit_rules import (
    StopHit,
    TrailingStart,
    TrailMove,
    break_even_stop,
    rung_quantity,
    rungs_hit,
    stop_hit,
    trail_move,
    trailing_start,
)
from bot.trading.orders import Fill
from bot.trading.paper import PaperAccount
from bot.trading.portfolio import Portfolio
from bot.trading.position import Position, TakeProfitLevel
from bot.trading.positions import PositionManager
from bot.trading.risk import RiskManager
from tests.support import BTC_1M

T0 = 1_640_995_200_000


def _long(entry: float = 100.0, stop: float | None = 95.0, rungs: tuple[tuple[float, float], ...] = ((102.0, 0.5), (104.0, 0.5))) -> Position:
    position = Position("s-p1", "BTC/USD", "long", 1, 1.0, 1.0, entry, T0, stop_loss=stop)
    position.take_profits = [TakeProfitLevel(price, qty) for price, qty in rungs]
    position.refresh_stop()
    return position


def _short(entry: float = 100.0, stop: float | None = 105.0) -> Position:
    position = Position("s-p2", "BTC/USD", "short", -1, 1.0, 1.0, entry, T0, stop_loss=stop)
    position.take_profits = [TakeProfitLevel(98.0, 1.0)]
    position.refresh_stop()
    return position


def _candle(o: float, h: float, low: float, c: float) -> Candle:
    return Candle(T0, o, h, low, c, 1.0)


def test_a_candle_reaching_the_stop_and_a_rung_reports_both_and_the_manager_books_the_stop() -> None:
    position = _long()
    candle = _candle(100.0, 103.0, 94.0, 101.0)
    assert stop_hit(position, candle) == StopHit(95.0, "stop_loss")
    assert rungs_hit(position, candle) == (0,)
    manager, events = _manager()
    _open(manager, 100.0)
    manager.on_bar("BTC/USD", candle, candle.ts)
    (closed,) = [e for e in events if isinstance(e, PositionClosed)]
    assert (closed.trade.exit_reason, closed.trade.exit_price) == ("stop_loss", 95.0)


def test_a_gap_through_the_stop_triggers_at_the_stop_and_fills_at_the_open() -> None:
    position = _long()
    gap = _candle(90.0, 91.0, 89.0, 90.5)
    assert stop_hit(position, gap) == StopHit(95.0, "stop_loss")
    manager, events = _manager()
    _open(manager, 100.0)
    manager.on_bar("BTC/USD", gap, gap.ts)
    (closed,) = [e for e in events if isinstance(e, PositionClosed)]
    assert closed.trade.exit_price == 90.0


def test_a_short_is_stopped_by_the_high_and_takes_profit_at_the_low() -> None:
    position = _short()
    assert stop_hit(position, _candle(100.0, 104.9, 99.0, 100.0)) is None
    assert stop_hit(position, _candle(100.0, 105.0, 99.0, 100.0)) == StopHit(105.0, "stop_loss")
    assert rungs_hit(position, _candle(100.0, 101.0, 98.0, 99.0)) == (0,)
    assert rungs_hit(position, _candle(100.0, 101.0, 98.1, 99.0)) == ()


def test_rungs_fire_nearest_first_and_skip_those_taken() -> None:
    position = _long(rungs=((102.0, 0.3), (104.0, 0.3), (106.0, 0.4)))
    assert rungs_hit(position, _candle(100.0, 104.5, 99.0, 104.0)) == (0, 1)
    position.take_profits[0].done = True
    assert rungs_hit(position, _candle(100.0, 107.0, 99.0, 104.0)) == (1, 2)
    assert rungs_hit(position, _candle(100.0, 101.0, 99.0, 100.0)) == ()


def test_the_last_rung_of_a_100_percent_ladder_closes_the_rest() -> None:
    position = _long(rungs=((102.0, 0.7), (104.0, 0.3)))
    left = 1.0 - 0.7  # 0.30000000000000004: float rounding the last rung must not leave open
    assert rung_quantity(position, 1, left) == 0.3  # a ladder under 100 %: at most the rung's own quantity
    position.ladder_closes_all = True
    assert rung_quantity(position, 1, left) == left
    assert rung_quantity(position, 0, 1.0) == 0.7
    assert rung_quantity(position, 0, 0.2) == 0.2  # never more than is available


def test_trailing_ratchets_only_favourably_over_recorded_candles() -> None:
    candles = list(islice(read_candles(BTC_1M), 2000))
    for position in (_long(entry=candles[0].close, stop=None), _short(entry=candles[0].close, stop=None)):
        position.trailing_active, position.trailing_distance_pct, position.trail_anchor = True, 0.5, candles[0].close
        moves = 0
        for candle in candles[1:]:
            move = trail_move(position, candle)
            if move is None:
                continue
            previous = position.trailing_stop
            assert (move.anchor > position.trail_anchor) if position.direction > 0 else (move.anchor < position.trail_anchor)
            if previous is not None:
                assert (move.stop > previous) if position.direction > 0 else (move.stop < previous)
            position.trail_anchor, position.trailing_stop = move.anchor, move.stop
            moves += 1
        assert moves >= 5


def test_trailing_moves_by_its_distance_from_the_best_price() -> None:
    position = _long(stop=None)
    position.trailing_active, position.trailing_distance_pct, position.trail_anchor = True, 2.0, 100.0
    assert trail_move(position, _candle(100.0, 100.0, 97.0, 98.0)) is None
    assert trail_move(position, _candle(100.0, 110.0, 99.0, 109.0)) == TrailMove(110.0, 110.0 * 0.98)


def test_trailing_starts_on_a_close_at_its_activation_price_and_break_even_after_the_first_rung() -> None:
    position = _long()
    position.trailing_activation_price, position.trailing_distance_pct = 103.0, 1.0
    assert trailing_start(position, _candle(100.0, 104.0, 99.0, 102.9)) is None  # the close decides, not the high
    assert trailing_start(position, _candle(100.0, 104.0, 99.0, 103.5)) == TrailingStart(1.0, 103.5)
    position.trailing_active = True
    assert trailing_start(position, _candle(100.0, 104.0, 99.0, 103.5)) is None
    position.break_even = True
    assert break_even_stop(position) is None  # first rung not taken yet
    position.take_profits[0].done = True
    assert break_even_stop(position) == 100.0
    position.stop_loss = 100.0
    assert break_even_stop(position) is None  # already there


def test_the_rules_agree_with_their_definition_on_recorded_candles_and_mutate_nothing() -> None:
    candles = list(islice(read_candles(BTC_1M), 3000))
    stop_hits = rung_hits = 0
    for previous, candle in pairwise(candles):
        entry = previous.close
        position = _long(entry=entry, stop=entry * 0.999, rungs=((entry * 1.001, 0.5), (entry * 1.002, 0.5)))
        before = copy.deepcopy(position)
        hit = stop_hit(position, candle)
        rungs = rungs_hit(position, candle)
        assert position == before
        assert (hit is not None) == (candle.low <= entry * 0.999)
        expected: list[int] = []
        for index, level in enumerate(position.take_profits):
            if candle.high < level.price:
                break
            expected.append(index)
        assert list(rungs) == expected
        stop_hits += hit is not None
        rung_hits += bool(rungs)
    assert stop_hits and rung_hits


def _manager() -> tuple[PositionManager, list[Event]]:
    """A real position manager on the paper exchange: stop 5 % under the entry, two rungs at +2 % and +4 %."""
    bus = EventBus(ReplayClock())
    events: list[Event] = []
    bus.subscribe(events.append)
    risk = RiskManager(GlobalRiskConfig()).bind("s", StrategyRiskConfig(), "BTC/USD", bus)
    exits = ExitConfig.model_validate({"stop_loss_pct": 5, "take_profit": [{"pct": 2, "close_pct": 50}, {"pct": 4, "close_pct": 50}]})
    manager = PositionManager(
        "s", exits, lambda _sink: PaperAccount("s", FeesConfig(), FillConfig()), Portfolio(10_000.0), risk, StrategyPublisher(bus, "s")
    )
    return manager, events


def _open(manager: PositionManager, price: float) -> None:
    manager.submit_open("BTC/USD", "long", 1.0, "test", T0 - 60_000, price)
    (order,) = manager.pending_orders()
    manager.account.cancel_pending()
    manager.apply_fill(Fill(order, price, 1.0, 0.0, T0 - 60_000, "taker"))
