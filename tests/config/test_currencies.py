"""Money is never added across currencies, checked by the real `bot validate`: a strategy's symbols share one
quote currency, and the global risk limits are written per currency once strategies span several."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from bot.config.currency import quote_currency
from bot.strategy.config_load import changed_strategy, load_config
from tests.cli.test_cli import error_lines, run_bot
from tests.config.builders import valid_strategy, write_setup
from tests.support import BTC_1M, ETH_1M, REPO, SHARED_DATA, Rig, module_strategy, repo_catalog

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
    [("BTC/USD", "USD"), ("ETH/BTC", "BTC"), ("BTC/USDT:USDT", "USDT"), ("BTC/USD:BTC-240927-60000-C", "USD"), ("ETHBTC", "ETHBTC"), ("BTCUSD", "BTCUSD")],
)
def test_the_currency_of_a_symbol_is_its_quote_never_its_settle_part(symbol: str, currency: str) -> None:
    assert quote_currency(symbol) == currency


def test_validate_refuses_a_strategy_whose_symbols_have_different_quote_currencies(tmp_path: Path) -> None:
    """ETH/BTC against BTC/USD is refused with file, field and reason; ETH/BTC against XMR/BTC (both BTC) is fine."""
    setup(tmp_path, {"pairs.json": pairs("ETH/BTC", "BTC/USD")})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        ("error: strategies/pairs.json: params.second_symbol: 'BTC/USD' is quoted in USD, but the strategy trades 'ETH/BTC', "
        "quoted in BTC: a strategy's symbols must share one quote currency, since its balance, PnL and risk are counted in it")
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
        ('error: config.json: risk.max_daily_loss: no limit for BTC: add "BTC": <amount> (or "BTC": null for no limit in BTC); '
        "strategies trading in BTC: 'pairs' (ETH/BTC, strategies/pairs.json)")
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

UNIFIED_AND_NOT = {"BTCUSD": {"path": str(BTC_1M)}, "ETHUSD": {"path": str(BTC_1M)}, "BTC/USD": {"path": str(BTC_1M)}, "ETH/USD": {"path": str(BTC_1M)}}
BTCUSD_AND_ETHBTC = {"BTCUSD": {"path": str(BTC_1M)}, "ETHBTC": {"path": str(ETH_1M), "shift_days": 1442}}


def btcusd_and_ethbtc(root: Path, risk: dict[str, Any] | None = None) -> Path:
    """A 10,000 USD account on BTCUSD and a 10 BTC account on ETHBTC, neither symbol written BASE/QUOTE."""
    strategies = {
        "btc.json": valid_strategy(id="btc", symbol="BTCUSD", timeframe="5m", quantity=0.1, starting_balance=10_000),
        "eth.json": valid_strategy(id="eth", symbol="ETHBTC", timeframe="5m", quantity=1.0, starting_balance=10),
    }
    return write_setup(root, strategies, {"replay": {"candles": BTCUSD_AND_ETHBTC}, **({"risk": risk} if risk else {})})


def test_a_plain_limit_across_two_symbols_without_a_quote_is_refused_saying_to_write_them_base_quote_first(tmp_path: Path) -> None:
    """BTCUSD's dollars and ETHBTC's bitcoins: each symbol is a currency group of its own, so a plain number, which
    would add them, is refused; the message says to write the symbols BASE/QUOTE first, or to give the limit per group."""
    btcusd_and_ethbtc(tmp_path, {"max_daily_loss": 500, "max_total_exposure": 20_000})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2
    how = (
        "a plain number holds for one currency, but the strategies trade in BTCUSD (quote unknown), ETHBTC (quote unknown): "
        "money is never added across currencies, and a symbol not written BASE/QUOTE has no known quote currency, so it counts "
        "on its own; write 'BTCUSD' and 'ETHBTC' as BASE/QUOTE (preferred: a plain number then holds while every strategy trades "
        'in one quote currency), or give the limit per currency group: {"BTCUSD": <amount>, "ETHBTC": <amount>}'
    )
    assert error_lines(result.stderr) == [f"error: config.json: risk.max_total_exposure: {how}", f"error: config.json: risk.max_daily_loss: {how}"]
    # Either way validates: per currency group ...
    path = btcusd_and_ethbtc(tmp_path, {"max_daily_loss": {"BTCUSD": 500, "ETHBTC": 0.5}})
    assert run_bot("validate", "--config", "config.json", cwd=tmp_path).returncode == 0
    assert load_config(path).bot.risk.max_daily_loss == {"BTCUSD": 500.0, "ETHBTC": 0.5}
    # ... or, preferred, BASE/QUOTE: BTC/USD and ETH/USD share USD, so one plain number holds for both.
    strategies = {"a.json": valid_strategy(id="a", symbol="BTC/USD"), "b.json": valid_strategy(id="b", symbol="ETH/USD")}
    write_setup(tmp_path, strategies, {"replay": {"candles": UNIFIED_AND_NOT}, "risk": {"max_daily_loss": 500}})
    assert run_bot("validate", "--config", "config.json", cwd=tmp_path).returncode == 0


def test_a_replay_of_two_symbols_without_a_quote_totals_each_apart(tmp_path: Path) -> None:
    """The real `bot validate` and `bot replay --report`: without limits BTCUSD and ETHBTC validate, and each is totalled
    on its own (10,000 and 10, never 10,010), labelled as a symbol whose quote is unknown in the table and the charts."""
    btcusd_and_ethbtc(tmp_path)
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    result = run_bot("replay", "--config", "config.json", "--out", "out", "--report", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert {sid: s["currency"] for sid, s in report["strategies"].items()} == {"btc": "BTCUSD", "eth": "ETHBTC"}
    totals = report["totals"]
    assert list(totals) == ["BTCUSD", "ETHBTC"]
    assert (totals["BTCUSD"]["starting_balance"], totals["ETHBTC"]["starting_balance"]) == (10_000, 10)
    assert totals["ETHBTC"]["final_equity"] == report["strategies"]["eth"]["final_equity"]
    rows = {row[0]: row for row in ([c.strip() for c in line.split("│")[1:-1]] for line in result.stdout.splitlines() if line.startswith("│"))}
    assert list(rows) == ["btc", "eth", "TOTAL BTCUSD", "TOTAL ETHBTC"]
    assert [rows[label][2] for label in rows] == ["BTCUSD (quote unknown)", "ETHBTC (quote unknown)"] * 2
    # A 10 BTC account's amounts to four decimals, a 10,000 USD one's to two.
    assert rows["TOTAL ETHBTC"][8] == f"{totals['ETHBTC']['final_equity']:,.4f}"
    assert rows["TOTAL BTCUSD"][8] == f"{totals['BTCUSD']['final_equity']:,.2f}"
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    overlays = [
        orjson.loads(html.split(f'data-for="overlay-{index}">')[1].split("</script>")[0])["layout"] for index in range(2)
    ]
    assert [layout["title"]["text"] for layout in overlays] == [
        "Equity in BTCUSD (quote unknown), all BTCUSD strategies",
        "Equity in ETHBTC (quote unknown), all ETHBTC strategies",
    ]
    assert [layout["yaxis"]["title"]["text"] for layout in overlays] == ["equity (BTCUSD quote, unknown)", "equity (ETHBTC quote, unknown)"]
    assert "<td class=text>ETHBTC (quote unknown)</td>" in html


def test_a_plain_number_across_a_quoted_symbol_and_one_without_a_quote_is_refused_saying_what_to_write(tmp_path: Path) -> None:
    """BTC/USD counts in USD, BTCUSD on its own: a plain number would add them, so it is refused (never silently
    split); a limit per currency must name BTCUSD's group too, or BTCUSD be written BASE/QUOTE."""
    strategies = {"usd.json": valid_strategy(id="usd"), "odd.json": valid_strategy(id="odd", symbol="BTCUSD")}
    write_setup(tmp_path, strategies, {"replay": {"candles": UNIFIED_AND_NOT}, "risk": {"max_daily_loss": 500}})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        ("error: config.json: risk.max_daily_loss: a plain number holds for one currency, but the strategies trade in USD, "
        "BTCUSD (quote unknown): money is never added across currencies, and a symbol not written BASE/QUOTE has no known "
        "quote currency, so it counts on its own; write 'BTCUSD' as BASE/QUOTE (preferred: a plain number then holds while "
        'every strategy trades in one quote currency), or give the limit per currency group: {"USD": <amount>, "BTCUSD": <amount>}')
    ]
    write_setup(tmp_path, strategies, {"replay": {"candles": UNIFIED_AND_NOT}, "risk": {"max_daily_loss": {"USD": 500}}})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        ("error: config.json: risk.max_daily_loss: no limit for 'BTCUSD', which is not written BASE/QUOTE, so its quote currency "
        'is unknown: write it as BASE/QUOTE (preferred), then give the limit of its quote currency; or add "BTCUSD": <amount>, '
        "a limit of its own (or \"BTCUSD\": null for none); strategies on BTCUSD: 'odd' (BTCUSD, strategies/odd.json)")
    ]
    write_setup(tmp_path, strategies, {"replay": {"candles": UNIFIED_AND_NOT}, "risk": {"max_daily_loss": {"USD": 500, "BTCUSD": 100}}})
    assert run_bot("validate", "--config", "config.json", cwd=tmp_path).returncode == 0


def test_strategies_on_one_symbol_without_a_quote_share_its_group_and_a_plain_number(tmp_path: Path) -> None:
    strategies = {"a.json": valid_strategy(id="a", symbol="BTCUSD"), "b.json": valid_strategy(id="b", symbol="BTCUSD")}
    path = write_setup(tmp_path, strategies, {"replay": {"candles": UNIFIED_AND_NOT}, "risk": {"max_daily_loss": 500}})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert load_config(path).bot.risk.max_daily_loss == 500.0


def test_a_symbol_without_a_quote_named_like_another_symbols_quote_is_refused(tmp_path: Path) -> None:
    """A symbol USD (no '/') is a group of its own named USD, as is BTC/USD's quote: their money would be added."""
    strategies = {"usd.json": valid_strategy(id="usd"), "odd.json": valid_strategy(id="odd", symbol="USD")}
    write_setup(tmp_path, strategies, {"replay": {"candles": {**UNIFIED_AND_NOT, "USD": {"path": str(BTC_1M)}}}})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        ("error: strategies/odd.json: symbol: 'USD' is not written BASE/QUOTE, so it is a currency group of its own, named USD, "
        "which is also the quote currency of 'BTC/USD': their money would be added; write 'USD' as BASE/QUOTE")
    ]


def test_a_strategy_reading_a_symbol_without_a_quote_beside_a_quoted_one_is_refused_naming_both(tmp_path: Path) -> None:
    candles = {**CANDLES, "ETHBTC": {"path": str(ETH_1M), "shift_days": 1442}}
    write_setup(tmp_path, {"pairs.json": pairs("ETH/BTC", "ETHBTC")}, {"strategy_paths": [str(REPO / "strategies")], "replay": {"candles": candles}})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        ("error: strategies/pairs.json: params.second_symbol: 'ETHBTC' is not written BASE/QUOTE, so its quote currency is unknown, "
        "but the strategy trades 'ETH/BTC', quoted in BTC: a strategy's symbols must share one quote currency, since its balance, "
        "PnL and risk are counted in it; write 'ETHBTC' as BASE/QUOTE")
    ]


def test_a_pair_of_two_symbols_without_a_quote_is_refused(tmp_path: Path) -> None:
    """ETHBTC and XMRBTC may both be quoted in BTC, or not: nothing says so, so their money is not added."""
    candles = {"ETHBTC": {"path": str(ETH_1M), "shift_days": 1442}, "XMRBTC": {"path": str(XMR_1M), "shift_days": 1442}}
    write_setup(tmp_path, {"pairs.json": pairs("ETHBTC", "XMRBTC")}, {"strategy_paths": [str(REPO / "strategies")], "replay": {"candles": candles}})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        ("error: strategies/pairs.json: params.second_symbol: 'XMRBTC' and 'ETHBTC', which the strategy trades, are not written "
        "BASE/QUOTE, so their quote currencies are unknown and may differ: a strategy's symbols must share one quote currency, "
        "since its balance, PnL and risk are counted in it; write both as BASE/QUOTE")
    ]


def test_a_limit_keyed_by_a_lower_case_code_says_codes_are_case_sensitive(tmp_path: Path) -> None:
    setup(tmp_path, {"usd.json": valid_strategy(id="usd"), "pairs.json": pairs("ETH/BTC", "XMR/BTC")}, {"max_daily_loss": {"usd": 500, "BTC": 1}})
    result = run_bot("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        ('error: config.json: risk.max_daily_loss: no limit for USD: add "USD": <amount> (or "USD": null for no limit in USD); '
        'currency codes are case-sensitive, as the symbols write them (USD, BTC): "usd" is not "USD"; '
        "strategies trading in USD: 'usd' (BTC/USD, strategies/usd.json)")
    ]


@pytest.mark.parametrize(
    ("symbol", "second", "why"),
    [
        ("ETHBTC", "LTCBTC", "'LTCBTC' and 'ETHBTC', which the strategy trades, are not written BASE/QUOTE, so their quote currencies are unknown"),
        ("ETH/BTC", "LTCBTC", "'LTCBTC' is not written BASE/QUOTE, so its quote currency is unknown, but the strategy trades 'ETH/BTC', quoted in BTC"),
    ],
)
def test_set_cannot_make_a_pair_read_a_second_symbol_without_a_quote(symbol: str, second: str, why: str) -> None:
    """As `bot validate` refuses it in a file, a running pair may not be changed to read a symbol whose quote is unknown."""
    first = "XMRBTC" if symbol == "ETHBTC" else "XMR/BTC"
    rig = Rig(feeds={symbol: "1m", first: "1m", second: "1m"}, catalog=repo_catalog())
    params = {"second_symbol": first, "window": 100, "entry_z": 2.0, "exit_z": 0.5, "stop_z": 4.0, "max_hold_bars": 288}
    rig.start(
        module_strategy("pairs_arbitrage", symbol=symbol, timeframe="5m", quantity=1.0, starting_balance=10.0, risk={"max_open_positions": 2}, params=params)
    )
    spec = changed_strategy(rig.manager.get("pairs_arbitrage").spec, {"params": {"second_symbol": second}}, rig.factory.catalog, "pairs_arbitrage")
    with pytest.raises(ValueError) as refused:
        rig.manager.reconfigure("pairs_arbitrage", spec)
    assert str(refused.value).startswith(why), refused.value
    assert rig.routed_to(first, "5m") == ["pairs_arbitrage"]
