"""trades.csv rows are the csv module's rows, byte for byte, whatever text a trade's fields hold."""
from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.events import FillRecord, PortfolioSnapshot, PositionClosed, TradeRecord
from bot.replay.event_log import TRADE_COLUMNS, TradesCsv, iso_ms

_PORTFOLIO = PortfolioSnapshot(10_000.0, 10_000.0, 10_000.0, 0.0, 0.0, 0.0, 0.0, 10_000.0, 0.0, 0.0)
_FILL = FillRecord("s-2", "BTC/USD", "sell", 0.01, 1.0, 0.0, "taker", "signal", 1_672_531_320_000)
# Text a strategy may put in a reason or an id, with every character the csv module quotes or doubles.
_TEXT = st.text(alphabet=st.sampled_from(list('ab ,"\r\n;\'/-_.é')), max_size=12)
_NUMBER = st.floats(allow_nan=True, allow_infinity=True)
Numbers = tuple[float, float, float, float, float]


def _trade(strategy_id: str, symbol: str, reason: str, position_id: str, numbers: Numbers) -> TradeRecord:
    quantity, entry, exit_, pnl, fees = numbers
    return TradeRecord(strategy_id, position_id, symbol, "long", quantity, 1_672_531_260_000, entry, 1_672_531_320_000, exit_, pnl, fees, reason, None)


def _csv_module_rows(rows: list[tuple[str, ...]]) -> bytes:
    text = io.StringIO(newline="")
    csv.writer(text).writerows(rows)
    return text.getvalue().encode()


def _row(trade: TradeRecord) -> tuple[str, ...]:
    return (
        trade.strategy_id, trade.symbol, trade.side, repr(trade.quantity), iso_ms(trade.entry_ts), repr(trade.entry_price),
        iso_ms(trade.exit_ts), repr(trade.exit_price), repr(trade.pnl), repr(trade.fees), trade.exit_reason, trade.position_id,
    )


def _written(trades: list[TradeRecord]) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        out = TradesCsv(Path(folder) / "trades.csv")
        for seq, trade in enumerate(trades, 1):
            out.write(PositionClosed(seq, 0, 0, trade.strategy_id, trade, _PORTFOLIO, _FILL))
        out.close()
        assert out.count == len(trades)
        return (Path(folder) / "trades.csv").read_bytes()


@settings(max_examples=300)
@given(_TEXT, _TEXT, _TEXT, _TEXT, st.tuples(_NUMBER, _NUMBER, _NUMBER, _NUMBER, _NUMBER))
def test_a_row_is_the_csv_modules_row(strategy_id: str, symbol: str, reason: str, position_id: str, numbers: Numbers) -> None:
    trade = _trade(strategy_id, symbol, reason, position_id, numbers)
    assert _written([trade]) == _csv_module_rows([TRADE_COLUMNS, _row(trade)])


def test_rows_with_and_without_quoting_are_written_in_order() -> None:
    trades = [
        _trade("s", "BTC/USD", "signal", "s-p1", (0.01, 30021.44, 29991.79, -0.29649999999997817, 0.0)),
        _trade("s", "BTC/USD", 'take "profit", 1\r\nof 2', "s-p2", (1e16, 1e-7, float("inf"), -0.0, 3.0)),
        _trade("s", "BTC/USD", "stop", "s-p3", (0.5, 1.0, 2.0, 0.5, 0.0)),
    ]
    written = _written(trades)
    assert written == _csv_module_rows([TRADE_COLUMNS, *map(_row, trades)])
    assert written.count(b'"') == 6 and b',"take ""profit"", 1\r\nof 2",' in written
