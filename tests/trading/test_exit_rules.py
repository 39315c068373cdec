"""The exit rules the README states that tests/trading/test_exits.py does not single out, each on hand-built candles
through the real position manager (and, for trades.csv, the real `bot replay`)."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from bot.events import OrderFilled, PositionClosed, TrailingActivated
from bot.trading.actions import ClosePercent, OpenPosition
from tests.cli.test_cli import run_bot
from tests.config.builders import write_setup
from tests.support import approx_float
from tests.trading.helpers import SYMBOL, Session, flat, quiet

approx = pytest.approx


def _exit_fills(session: Session) -> list[tuple[Any, ...]]:
    """(reason, price, quantity) of every fill after the entry."""
    return [(f.fill.reason, f.fill.price, f.fill.quantity) for f in session.events(OrderFilled)[1:]]


def _entered(exits: dict[str, Any], **overrides: Any) -> Session:
    """A long of 1 decided on a close of 100 and filled at the next candle's open, 100."""
    session = Session(quiet(exits=exits, **overrides))
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 1.0))
    session.bars(flat(100))
    return session


def test_stop_take_profit_and_trailing_levels_are_percentages_of_the_entry_fill_price() -> None:
    """Decided on a close of 100, filled at the next open 110 plus 10 bps slippage = 110.11: every level is a share of 110.11."""
    exits = {"stop_loss_pct": 2, "take_profit": [{"pct": 5, "close_pct": 100}], "trailing": {"activation_pct": 3, "distance_pct": 1}}
    session = Session(quiet(exits=exits, fill={"slippage_bps": 10}))
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 1.0))
    session.bars(flat(110))
    position = session.position()
    assert position.entry_price == approx(110.11, rel=1e-12)
    assert position.stop_loss == approx(110.11 * 0.98, rel=1e-12)
    assert position.take_profits[0].price == approx(110.11 * 1.05, rel=1e-12)
    assert position.trailing_activation_price == approx(110.11 * 1.03, rel=1e-12)


def test_close_pct_is_a_share_of_the_initial_quantity() -> None:
    """Rungs of 50%, 25% and 25% of 1.0 close 0.5, then 0.25 (not 25% of the 0.5 left), then the rest."""
    session = _entered({"take_profit": [{"pct": 2, "close_pct": 50}, {"pct": 4, "close_pct": 25}, {"pct": 6, "close_pct": 25}]})
    session.bars((100.0, 102.5, 99.5, 102.0))
    session.bars((102.0, 104.5, 101.5, 104.0))
    assert _exit_fills(session) == [("take_profit_1", 102.0, 0.5), ("take_profit_2", 104.0, 0.25)]
    assert session.position().quantity == approx(0.25, rel=1e-12)
    session.bars((104.0, 106.5, 103.5, 106.0))
    assert _exit_fills(session)[2] == ("take_profit_3", 106.0, approx(0.25, rel=1e-12))
    assert session.orch().positions.positions == {}


def test_a_ladder_under_100_percent_leaves_the_rest_open() -> None:
    """Rungs of 30% and 30%: 0.3 and 0.3 close, 0.4 stays open after both."""
    session = _entered({"take_profit": [{"pct": 2, "close_pct": 30}, {"pct": 4, "close_pct": 30}]})
    session.bars((100.0, 105.0, 99.5, 104.0))
    assert _exit_fills(session) == [("take_profit_1", 102.0, 0.3), ("take_profit_2", 104.0, 0.3)]
    assert session.position().quantity == approx(0.4, rel=1e-12)


def test_the_last_rung_of_a_full_ladder_closes_what_is_left() -> None:
    """A 50/50 ladder after the strategy closed 40% itself: rung 1 closes 0.5, rung 2 the 0.1 left (not 0.5)."""
    session = _entered({"take_profit": [{"pct": 2, "close_pct": 50}, {"pct": 4, "close_pct": 50}]})
    session.act(ClosePercent(session.position().id, 40.0))
    session.bars(flat(100))
    session.bars((100.0, 102.5, 99.5, 102.0))
    session.bars((102.0, 104.5, 101.5, 104.0))
    assert _exit_fills(session) == [("signal", 100.0, 0.4), ("take_profit_1", 102.0, 0.5), ("take_profit_2", 104.0, approx(0.1, rel=1e-9))]
    assert session.orch().positions.positions == {}


def test_exits_are_checked_on_the_entry_candle_itself() -> None:
    """The entry fills at the open 100 of a candle whose low is 97: the 2% stop (98) fires in that same candle."""
    session = Session(quiet(exits={"stop_loss_pct": 2}))
    session.bars(flat(100))
    session.act(OpenPosition(SYMBOL, "long", 1.0))
    session.bars((100.0, 100.5, 97.0, 99.0))
    assert _exit_fills(session) == [("stop_loss", approx(98.0, rel=1e-12), 1.0)]
    closed = session.events(PositionClosed)[0]
    assert closed.trade.entry_ts == closed.trade.exit_ts


def test_rungs_filling_in_one_candle_each_fill_at_their_price_or_at_the_open_when_gapped() -> None:
    """A candle opening at 103, past rung 1 (102), reaching 106, past rung 2 (105): rung 1 at the open 103, rung 2 at 105."""
    session = _entered({"take_profit": [{"pct": 2, "close_pct": 50}, {"pct": 5, "close_pct": 50}]})
    session.bars((103.0, 106.0, 102.5, 105.5))
    assert _exit_fills(session) == [("take_profit_1", 103.0, 0.5), ("take_profit_2", 105.0, 0.5)]


def test_the_binding_stop_is_the_higher_of_stop_loss_and_trailing_stop() -> None:
    """Stop-loss 97; trailing activated on close 102 at 1%: 100.98 binds, so a dip to 100 exits at 100.98 as trailing_stop."""
    session = _entered({"stop_loss_pct": 3, "trailing": {"activation_pct": 2, "distance_pct": 1}})
    session.bars((100.0, 102.2, 101.5, 102.0))
    position = session.position()
    assert position.stop_loss == approx(97.0, rel=1e-12)
    assert position.trailing_stop == position.stop == approx(100.98, rel=1e-12)
    session.bars((101.5, 101.8, 100.0, 100.5))
    assert _exit_fills(session) == [("trailing_stop", approx(100.98, rel=1e-12), 1.0)]


def test_trailing_activates_on_a_close_at_the_level_anchored_at_that_close_from_the_next_candle() -> None:
    """Activation 2% (102), distance 1%.

    - a high of 105 with a close of 101.9 does not activate;
    - the close 102 activates, anchored at 102 (stop 100.98, not 103.95 from the high 105);
      that candle's own low 100.5 is below 100.98 and does not trigger;
    - the next candle's low 100.9 triggers at 100.98.
    """
    session = _entered({"trailing": {"activation_pct": 2, "distance_pct": 1}})
    session.bars((100.0, 105.0, 99.5, 101.9))
    assert session.events(TrailingActivated) == []
    session.bars((101.9, 105.0, 100.5, 102.0))
    assert [(a.anchor, a.trailing_stop) for a in session.events(TrailingActivated)] == [(102.0, approx_float(100.98, rel=1e-12))]
    assert _exit_fills(session) == []
    session.bars((101.5, 101.8, 100.9, 101.0))
    assert _exit_fills(session) == [("trailing_stop", approx(100.98, rel=1e-12), 1.0)]


def test_break_even_moves_the_stop_at_the_close_of_the_first_rungs_candle() -> None:
    """Rung 1 (102) fills in a candle that then dips to 99, under the entry: the stop is still 95 there, so the
    other half stays open; from the close on the stop is 100, and the next dip to 99.5 exits at 100."""
    session = _entered(
        {"stop_loss_pct": 5, "take_profit": [{"pct": 2, "close_pct": 50}, {"pct": 10, "close_pct": 50}], "break_even_after_first_take_profit": True}
    )
    session.bars((100.0, 102.5, 99.0, 101.0))
    assert _exit_fills(session) == [("take_profit_1", 102.0, 0.5)]
    assert session.position().stop_loss == 100.0
    session.bars((101.0, 101.5, 99.5, 100.5))
    assert _exit_fills(session)[1] == ("stop_loss", 100.0, 0.5)


def test_a_candle_opening_beyond_a_take_profit_that_also_reaches_the_stop_books_the_stop() -> None:
    """Stop 98, take-profit 103; a candle opening at 104 (past the take-profit) whose low is 97: the stop is booked."""
    session = _entered({"stop_loss_pct": 2, "take_profit": [{"pct": 3, "close_pct": 100}]})
    session.bars((104.0, 105.0, 97.0, 99.0))
    assert _exit_fills(session) == [("stop_loss", approx(98.0, rel=1e-12), 1.0)]
    assert [c.trade.exit_reason for c in session.events(PositionClosed)] == ["stop_loss"]


def test_a_strategys_own_close_is_named_signal() -> None:
    session = _entered({})
    session.act(ClosePercent(session.position().id, 100.0))
    session.bars(flat(101))
    assert [c.trade.exit_reason for c in session.events(PositionClosed)] == ["signal"]


# A strategy module that opens one long on its first candle, for a replay whose fills are known.
_ENTER_ONCE = '''"""A test strategy."""
from bot.strategy.base import Strategy, StrategyParams


class EnterOnceParams(StrategyParams):
    """No parameters."""


class EnterOnce(Strategy):
    """Opens one long position on its first candle, then only its exit rules act."""

    name = "enter_once"
    version = "1.0.0"
    Params = EnterOnceParams

    def on_candle(self, symbol: str, timeframe: str, candle: object) -> None:
        """Open once."""
        if not getattr(self, "entered", False):
            self.entered = True
            self.ctx.open("long")
'''

T0 = 1_640_995_200_000  # 2022-01-01T00:00:00Z


def test_trades_csv_exit_time_and_reason_are_the_last_partial_fills_and_pnl_is_net_of_every_fee(tmp_path: Path) -> None:
    """Entry 1 @ 100 (minute 1), rung 1 half @ 102 (minute 2), stop the other half @ 98 (minute 4).

    fee = price x quantity x bps / 10,000: entry 100 x 1 x 10 = 0.1, rung 102 x 0.5 x 5 = 0.0255 (maker),
    stop 98 x 0.5 x 10 = 0.049; pnl = (102 - 100) x 0.5 + (98 - 100) x 0.5 - 0.1745 = -0.1745.
    """
    rows = [(100, 100, 100, 100), (100, 100.5, 99.5, 100), (100, 102.5, 100, 102), (102, 102, 101, 101.5), (101, 101, 97, 97.5), (97.5, 98, 97, 97.5)]
    lines = ["ts_ms,open,high,low,close,volume"] + [f"{T0 + i * 60_000},{o},{h},{l},{c},1" for i, (o, h, l, c) in enumerate(rows)]
    (tmp_path / "tape_1m.csv").write_text("\n".join(lines) + "\n")
    strategy = {
        "id": "once", "module": "enter_once", "symbol": "BTC/USD", "timeframe": "1m", "quantity": 1.0,
        "exits": {"stop_loss_pct": 2, "take_profit": [{"pct": 2, "close_pct": 50}, {"pct": 10, "close_pct": 50}]},
        "fees": {"taker_bps": 10, "maker_bps": 5},
    }
    write_setup(tmp_path, {"once.json": strategy}, {"replay": {"candles": {"BTC/USD": {"path": "tape_1m.csv", "timeframe": "1m"}}}})
    (tmp_path / "strategies" / "enter_once.py").write_text(_ENTER_ONCE)

    result = run_bot("replay", "--config", "config.json", "--out", "out", "--quiet", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    with (tmp_path / "out" / "trades.csv").open() as handle:
        trades = list(csv.DictReader(handle))
    assert len(trades) == 1
    trade = trades[0]
    assert (trade["entry_time"], trade["exit_time"], trade["exit_reason"]) == (
        "2022-01-01T00:01:00Z", "2022-01-01T00:04:00Z", "stop_loss"
    )
    assert float(trade["exit_price"]) == approx(100.0, rel=1e-12)  # (0.5 x 102 + 0.5 x 98) / 1
    assert float(trade["fees"]) == approx(0.1745, rel=1e-9)
    assert float(trade["pnl"]) == approx(-0.1745, rel=1e-9)
