"""The web view at `GET /` in headless Chromium (Playwright), against a real stepped daemon running config.json's seven strategies.

Every assertion is on data: the rows' data-* attributes, the clock's timestamp, the reply box, and the
arrays each chart was given (`window.botView.charts`), never on pixels. Nothing is waited for by sleeping:
each wait is a condition in the page (`wait_for_function`) or on the control socket.
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.browser import chromium
from tests.daemon.process import DaemonProcess, write_daemon_config
from tests.http.test_api import TOKEN, TOKEN_ENV, TOKEN_REQUIRED, Served, _module_daemon, _port
from tests.support import REPO

# Generous: the aim for a live update is 5 s (printed, never asserted); this only bounds a broken page.
WAIT_MS = 30_000
CONFIG_JSON = REPO / "config.json"


def catalog_config(folder: Path, http: dict[str, Any]) -> Path:
    """A daemon config in `folder` with config.json's strategies, risk, defaults and candle files (the repo's data/), and this `http`."""
    config = orjson.loads(CONFIG_JSON.read_bytes())
    candles = {symbol: {**stream, "path": str(REPO / stream["path"])} for symbol, stream in config["replay"]["candles"].items()}
    return write_daemon_config(
        folder,
        http=http,
        replay={"candles": candles, "history_size": config["replay"]["history_size"]},
        strategies=config["strategies"],
        risk=config["risk"],
        strategy_defaults=config["strategy_defaults"],
    )


def config_json_ids() -> list[str]:
    """The ids of config.json's strategies, in its order (each file's own id)."""
    config = orjson.loads(CONFIG_JSON.read_bytes())
    return [orjson.loads((REPO / ref["file"]).read_bytes())["id"] for ref in config["strategies"]]


@contextmanager
def catalog_daemon(http: dict[str, Any]) -> Iterator[Served]:
    """A stepped daemon on config.json's strategies with this `http` section; stopped (exit 0) after."""
    folder = Path(tempfile.mkdtemp(prefix="web-", dir="/tmp"))
    daemon = DaemonProcess(catalog_config(folder, http), {TOKEN_ENV: TOKEN}, stepped=True)
    try:
        daemon.wait_ready()
        yield Served(daemon, _port(daemon))
    finally:
        code = daemon.stop()
        log = daemon.log.read_text()
        shutil.rmtree(folder, ignore_errors=True)
    assert code == 0, log[-3000:]


def ctl(served: Served, cmd: str, args: dict[str, Any] | None = None) -> Any:
    """The control socket's result, asked from another thread: Playwright's sync API holds an event loop in this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(served.ctl, cmd, args).result()


def _stopped_position(served: Served) -> tuple[str, dict[str, Any]] | None:
    """A strategy holding an open position with a stop, and that position (None while there is none)."""
    for sid, entry in ctl(served, "positions").items():
        for position in entry["positions"]:
            if position["stop_loss"] is not None or position["trailing_stop"] is not None:
                return sid, position
    return None


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """public_read with a token: reads open, changes need the token; stepped until a strategy holds a position with a stop."""
    with catalog_daemon({"listen": "127.0.0.1:0", "token_env": TOKEN_ENV, "public_read": True}) as served:
        served.daemon.step_until(lambda: _stopped_position(served), "position with a stop", candles=60)
        yield served


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium driven by Playwright."""
    with chromium() as instance:
        yield instance


@dataclass
class Watched:
    """A page, with every console error or warning, page error, and request to another origin it made."""

    page: Any
    origin: str
    problems: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)

    def close(self) -> None:
        """Close the page (its context too)."""
        context = self.page.context
        self.page.close()
        context.close()


# The routes the page reads when the daemon has them (a 404 or 405 there is the page's cue to do without).
OPTIONAL_ROUTES = ("/api/v1/trades", "/api/v1/equity", "/api/v1/strategies/{id}/trades", "/api/v1/strategies/{id}/candles")


def unexpected(problems: list[str], served: Served) -> list[str]:
    """The problems but Chromium's note of a 404/405 from a route this daemon does not have yet (the page does without it)."""
    missing = [route for route in OPTIONAL_ROUTES if served.get(route.replace("{id}", "ema_cross")).status in (404, 405)]
    patterns = [re.compile(re.escape(f"/{route.lstrip('/')}").replace(re.escape("{id}"), "[^/]+") + r"(\?[^)]*)?\)$") for route in missing]
    return [p for p in problems if not ("Failed to load resource" in p and re.search(r"status of 40[45]", p) and any(pattern.search(p) for pattern in patterns))]


@contextmanager
def opened(
    browser: Any, served: Served, route: str = "#/", init: str | None = None, before: Callable[[Any], None] | None = None, **context_options: Any
) -> Iterator[Watched]:
    """A fresh browser context (its own sessionStorage, `context_options` such as a viewport; `init` run before the page's scripts, `before` given the context) on the page at `route`; closed after."""
    origin = f"http://127.0.0.1:{served.port}"
    context = browser.new_context(**context_options)
    if init is not None:
        context.add_init_script(init)
    if before is not None:
        before(context)
    watched = Watched(context.new_page(), origin)
    page = watched.page
    page.on("pageerror", lambda error: watched.problems.append(f"page error: {error}"))
    page.on("console", lambda message: watched.problems.append(f"console {message.type}: {message.text} ({message.location.get('url')})") if message.type in ("error", "warning") else None)
    page.on("request", lambda request: watched.foreign.append(request.url) if not request.url.startswith((origin + "/", "data:", "blob:")) else None)
    page.set_default_timeout(WAIT_MS)
    try:
        page.goto(f"{origin}/{route}", wait_until="load")
        yield watched
    finally:
        watched.close()


def shown_clock(page: Any, clock_ts: int) -> None:
    """Wait until the page shows this clock (its status read at or after it)."""
    page.wait_for_function("ts => Number(document.querySelector('#clock').dataset.ts) >= ts", arg=clock_ts, timeout=WAIT_MS)


def rows(page: Any) -> dict[str, dict[str, str]]:
    """The overview's strategy rows: id → their data-* attributes."""
    found: dict[str, dict[str, str]] = page.evaluate(
        "() => Object.fromEntries([...document.querySelectorAll('#strategies tbody tr')].map(tr => [tr.dataset.strategy, {...tr.dataset}]))"
    )
    return found


# --- the overview ----------------------------------------------------------------------------------------


def test_the_overview_loads_without_errors_or_foreign_requests_and_lists_every_strategy_of_config_json(browser: Any, served: Served) -> None:
    status = ctl(served, "status")
    with opened(browser, served) as watched:
        shown_clock(watched.page, status["clock_ts"])
        watched.page.wait_for_function("n => document.querySelectorAll('#strategies tbody tr').length === n", arg=len(status["strategies"]))
        shown = rows(watched.page)
        health = watched.page.get_attribute("#health", "data-health")
        watched.page.wait_for_function("() => window.botView.live === 'live'")
        live = watched.page.evaluate("() => [window.botView.live, window.botView.streams, document.querySelector('#live').dataset.state]")
    assert live == ["live", 1, "live"]
    assert unexpected(watched.problems, served) == []
    assert watched.foreign == []
    assert list(shown) == config_json_ids() == list(status["strategies"])
    assert {sid: row["state"] for sid, row in shown.items()} == {sid: row["state"] for sid, row in status["strategies"].items()}
    assert {sid: row["currency"] for sid, row in shown.items()} == {sid: row["currency"] for sid, row in status["strategies"].items()}
    assert health == status["health"]


def test_the_overview_sums_net_pnl_per_currency_never_across_them(browser: Any, served: Served) -> None:
    status = ctl(served, "status")
    expected: dict[str, float] = {}
    for row in status["strategies"].values():
        expected[row["currency"]] = expected.get(row["currency"], 0.0) + row["equity"] - row["starting_balance"]
    with opened(browser, served) as watched:
        shown_clock(watched.page, status["clock_ts"])
        watched.page.wait_for_function("n => document.querySelectorAll('#totals tbody tr').length >= n", arg=len(expected))
        totals = watched.page.evaluate("() => Object.fromEntries([...document.querySelectorAll('#totals tbody tr')].map(tr => [tr.dataset.currency, Number(tr.dataset.net)]))")
        charts = watched.page.evaluate("() => Object.fromEntries(Object.entries(window.botView.charts).map(([name, c]) => [name, Object.keys(c.series)]))")
    assert set(totals) == {"USD", "BTC"}
    assert totals == pytest.approx(expected)
    # One equity chart per currency, each curve one strategy of that currency.
    per_currency = {f"equity:{currency}": sorted(sid for sid, row in status["strategies"].items() if row["currency"] == currency) for currency in expected}
    assert {name: sorted(sids) for name, sids in charts.items()} == per_currency


# The idle refresh off: whatever the page shows after a step came through the event stream.
NO_IDLE = "window.botViewOptions = {idleRefreshMs: 0, slowRefreshMs: 3600000}"
EVENT_CAUSES = {"event", "settle", "later"}


def shown_causes(page: Any) -> set[str]:
    """Why the refresh that read the clock shown ran (its causes, as the page records them)."""
    return set((page.get_attribute("#clock", "data-causes") or "").split())


def test_a_new_candle_and_equity_change_appear_without_reloading(browser: Any, served: Served) -> None:
    with opened(browser, served, init=NO_IDLE) as watched:
        page = watched.page
        shown_clock(page, ctl(served, "status")["clock_ts"])
        page.wait_for_function("() => window.botView.live === 'live'")
        loads = page.evaluate("() => performance.getEntriesByType('navigation').length")
        before = ctl(served, "status")
        # Until a candle closes that moves an equity (a position marked to it): each step is one the page must show.
        equity = {sid: row["equity"] for sid, row in before["strategies"].items()}
        served.daemon.step_until(lambda: {sid: row["equity"] for sid, row in ctl(served, "status")["strategies"].items()} != equity, "equity change", candles=15)
        stepped = time.monotonic()
        after = ctl(served, "status")
        equities = {sid: row["equity"] for sid, row in after["strategies"].items()}
        page.wait_for_function(
            """want => {
                if (Number(document.querySelector('#clock').dataset.ts) < want.clock) return false;
                const shown = Object.fromEntries([...document.querySelectorAll('#strategies tbody tr')].map(tr => [tr.dataset.strategy, Number(tr.dataset.equity)]));
                return Object.entries(want.equity).every(([sid, equity]) => shown[sid] === equity);
            }""",
            arg={"clock": after["clock_ts"], "equity": equities},
            timeout=WAIT_MS,
        )
        took = time.monotonic() - stepped
        causes = shown_causes(page)
        assert page.evaluate("() => performance.getEntriesByType('navigation').length") == loads
    print(f"\nlive update shown {took:.2f} s after the step (aim: 5 s)")
    # No idle refresh: the update came from an event.
    assert causes and causes <= EVENT_CAUSES, causes
    assert after["clock_ts"] > before["clock_ts"]
    assert unexpected(watched.problems, served) == []


@pytest.fixture(scope="module")
def closed() -> Iterator[Served]:
    """Reads behind the token too (no public_read): the page opens on loopback, its reads ask for the token."""
    with _module_daemon({"listen": "127.0.0.1:0", "token_env": TOKEN_ENV}) as served:
        yield served


def test_a_read_refused_for_want_of_the_token_asks_for_it_once_then_reads_with_it(browser: Any, closed: Served) -> None:
    status = ctl(closed, "status")
    with opened(browser, closed) as watched:
        page = watched.page
        page.wait_for_selector("#token-dialog:not([hidden])")
        # Both the status read and the event stream were refused: one form for both.
        assert TOKEN_REQUIRED in page.text_content("#token-dialog-message")
        page.fill("#token-dialog-input", "not-the-token")
        page.click("#token-dialog button[type=submit]")
        page.wait_for_selector("#token-dialog:not([hidden])")
        page.fill("#token-dialog-input", TOKEN)
        page.click("#token-dialog button[type=submit]")
        page.wait_for_function("n => document.querySelectorAll('#strategies tbody tr').length === n", arg=len(status["strategies"]))
        page.wait_for_function("() => window.botView.live === 'live'")
        kept = page.evaluate("() => sessionStorage.getItem('bot.api-token')")
        # A reload in the same tab reads with the token kept: no form.
        page.reload(wait_until="load")
        page.wait_for_function("n => document.querySelectorAll('#strategies tbody tr').length === n", arg=len(status["strategies"]))
        asked_again = page.is_visible("#token-dialog")
    assert kept == TOKEN
    assert not asked_again
    assert all("status of 401" in problem for problem in unexpected(watched.problems, closed)), watched.problems


@pytest.mark.parametrize("route", ["#/", "#/strategy/ema_cross"])
def test_on_a_phone_the_page_fits_its_width(browser: Any, served: Served, route: str) -> None:
    """A 390 px wide phone: nothing wider than the screen but inside its own scrolling box (the tables)."""
    with opened(browser, served, route, viewport={"width": 390, "height": 800}, is_mobile=True, has_touch=True) as watched:
        page = watched.page
        page.wait_for_function("() => window.botView.refreshes > 0 && document.querySelectorAll('#strategies tbody tr, #params tbody tr').length > 0")
        widths = page.evaluate("() => ({page: document.documentElement.scrollWidth, screen: window.innerWidth})")
    assert widths["page"] <= widths["screen"], widths
    assert unexpected(watched.problems, served) == []


# --- controls ----------------------------------------------------------------------------------------------


def _acted(page: Any, selector: str) -> dict[str, str]:
    """Click `selector` and return the reply box once it shows the answer to that click (its data-* and text)."""
    before = int(page.get_attribute("#reply", "data-seq") or 0)
    page.click(selector)
    page.wait_for_function("seq => Number(document.querySelector('#reply').dataset.seq || 0) > seq && document.querySelector('#reply').dataset.status !== 'pending'", arg=before)
    reply: dict[str, str] = page.evaluate("() => ({...document.querySelector('#reply').dataset, text: document.querySelector('#reply').textContent})")
    return reply


def test_deactivate_with_the_token_makes_the_strategy_dormant(browser: Any, served: Served) -> None:
    # One holding no position (the close policy then closes nothing another test looks at), and none the other control tests use.
    rows = ctl(served, "status")["strategies"]
    sid = next(sid for sid, row in rows.items() if row["state"] == "active" and row["positions"] == 0 and sid not in ("hybrid", "mean_reversion", "trend_mtf"))
    with opened(browser, served, f"#/strategy/{sid}") as watched:
        page = watched.page
        page.wait_for_function("() => document.querySelector('#s-state').dataset.state === 'active'")
        page.fill("#token-input", TOKEN)
        page.click("#token-form button[type=submit]")
        page.select_option("#deactivate-policy", "close")
        asked: list[str] = []

        def accept(dialog: Any) -> None:  # a Playwright Dialog
            asked.append(dialog.message)
            dialog.accept()

        page.once("dialog", accept)
        reply = _acted(page, "#do-deactivate")
        assert len(asked) == 1 and sid in asked[0] and "close" in asked[0], asked
        assert (reply["status"], reply["http"]) == ("ok", "200"), reply
        assert json.loads(reply["text"].split(": ", 1)[1]) == {"id": sid, "state": "dormant", "policy": "close"}
        assert ctl(served, "status")["strategies"][sid]["state"] == "dormant"
        page.wait_for_function("() => document.querySelector('#s-state').dataset.state === 'dormant'")
        page.goto(f"{watched.origin}/#/")
        page.wait_for_function("sid => document.querySelector(`#strategies tr[data-strategy='${sid}']`)?.dataset.state === 'dormant'", arg=sid)
        # Back as it was, through the page too.
        page.goto(f"{watched.origin}/#/strategy/{sid}")
        page.wait_for_function("() => document.querySelector('#s-state').dataset.state === 'dormant'")
        assert _acted(page, "#do-activate")["status"] == "ok"
    assert ctl(served, "status")["strategies"][sid]["state"] == "active"
    assert unexpected(watched.problems, served) == []


def test_a_control_without_the_token_is_refused_and_the_page_says_why(browser: Any, served: Served) -> None:
    sid = "hybrid"
    with opened(browser, served, f"#/strategy/{sid}") as watched:
        page = watched.page
        page.wait_for_function("() => document.querySelector('#s-state').dataset.state === 'active'")
        reply = _acted(page, "#do-deactivate")
        dialog_hidden = page.is_hidden("#token-dialog")
    assert (reply["status"], reply["code"], reply["http"]) == ("error", "unauthorized", "401"), reply
    assert TOKEN_REQUIRED in reply["text"]
    assert dialog_hidden  # a refused change shows the server's reply, not the token form
    assert ctl(served, "status")["strategies"][sid]["state"] == "active"
    # The 401 of the refused change is the only console error (Chromium logs a failed fetch).
    assert all("401" in problem for problem in unexpected(watched.problems, served)), watched.problems


# --- the strategy page -------------------------------------------------------------------------------------


def test_the_strategy_page_draws_its_candles_indicators_markers_and_stop_lines(browser: Any, served: Served) -> None:
    found = _stopped_position(served)
    assert found is not None
    sid, position = found
    candles = served.get(f"/api/v1/strategies/{sid}/candles")
    if candles.status in (404, 405):
        pytest.skip("this daemon has no GET /api/v1/strategies/{id}/candles yet")
    trades = served.get(f"/api/v1/strategies/{sid}/trades?limit=100").body["trades"]
    status = ctl(served, "status")
    with opened(browser, served, f"#/strategy/{sid}") as watched:
        page = watched.page
        shown_clock(page, status["clock_ts"])
        page.wait_for_function("n => window.botView.charts.price?.candles.length === n", arg=len(candles.body["candles"]))
        chart = page.evaluate("() => window.botView.charts.price")
        shown_positions = page.evaluate("() => [...document.querySelectorAll('#positions tbody tr')].map(tr => tr.dataset.position)")
        # Live on this page too: the next candle of its timeframe drawn without a reload.
        last = candles.body["candles"][-1][0]
        served.daemon.step_until(lambda: served.get(f"/api/v1/strategies/{sid}/candles").body["candles"][-1][0] > last, "next candle", candles=15)
        stepped = time.monotonic()
        newest = served.get(f"/api/v1/strategies/{sid}/candles").body["candles"][-1][0]
        page.wait_for_function("ts => Number(document.querySelector('#price-chart').dataset.lastCandle) === ts", arg=newest)
        print(f"\nnew candle drawn {time.monotonic() - stepped:.2f} s after the step (aim: 5 s)")
    assert unexpected(watched.problems, served) == []
    assert [c["time"] * 1000 for c in chart["candles"]] == [c[0] for c in candles.body["candles"]]
    assert [c["close"] for c in chart["candles"]] == [c[4] for c in candles.body["candles"]]
    keys = {f"{indicator['key']}.{name}" for indicator in candles.body["indicators"] for name in indicator["series"]}
    assert keys and set(chart["series"]) == keys
    assert all(len(series) == len(chart["candles"]) for series in chart["series"].values())
    ids = {marker["id"] for marker in chart["markers"]}
    assert f"entry:{position['position_id']}" in ids
    # Each marker on one of the candles drawn (the chart drops one at any other time).
    times = {c["time"] for c in chart["candles"]}
    assert [marker for marker in chart["markers"] if marker["time"] not in times] == []
    first = candles.body["candles"][0][0]
    for trade in trades:
        if trade["entry_ts"] >= first and trade["symbol"] == candles.body["symbol"]:
            assert {f"entry:{trade['position_id']}", f"exit:{trade['position_id']}"} <= ids, trade
    stops = [(line["kind"], line["price"]) for line in chart["lines"] if line["position_id"] == position["position_id"]]
    if position["stop_loss"] is not None:
        assert ("stop_loss", position["stop_loss"]) in stops
    if position["trailing_stop"] is not None:
        assert ("trailing_stop", position["trailing_stop"]) in stops
    # Every take-profit rung not yet filled is a line.
    rungs = [("take_profit", at) for at, _, done in position["take_profit"] if not done]
    assert [stop for stop in stops if stop[0] == "take_profit"] == rungs
    assert shown_positions == [position["position_id"]]


def test_set_from_the_page_changes_the_parameter_and_a_value_not_json_is_not_sent(browser: Any, served: Served) -> None:
    sid = "trend_mtf"
    with opened(browser, served, f"#/strategy/{sid}") as watched:
        page = watched.page
        page.wait_for_function("() => document.querySelector('#params tr[data-path=\\'exits.stop_loss_pct\\']') !== null")
        page.fill("#token-input", TOKEN)
        page.click("#token-form button[type=submit]")
        page.fill("#set-path", "exits.stop_loss_pct")
        page.fill("#set-value", "nonsense")
        local = _acted(page, "#set-form button[type=submit]")
        page.fill("#set-value", "2.5")
        reply = _acted(page, "#set-form button[type=submit]")
        page.wait_for_function("() => document.querySelector('#params tr[data-path=\\'exits.stop_loss_pct\\'] td:last-child').textContent === '2.5'")
    assert (local["status"], local["code"]) == ("error", "bad_value"), local
    assert (reply["status"], reply["http"]) == ("ok", "200"), reply
    assert json.loads(reply["text"].split(": ", 1)[1])["new"] == 2.5
    assert ctl(served, "strategies")["loaded"][sid]["config"]["exits"]["stop_loss_pct"] == 2.5
    assert unexpected(watched.problems, served) == []


def test_switch_from_the_page_and_its_refusal_shown_with_the_servers_code(browser: Any, served: Served) -> None:
    source, target = "hybrid", "mean_reversion"
    ctl(served, "deactivate", {"id": target})
    try:
        with opened(browser, served, f"#/strategy/{source}") as watched:
            page = watched.page
            page.wait_for_function("to => [...document.querySelectorAll('#switch-to option')].some(o => o.value === to)", arg=target)
            page.fill("#token-input", TOKEN)
            page.click("#token-form button[type=submit]")
            page.select_option("#switch-to", target)
            page.select_option("#switch-policy", "manage")
            switched = _acted(page, "#do-switch")
            rows = ctl(served, "status")["strategies"]
            # Again: the source is dormant now, the server refuses, and the page shows its code and message.
            refused = _acted(page, "#do-switch")
    finally:
        for sid in (source, target):
            if ctl(served, "status")["strategies"][sid]["state"] != "active":
                ctl(served, "activate", {"id": sid})
    assert (switched["status"], switched["http"]) == ("ok", "200"), switched
    assert json.loads(switched["text"].split(": ", 1)[1]) == {"from": source, "to": target, "policy": "manage"}
    assert (rows[source]["state"], rows[target]["state"]) == ("dormant", "active")
    assert (refused["status"], refused["code"], refused["http"]) == ("error", "invalid_state", "409"), refused
    assert "invalid_state" in refused["text"] and len(refused["text"]) > len("switch refused (409 invalid_state): ")
    assert all("status of 409" in problem for problem in unexpected(watched.problems, served)), watched.problems


# --- the event stream: one per tab, the updates it brings, its parser and its back-off -------------------


def next_clock(served: Served) -> int:
    """Step the daemon until its clock moves; the new clock."""
    before = ctl(served, "status")["clock_ts"]
    clock: int = served.daemon.step_until(lambda: (ts if (ts := ctl(served, "status")["clock_ts"]) > before else None), "clock move", candles=1)
    return clock


def test_four_tabs_of_one_browser_all_load_and_update(browser: Any, served: Served) -> None:
    """One browser has 6 connections per host for all its tabs: each tab holds one stream, so four (three strategy pages) still load and update."""
    context = browser.new_context()
    context.add_init_script(NO_IDLE)
    origin = f"http://127.0.0.1:{served.port}"
    problems: list[str] = []
    try:
        pages = []
        for route in ("#/strategy/ema_cross", "#/strategy/hybrid", "#/strategy/trend_mtf", "#/"):
            page = context.new_page()
            page.set_default_timeout(WAIT_MS)
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.goto(f"{origin}/{route}", wait_until="load")
            pages.append(page)
        for page in pages:
            page.wait_for_function("() => window.botView.live === 'live' && window.botView.refreshes > 0")
            page.wait_for_function("() => document.querySelectorAll('#strategies tbody tr, #params tbody tr').length > 0")
        streams = [page.evaluate("() => window.botView.streams") for page in pages]
        clock = next_clock(served)
        stepped = time.monotonic()
        for page in pages:
            shown_clock(page, clock)
        took = time.monotonic() - stepped
        causes = [shown_causes(page) for page in pages]
    finally:
        context.close()
    print(f"\nfour tabs updated {took:.2f} s after the step")
    assert streams == [1, 1, 1, 1]
    assert all(cause and cause <= EVENT_CAUSES for cause in causes), causes
    assert problems == []


def _set_visibility(page: Any, visibility: str) -> None:
    """Tell the page it is hidden or visible again, as a browser does when its tab is switched."""
    page.evaluate(
        """v => { Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => v});
                  Object.defineProperty(document, 'hidden', {configurable: true, get: () => v === 'hidden'});
                  document.dispatchEvent(new Event('visibilitychange')); }""",
        visibility,
    )


def test_a_hidden_tab_closes_its_stream_and_catches_up_when_visible_again(browser: Any, served: Served) -> None:
    with opened(browser, served, init=NO_IDLE) as watched:
        page = watched.page
        page.wait_for_function("() => window.botView.live === 'live' && window.botView.streams === 1")
        _set_visibility(page, "hidden")
        page.wait_for_function("() => window.botView.streams === 0 && window.botView.live === 'paused'")
        clock = next_clock(served)
        shown_while_hidden = int(page.get_attribute("#clock", "data-ts") or 0)
        _set_visibility(page, "visible")
        page.wait_for_function("() => window.botView.live === 'live' && window.botView.streams === 1")
        shown_clock(page, clock)
        causes = shown_causes(page)
    assert shown_while_hidden < clock
    assert causes & {"visible", "event"}, causes
    assert unexpected(watched.problems, served) == []


def test_with_the_stream_held_a_step_shows_only_at_the_idle_refresh(browser: Any, served: Served) -> None:
    """The event stream routed to never answer: nothing but the idle refresh (here every 2 s) can show a step."""
    held: list[Any] = []
    with opened(browser, served, init="window.botViewOptions = {idleRefreshMs: 2000, slowRefreshMs: 3600000}",
                before=lambda context: context.route("**/api/v1/events?*", lambda route: held.append(route))) as watched:
        page = watched.page
        shown_clock(page, ctl(served, "status")["clock_ts"])
        clock = next_clock(served)
        stepped = time.monotonic()
        shown_clock(page, clock)
        took = time.monotonic() - stepped
        causes = shown_causes(page)
        live = page.evaluate("() => window.botView.live")
    print(f"\nwith no stream the step was shown {took:.2f} s after it (the idle refresh: 2 s)")
    assert held
    assert causes == {"idle"}
    assert live == "connecting"


def _consumed(page: Any, chunks: list[bytes]) -> dict[str, Any]:
    """What LiveStream.consume makes of a body arriving in these chunks: its events and how it ended."""
    result: dict[str, Any] = page.evaluate(
        """async chunks => {
            const got = [];
            const stream = new window.botView.internals.LiveStream(event => got.push(event));
            const body = new ReadableStream({start(c) { for (const chunk of chunks) c.enqueue(new Uint8Array(chunk)); c.close(); }});
            const end = await stream.consume(body);
            return {end, got};
        }""",
        [list(chunk) for chunk in chunks],
    )
    return result


def test_the_stream_parser_takes_any_chunking_crlf_multiline_data_comments_and_ends_at_an_error(browser: Any, served: Served) -> None:
    one = {"seq": 1, "type": "signal", "strategy_id": "é€😀", "payload": {"note": "übergröße ✓"}}
    two = {"seq": 2, "type": "candle", "strategy_id": None, "payload": {}}
    text = (
        ": streaming\n\n"
        f"data: {json.dumps(one, ensure_ascii=False)}\n\n"
        ": a comment between\n"
        'data: {"seq": 2, "type": "candle",\ndata:  "strategy_id": null, "payload": {}}\n\n'
    ).encode()
    with opened(browser, served) as watched:
        page = watched.page
        whole = _consumed(page, [text])
        # Every byte its own chunk: messages, lines and UTF-8 sequences all cut.
        bytewise = _consumed(page, [text[i:i + 1] for i in range(len(text))])
        crlf = text.replace(b"\n", b"\r\n")
        # CRLF framing, cut between a \r and its \n too.
        cut = crlf.index(b"\r\n\r\n") + 1
        framed = _consumed(page, [crlf[:cut], crlf[cut:]])
        lone_cr = _consumed(page, [text.replace(b"\n", b"\r")])
        error = b'event: error\ndata: {"error": {"code": "slow_reader", "message": "fell behind"}}\n\n'
        ended = _consumed(page, [text[:text.index(b"data: {\"seq\": 2")], error, b'data: {"seq": 9}\n\n'])
        unfinished = _consumed(page, [b'data: {"seq": 5}\n'])
    assert whole == {"end": "closed", "got": [one, two]}
    assert bytewise == whole
    assert framed == whole
    assert lone_cr == whole
    assert ended == {"end": "end", "got": [one]}
    assert unfinished == {"end": "closed", "got": []}


def _events_answered(body: str) -> Callable[[Any], None]:
    """A context route answering every event stream at once with this body (then closed): a stream that opens and ends."""
    return lambda context: context.route(
        "**/api/v1/events?*", lambda route: route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body)
    )


@pytest.mark.parametrize(
    ("body", "delays"),
    [
        ("", [500, 1000, 2000]),
        ('data: {"seq": 1, "ts": 0, "type": "feed_state", "strategy_id": null, "payload": {}}\n\n', [500, 500, 500]),
    ],
    ids=["closed-at-once-backs-off", "an-event-resets"],
)
def test_the_reconnect_pause_resets_only_after_an_event(browser: Any, served: Served, body: str, delays: list[int]) -> None:
    with opened(browser, served, init=NO_IDLE, before=_events_answered(body)) as watched:
        page = watched.page
        page.wait_for_function("n => window.botView.reconnectDelays.length >= n", arg=len(delays))
        shown = page.evaluate("() => window.botView.reconnectDelays")
    assert shown[: len(delays)] == delays


def test_the_strategy_page_lists_its_own_live_events(browser: Any, served: Served) -> None:
    rows = ctl(served, "status")["strategies"]
    sid = next(sid for sid, row in rows.items() if row["state"] == "active" and row["positions"] == 0 and sid not in ("hybrid", "mean_reversion", "trend_mtf"))
    other = next(other for other, row in rows.items() if other != sid and row["state"] == "active" and row["positions"] == 0)
    with opened(browser, served, f"#/strategy/{sid}", init=NO_IDLE) as watched:
        page = watched.page
        page.wait_for_function("() => window.botView.live === 'live' && window.botView.refreshes > 0")
        try:
            for target in (other, sid):
                ctl(served, "deactivate", {"id": target})
                ctl(served, "activate", {"id": target})
            page.wait_for_function("() => document.querySelectorAll('#events li[data-type=strategy_state]').length >= 2")
            next_clock(served)
            shown_clock(page, ctl(served, "status")["clock_ts"])
            listed = page.evaluate("() => [...document.querySelectorAll('#events li')].map(li => [li.dataset.type, li.dataset.strategy])")
        finally:
            for target in (other, sid):
                if ctl(served, "status")["strategies"][target]["state"] != "active":
                    ctl(served, "activate", {"id": target})
    assert [entry for entry in listed if entry[0] == "strategy_state"][:2] == [["strategy_state", sid]] * 2
    assert {strategy for _, strategy in listed} == {sid}, listed
    assert unexpected(watched.problems, served) == []


# --- refreshes that must not get in the way ----------------------------------------------------------------


def _held_candles(sid: str, held: list[Any]) -> Callable[[Any], None]:
    """A context route holding every /candles read of `sid` (kept in `held`, answered when the test says)."""
    return lambda context: context.route(f"**/api/v1/strategies/{sid}/candles*", lambda route: held.append(route))


def _wait_held(page: Any, held: list[Any]) -> None:
    """Until the held read has reached the route (polled between Playwright's own events; bounded)."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while not held:
        assert time.monotonic() < deadline, "the held /candles read never came"
        page.wait_for_timeout(20)


@pytest.mark.parametrize("to", ["#/strategy/hybrid", "#/"], ids=["to-another-strategy", "to-the-overview"])
def test_a_late_refresh_of_a_page_left_draws_nothing_over_the_next(browser: Any, served: Served, to: str) -> None:
    first = "ema_cross"
    held: list[Any] = []
    with opened(browser, served, "#/", init=NO_IDLE, before=_held_candles(first, held)) as watched:
        page = watched.page
        page.wait_for_function("() => window.botView.refreshes > 0")
        page.evaluate("sid => { location.hash = `#/strategy/${sid}`; }", first)
        _wait_held(page, held)
        page.evaluate("to => { location.hash = to; }", to)
        if to == "#/":
            page.wait_for_function("() => document.querySelectorAll('#strategies tbody tr').length > 0 && !document.querySelector('#overview').hidden")
        else:
            page.wait_for_function("() => window.botView.charts.price?.sid === 'hybrid'")
        # Every strategy named in the heading from now on, and every chart drawn.
        page.evaluate("""() => { window.seen = [];
            new MutationObserver(() => window.seen.push(document.querySelector('#s-id').textContent)).observe(document.querySelector('#s-id'), {childList: true, characterData: true, subtree: true}); }""")
        refreshes = page.evaluate("() => window.botView.refreshes")
        for route in held:
            route.continue_()
        # The held refresh has finished (its reads returned) and none is running.
        page.wait_for_function("n => window.botView.refreshes > n && !window.botView.refreshing", arg=refreshes)
        discarded = page.evaluate("() => window.botView.discarded")
        after = page.evaluate("() => ({seen: window.seen, price: window.botView.charts.price?.sid ?? null, heading: document.querySelector('#s-id').textContent, drawn: document.querySelector('#price-chart').children.length})")
    assert first not in after["seen"], after
    assert discarded >= 1
    if to == "#/":
        assert (after["price"], after["heading"], after["drawn"]) == (None, "", 0), after
    else:
        assert (after["price"], after["heading"]) == ("hybrid", "hybrid"), after
    assert unexpected(watched.problems, served) == []


def _refreshed_after_a_step(page: Any, served: Served) -> None:
    """Step until the clock moves; wait until the page shows it and two refreshes have finished since (the event's and its settle's: the rows drawn)."""
    count = page.evaluate("() => window.botView.refreshes")
    clock = next_clock(served)
    shown_clock(page, clock)
    page.wait_for_function("n => window.botView.refreshes >= n + 2", arg=count)


def test_a_refresh_keeps_the_focus_on_a_strategy_link_and_a_parameter(browser: Any, served: Served) -> None:
    with opened(browser, served, init=NO_IDLE) as watched:
        page = watched.page
        shown_clock(page, ctl(served, "status")["clock_ts"])
        page.focus("#strategies tr[data-strategy='ema_cross'] a")
        _refreshed_after_a_step(page, served)
        overview = page.evaluate("() => [document.activeElement.tagName, document.activeElement.closest('tr')?.dataset.strategy]")
        assert overview == ["A", "ema_cross"]
        page.keyboard.press("Enter")
        page.wait_for_function("() => document.querySelector('#params button.param[data-path=\\'exits.stop_loss_pct\\']') !== null")
        page.focus("#params button.param[data-path='exits.stop_loss_pct']")
        _refreshed_after_a_step(page, served)
        strategy = page.evaluate("() => [document.activeElement.tagName, document.activeElement.dataset.path]")
        # A parameter is a button: Enter on it fills the set form.
        page.keyboard.press("Enter")
        filled = page.evaluate("() => [document.querySelector('#set-path').value, document.querySelector('#set-value').value]")
        params = ctl(served, "strategies")["loaded"]["ema_cross"]["config"]["exits"]["stop_loss_pct"]
    assert overview == ["A", "ema_cross"]
    assert strategy == ["BUTTON", "exits.stop_loss_pct"]
    assert filled[0] == "exits.stop_loss_pct" and json.loads(filled[1]) == params
    assert unexpected(watched.problems, served) == []


def test_equity_is_read_on_load_only_with_about_a_point_a_pixel_not_at_each_refresh(browser: Any, served: Served) -> None:
    equity: list[str] = []
    with opened(browser, served, init=NO_IDLE, before=lambda context: context.on("request", lambda r: equity.append(r.url) if "/api/v1/equity" in r.url else None)) as watched:
        page = watched.page
        shown_clock(page, ctl(served, "status")["clock_ts"])
        refreshes = page.evaluate("() => window.botView.refreshes")
        for _ in range(3):
            shown_clock(page, next_clock(served))
        page.wait_for_function("n => window.botView.refreshes >= n + 3", arg=refreshes)
        width = page.evaluate("() => document.querySelector('#equity-charts').clientWidth")
        charts = page.evaluate("() => Object.fromEntries(Object.entries(window.botView.charts).map(([name, c]) => [name, [c.labelled, c.colors]]))")
        palette = page.evaluate("() => window.botView.internals.PALETTE")
    assert len(equity) == 1, equity
    assert re.search(rf"[?&]points={width}(&|$)", equity[0]), (equity, width)
    colors = [color for _, (_, per) in charts.items() for color in per.values()]
    assert all(labelled for labelled, _ in charts.values())
    assert len(set(colors)) == len(colors) == len(ctl(served, "status")["strategies"])
    assert len(set(palette)) == len(palette) >= 20
    assert unexpected(watched.problems, served) == []


# --- smaller things ----------------------------------------------------------------------------------------


def test_a_malformed_hash_is_the_overview_and_an_unknown_strategy_says_so_with_no_controls(browser: Any, served: Served) -> None:
    with opened(browser, served, "#/strategy/%E0%A4%A") as watched:
        page = watched.page
        page.wait_for_function("() => document.querySelectorAll('#strategies tbody tr').length > 0")
        malformed = page.evaluate("() => [document.querySelector('#overview').hidden, document.querySelector('#strategy').hidden]")
        page.evaluate("() => { location.hash = '#/strategy/ema_cross'; }")
        page.wait_for_function("() => window.botView.charts.price?.sid === 'ema_cross' && document.querySelectorAll('#params tbody tr').length > 0")
        page.evaluate("() => { location.hash = '#/strategy/no_such_strategy'; }")
        page.wait_for_function("() => document.querySelector('#strategy').dataset.known === 'false'")
        unknown = page.evaluate("""() => ({
            heading: document.querySelector('#s-id').textContent, summary: document.querySelector('#s-summary').textContent,
            controls: document.querySelector('#s-controls').hidden, chart: document.querySelector('#s-chart').hidden,
            price: window.botView.charts.price ?? null,
            rows: document.querySelectorAll('#positions tbody tr, #trades tbody tr, #params tbody tr, #events li').length })""")
    assert malformed == [False, True]
    assert unknown["heading"] == "no_such_strategy" and "no_such_strategy" in unknown["summary"] and "loaded" in unknown["summary"]
    assert (unknown["controls"], unknown["chart"], unknown["price"], unknown["rows"]) == (True, True, None, 0), unknown
    assert unexpected(watched.problems, served) == []


def test_close_is_confirmed_first_and_a_token_not_printable_ascii_is_refused_with_the_reason(browser: Any, served: Served) -> None:
    sid = "hybrid"
    with opened(browser, served, f"#/strategy/{sid}") as watched:
        page = watched.page
        page.wait_for_function("() => document.querySelector('#s-state').dataset.state === 'active'")
        page.fill("#token-input", "tökén")
        refused = _acted(page, "#token-form button[type=submit]")
        kept = page.evaluate("() => sessionStorage.getItem('bot.api-token')")
        page.fill("#token-input", TOKEN)
        page.click("#token-form button[type=submit]")
        page.select_option("#deactivate-policy", "close")
        asked: list[str] = []

        def dismiss(dialog: Any) -> None:  # a Playwright Dialog
            asked.append(dialog.message)
            dialog.dismiss()

        page.once("dialog", dismiss)
        cancelled = _acted(page, "#do-deactivate")
        # The reply box and the live dot are announced politely; the token form is a labelled modal dialog with a cancel.
        aria = page.evaluate("""() => {
            const attrs = (selector, names) => names.map(name => document.querySelector(selector).getAttribute(name));
            return [attrs('#reply', ['role', 'aria-live']), attrs('#live', ['role', 'aria-live']),
                    attrs('#token-dialog', ['role', 'aria-modal', 'aria-labelledby']), attrs('#token-dialog-cancel', ['type'])];
        }""")
    assert (refused["status"], refused["code"]) == ("error", "bad_token") and "printable ASCII" in refused["text"], refused
    assert kept is None
    assert len(asked) == 1 and "close" in asked[0]
    assert (cancelled["status"], cancelled["code"]) == ("cancelled", "cancelled"), cancelled
    assert ctl(served, "status")["strategies"][sid]["state"] == "active"
    assert aria == [["status", "polite"], ["status", "polite"], ["dialog", "true", "token-dialog-title"], ["button"]]
    assert unexpected(watched.problems, served) == []


def test_the_token_dialog_can_be_cancelled_and_is_not_asked_again_at_each_refresh(browser: Any, closed: Served) -> None:
    with opened(browser, closed, init="window.botViewOptions = {idleRefreshMs: 300}") as watched:
        page = watched.page
        # The status read and the stream both refused: their answers may come on either side of a cancel, so cancel until the read gives up.
        for _ in range(3):
            page.wait_for_selector("#token-dialog:not([hidden])")
            page.click("#token-dialog-cancel")
            page.wait_for_function("() => !document.querySelector('#load-error').hidden || !document.querySelector('#token-dialog').hidden")
            if page.is_visible("#load-error"):
                break
        count = page.evaluate("() => window.botView.refreshes")
        page.wait_for_function("n => window.botView.refreshes >= n + 2", arg=count)
        error = page.text_content("#load-error")
        hidden = page.is_hidden("#token-dialog")
        live = page.evaluate("() => window.botView.live")
        # The token given on a strategy page's field: the page reads, and the stream is live.
        page.evaluate("() => { location.hash = '#/strategy/ema_cross'; }")
        page.fill("#token-input", TOKEN)
        page.click("#token-form button[type=submit]")
        page.wait_for_function("() => window.botView.live === 'live' && document.querySelector('#load-error').hidden")
    assert hidden and "401" in (error or "") and "reload" in (error or "")
    assert live == "unauthorized"


def test_a_trailing_stop_active_but_not_placed_draws_no_line(browser: Any, served: Served) -> None:
    position = {"position_id": "p1", "stop_loss": 100.0, "trailing_stop": None, "trailing_active": True, "take_profit": [[110.0, 1.0, False], [120.0, 1.0, True]]}
    with opened(browser, served) as watched:
        lines = watched.page.evaluate("p => window.botView.internals.stopLines([p]).map(l => [l.kind, l.price])", position)
        # A daemon that leaves the field out: no line at an undefined price either.
        absent = watched.page.evaluate("p => { delete p.trailing_stop; return window.botView.internals.stopLines([p]).map(l => [l.kind, l.price]); }", position)
    assert lines == absent == [["stop_loss", 100.0], ["take_profit", 110.0]]


def test_past_ten_curves_an_equity_chart_drops_the_last_value_labels_and_twenty_curves_differ_in_colour(browser: Any, served: Served) -> None:
    with opened(browser, served) as watched:
        drawn = watched.page.evaluate("""() => {
            const draw = (n) => {
                const ids = Array.from({length: n}, (_, i) => `s${n}_${i}`);
                const currency = `Z${n}`;
                const status = {strategies: Object.fromEntries(ids.map(id => [id, {currency, equity: 1}]))};
                const equity = {strategies: Object.fromEntries(ids.map((id, i) => [id, {currency, points: [[0, 1], [60000, 1 + i]]}]))};
                window.botView.internals.renderEquity(status, equity);
                const chart = window.botView.charts[`equity:${currency}`];
                return [chart.labelled, new Set(Object.values(chart.colors)).size];
            };
            return [draw(10), draw(11), draw(20)];
        }""")
    assert drawn == [[True, 10], [False, 11], [False, 20]]



# Last: it steps the daemon on until a strategy has closed a few trades (the tests above need the position they found).
def test_older_trades_are_paged_in_by_the_older_button(browser: Any, served: Served) -> None:
    def with_trades() -> str | None:
        counts = served.get("/api/v1/trades?limit=1").body["counts"]
        return next((sid for sid, count in counts.items() if count["total"] >= 5), None)

    sid = served.daemon.step_until(with_trades, "a strategy with 5 trades", candles=300, limit=30_000)
    every = served.get(f"/api/v1/strategies/{sid}/trades?limit=1000").body["trades"]
    with opened(browser, served, f"#/strategy/{sid}", init="window.botViewOptions = {tradesPage: 2}") as watched:
        page = watched.page
        shown = "() => [...document.querySelectorAll('#trades tbody tr')].map(tr => Number(tr.dataset.trade))"
        page.wait_for_function("() => document.querySelectorAll('#trades tbody tr').length === 2")
        first = page.evaluate(shown)
        while page.is_visible("#trades-older"):
            count = len(page.evaluate(shown))
            page.click("#trades-older")
            page.wait_for_function("n => document.querySelectorAll('#trades tbody tr').length > n || document.querySelector('#trades-older').hidden", arg=count)
        paged = page.evaluate(shown)
    assert first == [trade["n"] for trade in every[:2]]
    assert paged == [trade["n"] for trade in every]
    assert unexpected(watched.problems, served) == []
