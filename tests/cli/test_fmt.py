"""Human formatting (bot/fmt.py): UTC ISO times, prices and quantities without float noise, key=value fields."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.candles.reader import read_candles
from bot.fmt import format_fields, format_number, format_path, format_price, format_qty, format_time
from tests.support import ETH_1M


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (1641299400000, "2022-01-04 12:30Z"),
        (1641299415000, "2022-01-04 12:30:15Z"),
        (1641299415123, "2022-01-04 12:30:15.123Z"),
        (0, "1970-01-01 00:00Z"),
    ],
)
def test_times_are_utc_iso_8601_with_seconds_only_when_there_are_some(ms: int, text: str) -> None:
    assert format_time(ms) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (47479.01099999999, "47479.011"),  # float noise gone
        (46202.191999999995, "46202.192"),
        (0.0123, "0.0123"),  # a BTC amount keeps its digits (never 0.01)
        (-0.0123, "-0.0123"),  # and its sign (never -0.00)
        (-4.849783e-05, "-0.00004849783"),  # never an exponent
        (0.0003205653, "0.0003205653"),
        (46150.0, "46150"),
        (0.1, "0.1"),
        (-0.0, "0"),
        (1e-17, "0"),  # noise of a sum that should be zero
        (float("nan"), "nan"),
    ],
)
def test_prices_and_quantities_keep_eight_significant_digits_in_plain_decimals(value: float, text: str) -> None:
    assert format_number(value) == format_price(value) == format_qty(value) == text


def test_every_recorded_eth_btc_close_reads_as_the_file_wrote_it() -> None:
    # The shared files write each price as the exchange quoted it (plain decimals): the
    # formatted close must be that text, for every one of the 14,397 candles.
    lines = ETH_1M.read_text().splitlines()[1:]
    candles = list(read_candles(ETH_1M))
    assert len(candles) == len(lines) == 14_397
    for line, candle in zip(lines, candles):
        written = line.split(",")[4]
        assert format_price(candle.close) == (written.rstrip("0").rstrip(".") if "." in written else written), line


def test_fields_are_key_value_pairs_with_times_nested_keys_and_quotes_where_needed() -> None:
    payload = {
        "state": "playing",
        "candles": 3000,
        "speed": 10000.0,
        "downtime": {"after": 1641299400000, "until": 1641299460000, "missed": {"ETH/BTC": 1}},
        "error": 'bad "row" = 3',
        "ok": True,
        "policy": None,
        "take_profit": [[46793.96199999999, 0.05, False]],
        "candle": [1641299400000, 0.0284504, 0.02846, 0.02844, 0.02845, 12.5],
        "fill": {"fill_ts": 1641299415000, "price": 47479.01099999999},
    }
    assert format_fields(payload) == (
        'state=playing candles=3000 speed=10000 downtime.after="2022-01-04 12:30Z" downtime.until="2022-01-04 12:31Z" '
        'downtime.missed.ETH/BTC=1 error="bad \\"row\\" = 3" ok=true policy=null take_profit=[[46793.962,0.05,false]] '
        'candle.ts="2022-01-04 12:30Z" candle.open=0.0284504 candle.high=0.02846 candle.low=0.02844 candle.close=0.02845 '
        'candle.volume=12.5 fill.fill_ts="2022-01-04 12:30:15Z" fill.price=47479.011'
    )


def test_a_value_with_a_newline_stays_on_its_line() -> None:
    assert format_fields({"error": "line one\nline two"}) == 'error="line one\\nline two"'


def test_paths_are_shown_relative_to_the_working_folder_when_inside_it(tmp_path: Path) -> None:
    assert format_path(tmp_path / "run" / "journal.sqlite", base=tmp_path) == "run/journal.sqlite"
    assert format_path(Path("/elsewhere/journal.sqlite"), base=tmp_path) == "/elsewhere/journal.sqlite"


@pytest.mark.parametrize(
    ("ms", "shown"),
    [
        (10**18, "1000000000000000000"),  # the year 31,690,708: past what datetime holds (ValueError)
        (2**70, "1180591620717411303424"),  # past time_t (OverflowError or OSError)
        (253_402_300_800_000, "253402300800000"),  # 10000-01-01: one millisecond too far
        (253_402_300_799_999, '"9999-12-31 23:59:59.999Z"'),  # the last moment a date can show
    ],
)
def test_an_integer_no_date_can_hold_is_shown_as_it_is_in_a_time_field(ms: int, shown: str) -> None:
    assert format_time(ms) == shown.strip('"')
    assert format_fields({"ts": ms, "fill": {"fill_ts": ms}}) == f"ts={shown} fill.fill_ts={shown}"


def test_lists_of_mappings_are_json_never_python_reprs() -> None:
    # replay_started's payload, as a replay of the bundled config writes it to events.jsonl, and one
    # file name a person chose with a space and a quote.
    sources: list[dict[str, Any]] = [
        {"symbol": "BTC/USD", "file": "BTC-USD-PERP_1m.csv", "timeframe": "1m"},
        {"symbol": "ETH/BTC", "file": 'my "eth" 1m.csv', "timeframe": "1m", "shift_days": 1442, "weight": 0.30000000000000004, "live": None},
    ]
    line = format_fields({"sources": sources, "take_profit": [[46793.96199999999, 0.05, False]], "symbols": ["BTC/USD", "ETH/BTC"]})
    assert line == (
        'sources=[{"symbol":"BTC/USD","file":"BTC-USD-PERP_1m.csv","timeframe":"1m"},'
        '{"symbol":"ETH/BTC","file":"my \\"eth\\" 1m.csv","timeframe":"1m","shift_days":1442,"weight":0.3,"live":null}] '
        'take_profit=[[46793.962,0.05,false]] symbols=["BTC/USD","ETH/BTC"]'
    )
    value = line.split(" take_profit=")[0].removeprefix("sources=")
    assert json.loads(value) == [sources[0], {**sources[1], "weight": 0.3}]
    assert "{'" not in line


def test_a_price_for_a_table_groups_thousands_and_never_takes_an_exponent() -> None:
    assert format_price(38525.5, group=True) == "38,525.5"
    assert format_price(0.0000025, group=True) == "0.0000025"
    assert format_price(0.00000001, group=True) == "0.00000001"  # one satoshi
