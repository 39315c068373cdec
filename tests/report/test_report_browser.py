"""The HTML report rendered in headless Chromium: no errors, no network, one equity curve per strategy."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.report.build import write_report
from tests.browser import chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium driven by Playwright."""
    with chromium() as instance:
        yield instance


def test_the_report_renders_without_errors_and_with_one_equity_curve_per_strategy(browser: Any, replay_dir: Path, tmp_path: Path) -> None:
    page_file = write_report(replay_dir, tmp_path / "report.html")
    page = browser.new_page()
    problems: list[str] = []
    remote: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda message: problems.append(f"console {message.type}: {message.text}") if message.type in ("error", "warning") else None)
    page.on("request", lambda request: remote.append(request.url) if not request.url.startswith(("file:", "data:", "blob:")) else None)
    page.goto(page_file.as_uri(), wait_until="load")
    # The drawing script is inline, so every chart has been drawn (or has failed) once "load" fired.
    charts = page.evaluate("() => document.querySelectorAll('.chart').length")
    plots = page.evaluate(
        """() => [...document.querySelectorAll('.js-plotly-plot')].map(el => ({
            kind: el.dataset.kind, strategy: el.dataset.strategy || null,
            traces: el.data.map(t => ({name: t.name, points: t.y.length})),
            drawn: el.querySelectorAll('.scatterlayer .trace').length}))"""
    )
    sections = page.evaluate("() => [...document.querySelectorAll('section.strategy')].map(s => s.dataset.strategy)")
    page.close()
    assert problems == []
    assert remote == []
    assert len(plots) == charts == 1 + 2 * 3
    assert sections == ["ema_cross", "rsi_reversion", "trail"]
    equity = [p for p in plots if p["kind"] == "equity"]
    # Exactly one equity chart per strategy, each drawing exactly one curve: its own.
    assert [p["strategy"] for p in equity] == sections
    assert all(len(p["traces"]) == 1 and p["traces"][0]["name"] == p["strategy"] and p["drawn"] == 1 for p in equity), equity
    assert all(p["traces"][0]["points"] == 201 for p in equity)  # 200 hours sampled, plus the start
    drawdown = [p for p in plots if p["kind"] == "drawdown"]
    assert [p["strategy"] for p in drawdown] == sections and all(len(p["traces"]) == 1 for p in drawdown)
    (overlay,) = [p for p in plots if p["kind"] == "overlay"]
    assert [t["name"] for t in overlay["traces"]] == sections and overlay["drawn"] == 3


def test_each_currency_is_drawn_on_its_own_chart_and_axis(browser: Any, two_currency_dir: Path, tmp_path: Path) -> None:
    """USD and BTC strategies: two all-strategies charts, each drawing only its currency's curves on an axis named after it."""
    page_file = write_report(two_currency_dir, tmp_path / "report.html")
    page = browser.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda message: problems.append(f"console {message.type}: {message.text}") if message.type in ("error", "warning") else None)
    page.goto(page_file.as_uri(), wait_until="load")
    overlays = page.evaluate(
        """() => [...document.querySelectorAll('.js-plotly-plot[data-kind="overlay"]')].map(el => ({
            currency: el.dataset.currency, axis: el.layout.yaxis.title.text,
            traces: el.data.map(t => t.name), drawn: el.querySelectorAll('.scatterlayer .trace').length,
            range: el._fullLayout.yaxis.range}))"""
    )
    page.close()
    assert problems == []
    assert [(o["currency"], o["axis"], o["traces"], o["drawn"]) for o in overlays] == [
        ("USD", "equity (USD)", ["ema_cross"], 1),
        ("BTC", "equity (BTC)", ["pairs_arbitrage"], 1),
    ]
    # Each axis spans its own money: thousands of USD, about 10 BTC (not a flat line at 0 on the USD axis).
    usd, btc = (o["range"] for o in overlays)
    assert usd[0] > 8_000 and 9 < btc[0] < btc[1] < 11
