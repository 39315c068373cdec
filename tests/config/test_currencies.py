"""Money is never added across currencies, checked by the real `bot validate`: a strategy's symbols share one
quote currency, and the global risk limits are written per currency once strategies span several."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.config.currency import UNQUOTED, quote_currency
from bot.config.loader import load_config
from tests.cli.test_cli import error_lines, run_bot
from tests.config.builders import valid_strategy, write_setup
from tests.support import BTC_1M, ETH_1M, REPO, SHARED_DATA

XMR_1M = SHARED_DATA / "XMR-BTC_1m.csv"
CANDLES = {
    "BTC/USD": {"path": str(BTC_1M)},
    "ETH/BTC": {"path": str(ETH_1M), "shift_days": 1442},
    "XMR/BTC": {"path": str(XMR_1M), "shift_days": 1442},
}


def pairs(symbol: str, second: str) -> dict[str, Any]:
    """A pairs_arbitrage strategy file trading `symbol` against `second`."""
    return {
        "id": "pairs",
        "module": "pairs_arbitrage",
        "symbol": symbol,
        "timeframe": "5m",
        "quantity": 1.0,
        "starting_balance": 10.0,
        "params": {"second_symbol": second},
        "risk": {"max_open_positions": 2},
    }


def setup(root: Path, strategies: dict[str, Any], risk: dict[str, Any] | None = None) -> Path:
    """config.json (the repository's strategy modules, the bundled candles, `risk`) and its strategy files."""
    config: dict[str, Any] = {"strategy_paths": [str(REPO / "strategies")], "replay": {"candles": CANDLES}}
    if risk is not None:
        config["risk"] = risk
    return write_setup(root, strategies, config)


@pytest.mark.parametrize(
    ("symbol", "currency"),
    [("BTC/USD", "USD"), ("ETH/BTC", "BTC"), ("BTC/USDT:USDT", "USDT"), ("BTC/USD:BTC-240927-60000-C", "USD"), ("ETHBTC", UNQUOTED), ("BTCUSD", UNQUOTED)],
)
def test_the_currency_of_a_symbol_is_its_quote_never_its_settle_part(symbol: str, currency: str) -> None:
    assert quote_currency(symbol) == currency


def test_validate_refuses_a_strategy_whose_symbols_have_different_quote_currencies(tmp_path: Path) -> None:
    """ETH/BTC against BTC/USD is refused with file, field and reason; ETH/BTC against XMR/BTC (both BTC) is fine."""
    setup(tmp_path, {"pairs.json": pairs("ETH/BTC", "BTC/USD")})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        "error: strategies/pairs.json: params.second_symbol: 'BTC/USD' is quoted in USD, but the strategy trades 'ETH/BTC', "
        "quoted in BTC: a strategy's symbols must share one quote currency, since its balance, PnL and risk are counted in it"
    ]
    setup(tmp_path, {"pairs.json": pairs("ETH/BTC", "XMR/BTC")})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("config.json: OK (1 strategies, 1 enabled;")


def test_the_settle_part_of_a_derivative_is_not_its_quote_currency(tmp_path: Path) -> None:
    """BTC/USDT:USDT is quoted in USDT: beside XRP/USDT it loads, beside XRP/USD it is refused, naming USDT."""
    assert load_config(setup(tmp_path, {"pairs.json": pairs("BTC/USDT:USDT", "XRP/USDT")})).strategies[0].symbol == "BTC/USDT:USDT"
    setup(tmp_path, {"pairs.json": pairs("BTC/USDT:USDT", "XRP/USD")})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2
    [line] = error_lines(result.stderr)
    assert line.startswith("error: strategies/pairs.json: params.second_symbol: 'XRP/USD' is quoted in USD, but the strategy trades 'BTC/USDT:USDT', quoted in USDT:")


def test_validate_refuses_a_plain_number_limit_when_strategies_span_currencies_and_says_how_to_write_it(tmp_path: Path) -> None:
    strategies = {"usd.json": valid_strategy(id="usd"), "pairs.json": pairs("ETH/BTC", "XMR/BTC")}
    setup(tmp_path, strategies, {"max_total_exposure": 50_000, "max_daily_loss": 1500})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2
    how = (
        "a plain number holds for one currency, but the strategies trade in USD, BTC: money is never added across currencies, "
        'so write the limit per currency: {"USD": <amount>, "BTC": <amount>}'
    )
    assert error_lines(result.stderr) == [
        f"error: config.json: risk.max_total_exposure: {how}",
        f"error: config.json: risk.max_daily_loss: {how}",
    ]
    # Backward compatible: the same plain numbers while every strategy trades in one currency.
    strategies = {"a.json": pairs("ETH/BTC", "XMR/BTC"), "b.json": {**pairs("XMR/BTC", "ETH/BTC"), "id": "pairs_b"}}
    setup(tmp_path, strategies, {"max_total_exposure": 1, "max_daily_loss": 0.25})
    assert run_bot("validate", "--config", "config.json", cwd=tmp_path).returncode == 0


def test_validate_accepts_limits_per_currency_and_refuses_one_that_leaves_a_currency_out(tmp_path: Path) -> None:
    strategies = {"usd.json": valid_strategy(id="usd"), "pairs.json": pairs("ETH/BTC", "XMR/BTC")}
    path = setup(tmp_path, strategies, {"max_total_exposure": {"USD": 50_000, "BTC": 1}, "max_daily_loss": {"USD": 1500, "BTC": None}})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    risk = load_config(path).bot.risk
    assert (risk.max_total_exposure, risk.max_daily_loss) == ({"USD": 50_000.0, "BTC": 1.0}, {"USD": 1500.0, "BTC": None})

    setup(tmp_path, strategies, {"max_daily_loss": {"USD": 1500}})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        'error: config.json: risk.max_daily_loss: no limit for BTC: add "BTC": <amount> (or "BTC": null for no limit in BTC); '
        "strategies trading in BTC: 'pairs' (ETH/BTC, strategies/pairs.json)"
    ]


def test_a_disabled_strategy_counts_too_since_it_can_be_activated_at_runtime(tmp_path: Path) -> None:
    strategies = {"usd.json": valid_strategy(id="usd"), "pairs.json": pairs("ETH/BTC", "XMR/BTC")}
    path = setup(tmp_path, strategies, {"max_daily_loss": 1500})
    data = path.read_text().replace('{"file": "strategies/pairs.json"}', '{"file": "strategies/pairs.json", "enabled": false}')
    path.write_text(data)
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2
    [line] = error_lines(result.stderr)
    assert line.startswith("error: config.json: risk.max_daily_loss: a plain number holds for one currency, but the strategies trade in USD, BTC")


@pytest.mark.parametrize(
    ("limit", "field", "reason"),
    [
        ({"USD": "1500"}, "risk.max_daily_loss.USD", "a string is not a number"),
        ({"USD": -5}, "risk.max_daily_loss.USD", "Input should be greater than 0"),
        ({"US D": 5}, "risk.max_daily_loss.US D", "not a currency code: letters, digits, '.', '_' or '-', such as USD or BTC (at most 32 characters)"),
        ([1500], "risk.max_daily_loss", 'a number, or an object with one amount per quote currency such as {"USD": 1500, "BTC": 0.05}'),
    ],
)
def test_a_bad_limit_names_the_field_and_the_reason(tmp_path: Path, limit: Any, field: str, reason: str) -> None:
    setup(tmp_path, {"usd.json": valid_strategy(id="usd")}, {"max_daily_loss": limit})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [f"error: config.json: {field}: {reason}"]


# -- symbols not written BASE/QUOTE ---------------------------------------------------------------------

UNIFIED_AND_NOT = {"BTCUSD": {"path": str(BTC_1M)}, "ETHUSD": {"path": str(BTC_1M)}, "BTC/USD": {"path": str(BTC_1M)}}


def test_strategies_on_symbols_without_a_quote_validate_as_before_with_one_plain_number(tmp_path: Path) -> None:
    """BTCUSD and ETHUSD have no known quote: they share one currency, so max_daily_loss 500 (and an exposure
    cap) still holds for both together, as it did before limits were kept per currency."""
    strategies = {"a.json": valid_strategy(id="a", symbol="BTCUSD"), "b.json": valid_strategy(id="b", symbol="ETHUSD")}
    config = {"replay": {"candles": UNIFIED_AND_NOT}, "risk": {"max_daily_loss": 500, "max_total_exposure": 20_000}}
    path = write_setup(tmp_path, strategies, config)
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("config.json: OK (2 strategies, 2 enabled;"), result.stdout
    assert load_config(path).bot.risk.max_daily_loss == 500.0


def test_a_plain_number_across_a_quoted_symbol_and_one_without_a_quote_is_refused_saying_what_to_write(tmp_path: Path) -> None:
    """BTC/USD counts in USD, BTCUSD in no known currency: a plain number would add them, so it is refused (never
    silently split), and so is a limit per currency, which cannot name BTCUSD's currency."""
    strategies = {"usd.json": valid_strategy(id="usd"), "odd.json": valid_strategy(id="odd", symbol="BTCUSD")}
    write_setup(tmp_path, strategies, {"replay": {"candles": UNIFIED_AND_NOT}, "risk": {"max_daily_loss": 500}})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        "error: config.json: risk.max_daily_loss: a plain number holds for one currency, but the strategies trade in USD and in "
        "no known currency (symbols not written BASE/QUOTE): money is never added across currencies, so write every symbol as "
        'BASE/QUOTE, then the limit per currency: {"USD": <amount>, ...}'
    ]
    write_setup(tmp_path, strategies, {"replay": {"candles": UNIFIED_AND_NOT}, "risk": {"max_daily_loss": {"USD": 500}}})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        "error: config.json: risk.max_daily_loss: a limit per currency cannot name the currency of a symbol not written BASE/QUOTE: "
        "write the symbol as BASE/QUOTE (or give a plain number, which holds while every strategy's symbol is written without '/'); "
        "strategies on such symbols: 'odd' (BTCUSD, strategies/odd.json)"
    ]


def test_a_strategy_reading_a_symbol_without_a_quote_beside_a_quoted_one_is_refused_naming_both(tmp_path: Path) -> None:
    candles = {**CANDLES, "ETHBTC": {"path": str(ETH_1M), "shift_days": 1442}}
    write_setup(tmp_path, {"pairs.json": pairs("ETH/BTC", "ETHBTC")}, {"strategy_paths": [str(REPO / "strategies")], "replay": {"candles": candles}})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        "error: strategies/pairs.json: params.second_symbol: 'ETHBTC' is quoted in no known currency (symbols not written BASE/QUOTE), "
        "but the strategy trades 'ETH/BTC', quoted in BTC: a strategy's symbols must share one quote currency, since its balance, "
        "PnL and risk are counted in it"
    ]


def test_a_limit_keyed_by_a_lower_case_code_says_codes_are_case_sensitive(tmp_path: Path) -> None:
    setup(tmp_path, {"usd.json": valid_strategy(id="usd"), "pairs.json": pairs("ETH/BTC", "XMR/BTC")}, {"max_daily_loss": {"usd": 500, "BTC": 1}})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        'error: config.json: risk.max_daily_loss: no limit for USD: add "USD": <amount> (or "USD": null for no limit in USD); '
        'currency codes are case-sensitive, as the symbols write them (USD, BTC): "usd" is not "USD"; '
        "strategies trading in USD: 'usd' (BTC/USD, strategies/usd.json)"
    ]
