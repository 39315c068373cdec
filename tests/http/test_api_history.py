"""What a strategy did, over HTTP: its closed trades in pages, its equity curve, its candles with its indicators.

A real stepped `bot run` process serves them; each reply is checked against an independent source: the
journal's rows read with plain SQLite, the recorded candle file aggregated here, indicators computed here.
"""
from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

import pytest

from tests.daemon.process import journal_rows
from tests.http.test_api import TOKEN_ENV, Served, _module_daemon
from tests.support import BTC_1M

MINUTE = 60_000
DAY = 86_400_000
TRADE_FIELDS = ("strategy_id", "position_id", "symbol", "side", "quantity", "entry_ts", "entry_price", "exit_ts", "exit_price", "pnl", "fees", "exit_reason", "group")


@pytest.fixture(scope="module")
def traded() -> Iterator[Served]:
    """The repo's two strategies, stepped until they have closed at least five trades between them."""
    with _module_daemon({"listen": "127.0.0.1:0", "token_env": TOKEN_ENV}) as served:
        served.daemon.step_until(lambda: len(_journal_trades(served)) >= 5, "five closed trades", candles=250, limit=30_000)
        yield served


def _journal_trades(served: Served, sid: str | None = None) -> list[tuple[Any, ...]]:
    """(id, strategy_id, exit_ts, record) of the journal's trades rows, newest first."""
    where, params = ("WHERE strategy_id = ?", (sid,)) if sid else ("", ())
    return journal_rows(served.daemon.folder, f"SELECT id, strategy_id, exit_ts, record FROM trades {where} ORDER BY id DESC", *params)


def _all_pages(served: Served, path: str, limit: int) -> list[dict[str, Any]]:
    """Every trade, following `next` from the newest page on."""
    trades: list[dict[str, Any]] = []
    before: int | None = None
    while True:
        reply = served.get(f"{path}?limit={limit}" + (f"&before={before}" if before is not None else ""))
        assert reply.status == 200, reply.body
        page = reply.body["trades"]
        assert len(page) <= limit
        trades += page
        before = reply.body["next"]
        if before is None:
            return trades
        assert before == page[-1]["n"] and len(page) == limit


# --- trades --------------------------------------------------------------------------------------


def test_pages_of_trades_are_the_journals_trades_newest_first(traded: Served) -> None:
    import orjson

    rows = _journal_trades(traded)
    trades = _all_pages(traded, "/api/v1/trades", 2)
    assert [t["n"] for t in trades] == [row[0] for row in rows]
    for trade, (_, sid, exit_ts, record) in zip(trades, rows, strict=True):
        fields = orjson.loads(record)
        assert {name: trade[name] for name in TRADE_FIELDS} == {name: fields[name] for name in TRADE_FIELDS}
        assert trade["strategy_id"] == sid and trade["exit_ts"] == exit_ts
        assert trade["currency"] == "USD"


@pytest.mark.parametrize("sid", ["ema_cross", "rsi_reversion"])
def test_a_strategys_trades_are_its_own(traded: Served, sid: str) -> None:
    trades = _all_pages(traded, f"/api/v1/strategies/{sid}/trades", 3)
    assert [t["n"] for t in trades] == [row[0] for row in _journal_trades(traded, sid)]
    assert {t["strategy_id"] for t in trades} <= {sid}


def test_counts_are_all_trades_and_todays_by_the_daemons_clock(traded: Served) -> None:
    now = traded.ctl("status")["clock_ts"]
    reply = traded.get("/api/v1/trades?limit=0")
    assert reply.status == 200 and reply.body["trades"] == [] and reply.body["next"] is None
    expected = {}
    for sid in ("ema_cross", "rsi_reversion"):
        rows = _journal_trades(traded, sid)
        expected[sid] = {"total": len(rows), "today": sum(1 for row in rows if row[2] >= now - now % DAY)}
    assert reply.body["counts"] == expected


def test_the_last_page_says_no_next(traded: Served) -> None:
    total = len(_journal_trades(traded))
    reply = traded.get(f"/api/v1/trades?limit={total}")
    assert len(reply.body["trades"]) == total and reply.body["next"] is None
    oldest = reply.body["trades"][-1]["n"]
    assert traded.get(f"/api/v1/trades?before={oldest}").body["trades"] == []


def test_trades_are_the_sockets_trades_command(traded: Served) -> None:
    assert traded.get("/api/v1/strategies/ema_cross/trades?limit=3&before=1000000").body == traded.ctl("trades", {"id": "ema_cross", "limit": 3, "before": 1000000})


@pytest.mark.parametrize(
    ("query", "phrase"),
    [
        ("limit=-1", "limit"),
        ("limit=1001", "limit"),
        ("limit=many", "limit"),
        ("before=0", "before"),
        ("before=x", "before"),
        ("before=9223372036854775808", "before"),
        ("before=true", "before"),
        ("colour=red", "colour"),
        ("limit=1&limit=2", "'limit' given 2 times"),
        ("id=ema_cross", "named in the path"),
    ],
)
def test_bad_trades_queries_are_400_bad_args_naming_the_field(traded: Served, query: str, phrase: str) -> None:
    reply = traded.get(f"/api/v1/strategies/ema_cross/trades?{query}")
    assert reply.status == 400
    code, message = reply.error
    assert code == "bad_args" and phrase in message


@pytest.mark.parametrize("path", ["/api/v1/strategies/nope/trades", "/api/v1/strategies/nope/equity", "/api/v1/strategies/nope/candles"])
def test_an_unknown_strategy_is_404(traded: Served, path: str) -> None:
    reply = traded.get(path)
    assert reply.status == 404 and reply.error[0] == "unknown_strategy"


@pytest.mark.parametrize("path", ["/api/v1/trades", "/api/v1/equity", "/api/v1/strategies/ema_cross/candles"])
def test_the_history_needs_the_token(traded: Served, path: str) -> None:
    assert traded.get(path, auth=None).status == 401


# --- equity --------------------------------------------------------------------------------------


def test_each_curve_ends_at_the_strategys_equity_now_and_moves_forward(traded: Served) -> None:
    status = traded.ctl("status")["strategies"]
    curves = traded.get("/api/v1/equity").body["strategies"]
    assert set(curves) == {"ema_cross", "rsi_reversion"}
    for sid, curve in curves.items():
        assert curve["currency"] == "USD" and curve["start"] == 10000
        times = [ts for ts, _ in curve["points"]]
        assert len(times) > 10 and times == sorted(set(times))
        assert curve["points"][-1][1] == status[sid]["equity"]


def test_a_curve_takes_a_point_at_every_candle_a_strategy_handles_even_in_a_burst(traded: Served) -> None:
    before = traded.get("/api/v1/strategies/rsi_reversion/equity?points=2000").body["strategies"]["rsi_reversion"]["points"]
    handled = traded.ctl("metrics")["strategies"]["rsi_reversion"]["candles"]
    # Sixty candles published at once: the strategy handles them after they were all announced.
    step = traded.daemon.step(60)
    after = traded.get("/api/v1/strategies/rsi_reversion/equity?points=2000").body["strategies"]["rsi_reversion"]["points"]
    count = traded.ctl("metrics")["strategies"]["rsi_reversion"]["candles"] - handled
    assert count >= 12  # its 5m candles among sixty 1m ones (and 1h ones of its filter)
    new = [ts for ts, _ in after if ts > before[-1][0]]
    assert step.last_close is not None
    five_minute_closes = list(range(before[-1][0] + 5 * MINUTE, step.last_close + 1, 5 * MINUTE))
    assert len(five_minute_closes) >= 12 and set(five_minute_closes) <= set(new)
    assert after[-1][1] == traded.ctl("status")["strategies"]["rsi_reversion"]["equity"]


def test_points_bounds_each_curve_keeping_its_ends(traded: Served) -> None:
    whole = traded.get("/api/v1/strategies/rsi_reversion/equity?points=2000").body["strategies"]["rsi_reversion"]["points"]
    few = traded.get("/api/v1/strategies/rsi_reversion/equity?points=10").body["strategies"]["rsi_reversion"]["points"]
    assert len(whole) > 10 >= len(few) >= 5
    assert few[0] == whole[0] and few[-1] == whole[-1] and all(point in whole for point in few)
    for bad in ("points=1", "points=2001", "points=x"):
        reply = traded.get(f"/api/v1/equity?{bad}")
        assert reply.status == 400 and reply.error[0] == "bad_args" and "points" in reply.error[1]


def test_equity_is_the_sockets_equity_command(traded: Served) -> None:
    assert traded.get("/api/v1/strategies/ema_cross/equity").body == traded.ctl("equity", {"id": "ema_cross"})


# --- candles -------------------------------------------------------------------------------------


def _recorded(frame_ms: int, until_ms: int) -> dict[int, list[float]]:
    """The recorded 1m candles aggregated to `frame_ms` buckets, opened before `until_ms`: {open ts: [open, high, low, close, volume]}."""
    buckets: dict[int, list[float]] = {}
    with BTC_1M.open() as handle:
        for row in csv.DictReader(handle):
            ts = int(row["ts_ms"])
            if ts >= until_ms:
                break
            o, h, low, c, v = (float(row[k]) for k in ("open", "high", "low", "close", "volume"))
            start = ts - ts % frame_ms
            bucket = buckets.get(start)
            if bucket is None:
                buckets[start] = [o, h, low, c, v]
            else:
                bucket[1], bucket[2], bucket[3] = max(bucket[1], h), min(bucket[2], low), c
                bucket[4] += v
    return buckets


def _ema(closes: list[float], period: int) -> list[float | None]:
    """The EMA seeded with the mean of the first `period` closes, a = 2 / (period + 1)."""
    out: list[float | None] = []
    a = 2.0 / (period + 1)
    value: float | None = None
    for i, close in enumerate(closes):
        if i + 1 < period:
            out.append(None)
            continue
        value = sum(closes[: period]) / period if value is None else a * close + (1 - a) * value
        out.append(value)
    return out


def test_candles_are_the_recorded_ones_aggregated_with_the_strategys_emas_over_them(traded: Served) -> None:
    chart = traded.get("/api/v1/strategies/ema_cross/candles?limit=5000").body
    assert (chart["id"], chart["symbol"], chart["timeframe"], chart["timeframe_ms"]) == ("ema_cross", "BTC/USD", "15m", 15 * MINUTE)
    candles = chart["candles"]
    assert len(candles) > 100
    recorded = _recorded(15 * MINUTE, candles[-1][0] + 15 * MINUTE)
    for ts, *ohlcv in candles:
        assert ohlcv[:4] == recorded[ts][:4] and ohlcv[4] == pytest.approx(recorded[ts][4], rel=1e-9)
    assert [c[0] for c in candles] == sorted(c[0] for c in candles)
    series = {item["key"]: item for item in chart["indicators"]}
    assert set(series) == {"ema(period=12,source=close)", "ema(period=26,source=close)"}
    closes = [c[4] for c in candles]
    for period in (12, 26):
        item = series[f"ema(period={period},source=close)"]
        assert item["name"] == "ema" and item["overlay"] is True and set(item["series"]) == {"value"}
        values, expected = item["series"]["value"], _ema(closes, period)
        assert [v is None for v in values] == [e is None for e in expected] and values[period - 2] is None and values[period - 1] is not None
        assert [v for v in values if v is not None] == pytest.approx([e for e in expected if e is not None], rel=1e-12)


def test_a_limit_gives_the_newest_candles_and_their_values(traded: Served) -> None:
    whole = traded.get("/api/v1/strategies/ema_cross/candles?limit=5000").body
    tail = traded.get("/api/v1/strategies/ema_cross/candles?limit=7").body
    assert tail["candles"] == whole["candles"][-7:]
    assert [i["series"]["value"] for i in tail["indicators"]] == [i["series"]["value"][-7:] for i in whole["indicators"]]


def test_new_candles_extend_the_chart(traded: Served) -> None:
    before = traded.get("/api/v1/strategies/rsi_reversion/candles?limit=5000").body
    traded.daemon.step(30)
    after = traded.get("/api/v1/strategies/rsi_reversion/candles?limit=5000").body
    new = [c for c in after["candles"] if c[0] > before["candles"][-1][0]]
    assert len(new) >= 5  # 5m candles out of 30 1m ones
    recorded = _recorded(5 * MINUTE, new[-1][0] + 5 * MINUTE)
    assert [c[1:5] for c in new] == [recorded[c[0]][:4] for c in new]
    # The values before carry on, computed on from where they were (the same indicator, fed on).
    shift = len(before["candles"]) + len(new) - len(after["candles"])
    for old, now in zip(before["indicators"], after["indicators"], strict=True):
        assert old["key"] == now["key"]
        assert now["series"]["value"][: len(before["candles"]) - shift] == old["series"]["value"][shift:]


def test_another_stream_of_the_strategy_has_its_indicators(traded: Served) -> None:
    chart = traded.get("/api/v1/strategies/rsi_reversion/candles?timeframe=1h&limit=50").body
    assert chart["timeframe"] == "1h" and len(chart["candles"]) == 50
    assert [(i["key"], i["overlay"]) for i in chart["indicators"]] == [("ema(period=50,source=close)", True)]
    five = traded.get("/api/v1/strategies/rsi_reversion/candles?limit=50").body
    assert [(i["name"], i["overlay"]) for i in five["indicators"]] == [("rsi", False)]


@pytest.mark.parametrize(
    ("query", "phrase"),
    [
        ("timeframe=4h", "does not watch BTC/USD 4h (its streams: BTC/USD 15m)"),
        ("symbol=ETH/BTC", "does not watch ETH/BTC 15m"),
        ("limit=0", "limit"),
        ("limit=5001", "limit"),
    ],
)
def test_bad_candles_queries_are_400_bad_args(traded: Served, query: str, phrase: str) -> None:
    reply = traded.get(f"/api/v1/strategies/ema_cross/candles?{query}")
    assert reply.status == 400
    code, message = reply.error
    assert code == "bad_args" and phrase in message, message


def test_after_a_restart_a_curve_starts_with_the_journalled_days(tmp_path: Any) -> None:
    import orjson

    from tests.http.test_api import _serving

    http = {"listen": "127.0.0.1:0", "token_env": TOKEN_ENV}
    with _serving(tmp_path, http) as first:
        first.daemon.step_until(lambda: len(journal_rows(tmp_path, "SELECT day FROM equity_daily WHERE strategy_id = 'ema_cross'")) >= 2, "two days", candles=500)
        first.daemon.step_until(lambda: journal_rows(tmp_path, "SELECT id FROM trades"), "a trade", candles=250)
    days = [(ts, orjson.loads(snapshot)["equity"]) for ts, snapshot in journal_rows(tmp_path, "SELECT ts, snapshot FROM equity_daily WHERE strategy_id = 'ema_cross' ORDER BY day")]
    trades_before = len(journal_rows(tmp_path, "SELECT id FROM trades"))
    assert trades_before > 0
    with _serving(tmp_path, http) as again:
        again.daemon.step_until(lambda: len(journal_rows(tmp_path, "SELECT id FROM trades")) > trades_before, "a trade after the restart", candles=100)
        points = again.get("/api/v1/strategies/ema_cross/equity?points=2000").body["strategies"]["ema_cross"]["points"]
        counts = again.get("/api/v1/trades?limit=0").body["counts"]
        now = again.ctl("status")["clock_ts"]
    # The days before the restart's day as journalled then (the restart's day goes on being updated by its events).
    resume = days[-1][0]
    earlier = [day for day in days if day[0] // DAY < resume // DAY]
    assert earlier and [tuple(p) for p in points[: len(earlier)]] == earlier
    assert points[len(earlier)][0] >= resume and points[-1][0] > resume
    # The earlier run's trades counted from the journal, this run's as they closed: together the journal's.
    rows = journal_rows(tmp_path, "SELECT strategy_id, exit_ts FROM trades")
    assert counts == {
        sid: {"total": sum(1 for s, _ in rows if s == sid), "today": sum(1 for s, ts in rows if s == sid and ts >= now - now % DAY)}
        for sid in ("ema_cross", "rsi_reversion")
    }


def test_bot_ctl_trades_pages_through_the_same_trades(traded: Served) -> None:
    import orjson

    from tests.control.test_commands import ctl

    newest = traded.get("/api/v1/trades?limit=2").body
    done = ctl(traded.daemon.socket, "trades", "--limit", "2")
    assert done.returncode == 0 and done.stderr == "", done
    for trade in newest["trades"]:
        assert f" {trade['n']} " in done.stdout and trade["exit_reason"] in done.stdout
    counts = ", ".join(f"{sid} {c['total']} ({c['today']} today)" for sid, c in newest["counts"].items())
    assert f"closed trades: {counts}" in done.stdout
    assert f"older trades: --before {newest['next']}" in done.stdout
    older = ctl(traded.daemon.socket, "--json", "trades", "ema_cross", "--limit", "2", "--before", str(newest["next"]))
    assert orjson.loads(older.stdout)["result"] == traded.get(f"/api/v1/strategies/ema_cross/trades?limit=2&before={newest['next']}").body
