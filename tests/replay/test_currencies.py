"""Money is never added across currencies, in real replays: report.json totals and the terminal table per
quote currency, one equity chart per currency, and global risk limits that hold per currency."""
from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from bot.event_codec import event_lines
from bot.kernel.replay import build_replay
from bot.replay.sources import resolve_sources
from bot.strategy.config_load import load_config
from tests.cli.test_cli import run_bot
from tests.support import ETH_1M, REPO

USD_STRATEGIES = ["ema_cross", "momentum", "mean_reversion", "trend_mtf", "scalping", "hybrid"]
ADDITIVE = ("trades", "wins", "realised_pnl", "fees", "net_pnl", "unrealised_pnl", "starting_balance", "final_equity")


@dataclass(frozen=True)
class BundledRun:
    """`bot replay --report` of the repository's config.replay.json, as a new user runs it."""

    out: Path
    stdout: str
    report: dict[str, Any]
    html: str


@pytest.fixture(scope="module")
def bundled(tmp_path_factory: pytest.TempPathFactory) -> BundledRun:
    out = tmp_path_factory.mktemp("bundled") / "out"
    result = run_bot("replay", "--config", "config.replay.json", "--out", out, "--report", cwd=REPO)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    return BundledRun(out, result.stdout, report, (out / "report.html").read_text(encoding="utf-8"))


def test_report_json_totals_are_keyed_by_currency_and_add_only_like_money(bundled: BundledRun) -> None:
    strategies = bundled.report["strategies"]
    assert {sid: s["currency"] for sid, s in strategies.items()} == {**{sid: "USD" for sid in USD_STRATEGIES}, "pairs_arbitrage": "BTC"}
    totals = bundled.report["totals"]
    assert list(totals) == ["USD", "BTC"]
    for currency, members in (("USD", USD_STRATEGIES), ("BTC", ["pairs_arbitrage"])):
        for key in ADDITIVE:
            assert totals[currency][key] == pytest.approx(sum(strategies[sid][key] for sid in members), rel=1e-12), (currency, key)
        assert totals[currency]["strategies"] == len(members) and totals[currency]["failed"] == 0
        start, equity = totals[currency]["starting_balance"], totals[currency]["final_equity"]
        assert totals[currency]["return_pct"] == pytest.approx(100 * (equity - start) / start, rel=1e-12)
    # Six accounts of 10,000 USD, one of 10 BTC: never the 60,010 of adding them.
    assert (totals["USD"]["starting_balance"], totals["BTC"]["starting_balance"]) == (60_000.0, 10.0)
    assert totals["BTC"]["final_equity"] == strategies["pairs_arbitrage"]["final_equity"]


def test_the_summary_table_prints_one_total_row_per_currency(bundled: BundledRun) -> None:
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in bundled.stdout.splitlines() if line.startswith("│")]
    by_label = {row[0]: row for row in rows}
    assert [row[0] for row in rows] == [*USD_STRATEGIES, "pairs_arbitrage", "TOTAL USD", "TOTAL BTC"]
    totals = bundled.report["totals"]
    usd, btc = by_label["TOTAL USD"], by_label["TOTAL BTC"]
    assert usd[2] == "USD" and usd[3] == str(totals["USD"]["trades"]) and usd[8] == f"{totals['USD']['final_equity']:,.2f}"
    # BTC amounts of a 10 BTC account to four decimals, so its fees do not print as 0.01.
    assert btc[2] == "BTC" and btc[3] == "120" and btc[6] == f"{totals['BTC']['fees']:,.4f}" and btc[8] == f"{totals['BTC']['final_equity']:,.4f}"
    assert by_label["pairs_arbitrage"][2] == "BTC" and by_label["scalping"][2] == "USD"


def test_the_report_page_draws_one_equity_chart_per_currency(bundled: BundledRun) -> None:
    charts = re.findall(r'<div class="chart" id="(overlay-\d+)" data-kind="overlay" data-currency="(\w+)"></div>', bundled.html)
    assert charts == [("overlay-0", "USD"), ("overlay-1", "BTC")]
    for element, currency in charts:
        figure = orjson.loads(bundled.html.split(f'data-for="{element}">')[1].split("</script>")[0])
        names = [trace["name"] for trace in figure["data"]]
        assert names == (USD_STRATEGIES if currency == "USD" else ["pairs_arbitrage"])
        assert figure["layout"]["yaxis"]["title"]["text"] == f"equity ({currency})"
    # The BTC curve keeps the digits of a 10 BTC account (it moves by thousandths).
    btc = orjson.loads(bundled.html.split('data-for="overlay-1">')[1].split("</script>")[0])
    assert len({round(y, 2) for y in btc["data"][0]["y"]}) < len(set(btc["data"][0]["y"]))


# -- global risk per currency, in a replay ------------------------------------------------------------------

USD_CROSS = {
    "id": "usd_cross",
    "symbol": "BTC/USD",
    "timeframe": "5m",
    "quantity": 0.001,
    "analyzers": [{"type": "ema_cross", "params": {"fast": 5, "slow": 13}}],
    "fees": {"taker_bps": 5},
}
# 100,000 ETH a trade: its notional (about 8,000 BTC) and its daily losses (hundreds of BTC) are large numbers,
# far above the USD limits below, which they would trip if BTC were added to USD.
BTC_CROSS = {**USD_CROSS, "id": "btc_cross", "symbol": "ETH/BTC", "quantity": 100_000, "starting_balance": 1_000_000}
USD_LIMITS = {"max_total_exposure": {"USD": 100, "BTC": None}, "max_daily_loss": {"USD": 50, "BTC": None}}


def _replay(root: Path, btc_file: Path, strategies: list[dict[str, Any]], risk: dict[str, Any]) -> Path:
    candles = {"BTC/USD": {"path": str(btc_file)}, "ETH/BTC": {"path": str(ETH_1M), "shift_days": 1442}}
    root.mkdir()
    for spec in strategies:
        (root / f"{spec['id']}.json").write_text(json.dumps(spec))
    config = {"replay": {"candles": candles}, "risk": risk, "strategies": [{"file": f"{s['id']}.json"} for s in strategies]}
    (root / "config.json").write_text(json.dumps(config))
    loaded = load_config(root / "config.json")
    sources, problems = resolve_sources(loaded)
    assert not problems
    anyio.run(build_replay(loaded, sources, root / "out").run)
    return root / "out"


def _events(out: Path, type_: str) -> list[dict[str, Any]]:
    return [event for event in map(orjson.loads, event_lines((out / "events.jsonl").read_bytes())) if event["type"] == type_]


def _rows(out: Path, name: str, strategy_id: str) -> list[dict[str, str]]:
    with (out / name).open(newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["strategy_id"] == strategy_id]


def test_a_btc_strategys_losses_and_notional_never_count_against_usd_limits(tmp_path: Path, btc_slice_file: Path) -> None:
    """USD limits of 100 notional and 50 a day beside a BTC strategy holding ~8,000 BTC and losing hundreds of BTC a
    day: nothing is refused, the kill switch never trips, and the USD strategy trades exactly as it does alone."""
    both = _replay(tmp_path / "both", btc_slice_file, [USD_CROSS, BTC_CROSS], USD_LIMITS)
    alone = _replay(tmp_path / "alone", btc_slice_file, [USD_CROSS], USD_LIMITS)
    assert _events(both, "kill_switch") == [] and _events(both, "risk_rejected") == []

    btc_trades = _rows(both, "trades.csv", "btc_cross")
    daily: defaultdict[str, float] = defaultdict(float)
    for trade in btc_trades:
        daily[trade["exit_time"][:10]] += float(trade["pnl"])
    assert min(daily.values()) < -50 * 5, daily  # summed with USD, the first such day would have tripped the USD limit
    assert min(float(t["quantity"]) * float(t["entry_price"]) for t in btc_trades) > 100 * 50  # and any entry would break the USD cap

    usd_trades = _rows(both, "trades.csv", "usd_cross")
    assert len(usd_trades) > 50
    assert usd_trades == _rows(alone, "trades.csv", "usd_cross")
    assert _rows(both, "equity.csv", "usd_cross") == _rows(alone, "equity.csv", "usd_cross")
    # The two strategies trade side by side on the same days: the BTC losses fall among the USD trades.
    first_usd = datetime.fromisoformat(usd_trades[0]["exit_time"])
    assert any(datetime.fromisoformat(t["exit_time"]) > first_usd for t in btc_trades)


def test_a_btc_loss_trips_the_btc_limit_and_the_kill_switch_names_its_currency(tmp_path: Path, btc_slice_file: Path) -> None:
    """The BTC daily limit 400 trips on the BTC strategy's losses; then every entry, the USD strategy's too, is held."""
    out = _replay(tmp_path / "run", btc_slice_file, [USD_CROSS, BTC_CROSS], {**USD_LIMITS, "max_daily_loss": {"USD": 50, "BTC": 400}})
    [kill] = _events(out, "kill_switch")
    assert (kill["payload"]["currency"], kill["payload"]["limit"], kill["payload"]["tripped_by"]) == ("BTC", 400.0, "btc_cross")
    assert kill["payload"]["daily_loss"] >= 400
    held = [e for e in _events(out, "risk_rejected") if e["payload"]["rule"] == "kill_switch"]
    assert {e["strategy_id"] for e in held} == {"usd_cross", "btc_cross"}
    assert all(e["ts"] >= kill["ts"] for e in held)
