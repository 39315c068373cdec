"""The report page never puts two currencies on one axis: one all-strategies chart per quote currency, amounts in each account's scale."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import orjson

from bot.report.build import write_report
from bot.report.rundata import load_run


def _figure(html: str, element: str) -> dict[str, Any]:
    figure: dict[str, Any] = orjson.loads(html.split(f'data-for="{element}">')[1].split("</script>")[0])
    return figure


def test_each_currency_gets_its_own_equity_chart_and_axis(two_currency_dir: Path, tmp_path: Path) -> None:
    html = write_report(two_currency_dir, tmp_path / "page.html").read_text(encoding="utf-8")
    overlays = re.findall(r'id="(overlay-\d+)" data-kind="overlay" data-currency="(\w+)"', html)
    assert overlays == [("overlay-0", "USD"), ("overlay-1", "BTC")]
    usd, btc = _figure(html, "overlay-0"), _figure(html, "overlay-1")
    assert [t["name"] for t in usd["data"]] == ["ema_cross"] and usd["layout"]["yaxis"]["title"]["text"] == "equity (USD)"
    assert [t["name"] for t in btc["data"]] == ["pairs_arbitrage"] and btc["layout"]["yaxis"]["title"]["text"] == "equity (BTC)"
    # 10 BTC moving by thousandths: the curve keeps its digits instead of a staircase of cents.
    assert len(set(btc["data"][0]["y"])) > 10 * len({round(y, 2) for y in btc["data"][0]["y"]})
    assert _figure(html, "equity-1")["layout"]["yaxis"]["title"]["text"] == "equity (BTC)"


def test_amounts_are_shown_in_each_accounts_scale(two_currency_dir: Path, tmp_path: Path) -> None:
    html = write_report(two_currency_dir, tmp_path / "page.html").read_text(encoding="utf-8")
    facts = json.loads((two_currency_dir / "report.json").read_text())["strategies"]
    pairs, ema = facts["pairs_arbitrage"], facts["ema_cross"]
    row = html.split('<a href="#s-pairs_arbitrage">')[1].split("</tr>")[0]
    assert "<td class=text>BTC</td>" in row and f"<td>{pairs['final_equity']:,.4f}</td>" in row
    row = html.split('<a href="#s-ema_cross">')[1].split("</tr>")[0]
    assert "<td class=text>USD</td>" in row and f"<td>{ema['final_equity']:,.2f}</td>" in row
    section = html.split('id="s-pairs_arbitrage"')[1]
    assert f"<dt>fees</dt><dd>{pairs['fees']:,.4f}</dd>" in section
    # Prices of ETH/BTC are not rounded to 0.09: eight significant digits.
    first_trade = section.split('<table class="trades">')[1].split("<tbody>")[1].split("</tr>")[0]
    assert re.search(r"<td>0\.0\d{6,}</td>", first_trade), first_trade


def test_a_report_json_without_currencies_takes_each_symbols_quote(two_currency_dir: Path, tmp_path: Path) -> None:
    """A run folder written before report.json named currencies: the page still groups by the symbol's quote."""
    run = tmp_path / "run"
    shutil.copytree(two_currency_dir, run, ignore=shutil.ignore_patterns("events.jsonl", "report.html"))
    report = json.loads((run / "report.json").read_text())
    for facts in report["strategies"].values():
        del facts["currency"]
    (run / "report.json").write_text(json.dumps(report))
    assert {sid: s.facts.currency for sid, s in load_run(run).strategies.items()} == {"ema_cross": "USD", "pairs_arbitrage": "BTC"}
    html = write_report(run).read_text(encoding="utf-8")
    assert re.findall(r'data-kind="overlay" data-currency="(\w+)"', html) == ["USD", "BTC"]
