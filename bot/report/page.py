"""The report page: one self-contained HTML document (plotly.js inlined once, every string from the files escaped)."""
from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

from bot.config.currency import group_label, money_decimals
from bot.fmt import format_price
from bot.report import charts
from bot.report.rundata import RunData, Trade
from bot.report.summary import StrategySummary

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1200px;padding:16px 24px;color:#222}
h1{margin-bottom:4px}h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:36px}
table{border-collapse:collapse;font-size:13px}th,td{padding:4px 8px;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
th{background:#f6f6f6;position:sticky;top:0}td.text,th.text{text-align:left}
.facts,.note{color:#555;font-size:14px}.neg{color:#b03030}.pos{color:#1e7b34}
.scroll{max-height:420px;overflow:auto;border:1px solid #ddd}.chart{width:100%;min-height:300px}
dl.stats{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:6px 16px;font-size:14px}
dl.stats dt{color:#666}dl.stats dd{margin:0 0 6px 0;font-weight:600}
"""

# Plots are drawn from JSON blocks once plotly.js has loaded; a figure that fails to draw
# throws, so a broken page shows up as a page error rather than as a silently empty chart.
_DRAW = """
for (const block of document.querySelectorAll('script[type="application/json"][data-for]')) {
  const figure = JSON.parse(block.textContent);
  Plotly.newPlot(document.getElementById(block.dataset.for), figure.data, figure.layout,
                 {displaylogo: false, responsive: true});
}
"""


def _iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _money(value: float, balance: float) -> str:
    # As many decimals as the account's scale needs: 10 BTC is shown to 0.0001, 10,000 USD to 0.01.
    return f"{value:,.{money_decimals(balance)}f}"


def _price(value: float) -> str:
    # Eight significant digits in plain decimals: 38,525.5 USD, 0.09019899 BTC and 0.0000025 BTC alike.
    return format_price(value, group=True)


def _pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.2f}%" if signed else f"{value:.2f}%"


def _ratio(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "∞" if math.isinf(value) else f"{value:.2f}"


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _signed_class(value: float) -> str:
    return "pos" if value > 0 else "neg" if value < 0 else ""


def _duration(ms: int) -> str:
    hours = ms / 3_600_000
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} hours"


class ReportPage:
    """Renders a run's summaries as one HTML document; the plotly.js source is given, not fetched."""

    def __init__(self, plotly_js: str, max_trade_rows: int = 1000) -> None:
        if "</script" in plotly_js.lower():
            raise ValueError("plotly.js text would close its <script> element")
        self._plotly_js = plotly_js
        self._max_trade_rows = max_trade_rows

    def render(self, data: RunData, summaries: Sequence[StrategySummary], interval_ms: int) -> str:
        """The whole page."""
        title = f"Replay report: {data.run_dir.resolve().name}"
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(title)}</title><style>{_STYLE}</style>",
            f"<script>{self._plotly_js}</script>",
            "</head><body>",
            f"<h1>{escape(title)}</h1>",
            self._facts(data, summaries),
            '<section id="comparison"><h2>Strategies side by side</h2>',
            self._comparison(summaries),
            *self._overlays(summaries),
            "</section>",
            self._method(interval_ms),
        ]
        for index, summary in enumerate(summaries):
            parts.append(self._strategy(index, summary))
        parts.append(f"<script>{_DRAW}</script></body></html>\n")
        return "\n".join(parts)

    def _facts(self, data: RunData, summaries: Sequence[StrategySummary]) -> str:
        replay = data.replay
        first = min(s.run.equity.ts[0] for s in summaries) if summaries else 0
        last = max(s.run.equity.ts[-1] for s in summaries) if summaries else 0
        status = escape(replay.status)
        if replay.error:
            status += f" ({escape(replay.error)})"
        sources = ", ".join(escape(s) for s in replay.sources) or "n/a"
        period = f"{_iso(first)} to {_iso(last)} UTC ({_duration(last - first)})" if summaries else "n/a"
        return (
            f'<p class="facts">Status: <b>{status}</b> · {replay.candles:,} candles · {period}<br>'
            f"Candles: {sources} · Run folder: {escape(str(data.run_dir))}</p>"
        )

    def _overlays(self, summaries: Sequence[StrategySummary]) -> list[str]:
        # Money is never added across currencies, nor drawn on one axis: one chart per currency.
        groups = charts.by_currency(summaries)
        return [
            self._plot(f"overlay-{index}", "overlay", None, charts.figure_json(charts.overlay_figure(currency, group)), currency)
            for index, (currency, group) in enumerate(groups.items())
        ]

    def _comparison(self, summaries: Sequence[StrategySummary]) -> str:
        head = (
            "<tr><th class=text>strategy</th><th class=text>market</th><th class=text>currency</th><th class=text>state</th><th>trades</th><th>win rate</th>"
            "<th>profit factor</th><th>net PnL</th><th>return</th><th>Sharpe</th><th>Sortino</th><th>max drawdown</th>"
            "<th>exposure</th><th>final equity</th></tr>"
        )
        rows = []
        for s in summaries:
            f = s.run.facts
            sid = escape(s.run.strategy_id)
            rows.append(
                f'<tr><td class=text><a href="#s-{sid}">{sid}</a></td><td class=text>{escape(f.symbol)} {escape(f.timeframe)}</td>'
                f"<td class=text>{escape(group_label(f.currency, [f.symbol]))}</td><td class=text>{escape(f.state)}</td><td>{len(s.run.trades):,}</td><td>{_share(s.win_rate)}</td>"
                f"<td>{_ratio(s.profit_factor)}</td><td class={_signed_class(f.net_pnl)}>{_money(f.net_pnl, f.starting_balance)}</td>"
                f"<td class={_signed_class(f.return_pct)}>{_pct(f.return_pct, signed=True)}</td><td>{_ratio(s.sharpe)}</td>"
                f"<td>{_ratio(s.sortino)}</td><td>{_pct(f.max_drawdown_pct)}</td><td>{_share(s.exposure)}</td>"
                f"<td>{_money(f.final_equity, f.starting_balance)}</td></tr>"
            )
        return f'<table class="compare"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'

    def _method(self, interval_ms: int) -> str:
        hours = interval_ms / 3_600_000
        period = "hour" if hours == 1 else f"{hours:g} hours" if hours < 24 else f"{hours / 24:g} day(s)"
        periods = 365 * 86_400_000 / interval_ms
        return (
            '<section id="method"><h2>How the figures are computed</h2><ul class="note">'
            "<li>Each strategy counts its money in its symbol's quote currency (the currency column: USD for BTC/USD, BTC for ETH/BTC). "
            "Amounts in different currencies are never added: the equity curves are drawn one chart per currency. "
            "A symbol not written BASE/QUOTE (BTCUSD) has no known quote currency: its money counts on its own, "
            "shown as BTCUSD (quote unknown).</li>"
            f"<li>Equity is sampled every {escape(period)} of candle close time (equity.csv), plus the start and the end of the run; "
            "a gap in the data longer than 7 days is sampled at its two ends only. "
            "The curves and drawdown charts plot these samples.</li>"
            f"<li><b>Sharpe</b> = mean / sample standard deviation of the simple returns between consecutive samples, per period, "
            f"× √{periods:,.0f} (periods in a 365-day year: crypto trades around the clock); risk-free rate 0. "
            "Each return counts for the time between its two samples: one spanning w periods (after a long gap) weighs w, "
            "mean = Σr / Σw and variance = Σ (r − mean·w)² / w / (n − 1); on the grid every w is 1. "
            "<b>Sortino</b> = the same mean / downside deviation √(Σ min(r, 0)² / w / n), × the same factor "
            "(n returns; on the grid the plain √(Σ min(r, 0)² / n)). "
            "Partial periods at the start and end are left out; n/a when undefined (under two returns, no variation, no losing period).</li>"
            "<li><b>Max drawdown</b> is the replay's own figure (report.json), tracked at every mark of the portfolio, so it can be deeper "
            "than the sampled drawdown chart shows.</li>"
            "<li><b>Win rate</b> = share of closed trades with a positive net PnL (after fees). <b>Profit factor</b> = gross profit / "
            "gross loss of closed trades (∞ with no losing trade).</li>"
            "<li><b>Exposure</b> = share of the run (first sample to last) with at least one position open: from the trades' entry and "
            "exit times; a position still open at the end counts from the first sample that shows it.</li>"
            "</ul></section>"
        )

    def _strategy(self, index: int, summary: StrategySummary) -> str:
        run = summary.run
        f = run.facts
        sid = escape(run.strategy_id)
        balance = f.starting_balance
        stats = [
            ("market", f"{escape(f.symbol)} {escape(f.timeframe)}"),
            ("state", escape(f.state)),
            ("currency", escape(group_label(f.currency, [f.symbol]))),
            ("starting balance", _money(balance, balance)),
            ("final equity", _money(f.final_equity, balance)),
            ("return", _pct(f.return_pct, signed=True)),
            ("net PnL (after fees)", _money(f.net_pnl, balance)),
            ("fees", _money(f.fees, balance)),
            ("trades", f"{len(run.trades):,}"),
            ("win rate", _share(summary.win_rate)),
            ("profit factor", _ratio(summary.profit_factor)),
            ("Sharpe (annualised)", _ratio(summary.sharpe)),
            ("Sortino (annualised)", _ratio(summary.sortino)),
            ("max drawdown", f"{_pct(f.max_drawdown_pct)} ({_money(f.max_drawdown, balance)})"),
            ("exposure time", _share(summary.exposure)),
            ("open positions at end", str(f.open_positions)),
        ]
        error = f'<p class="neg">Failed: {escape(f.last_error)}</p>' if f.last_error else ""
        return "\n".join(
            [
                f'<section class="strategy" id="s-{sid}" data-strategy="{sid}"><h2>{sid}</h2>{error}',
                '<dl class="stats">' + "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in stats) + "</dl>",
                self._plot(f"equity-{index}", "equity", run.strategy_id, charts.figure_json(charts.equity_figure(summary))),
                self._plot(f"drawdown-{index}", "drawdown", run.strategy_id, charts.figure_json(charts.drawdown_figure(summary))),
                self._trades(run.trades, f.starting_balance),
                "</section>",
            ]
        )

    def _plot(self, element_id: str, kind: str, strategy_id: str | None, figure_json: str, currency: str | None = None) -> str:
        owner = f' data-strategy="{escape(strategy_id)}"' if strategy_id is not None else ""
        owner += f' data-currency="{escape(currency)}"' if currency is not None else ""
        return (
            f'<div class="chart" id="{element_id}" data-kind="{kind}"{owner}></div>'
            f'<script type="application/json" data-for="{element_id}">{figure_json}</script>'
        )

    def _trades(self, trades: Sequence[Trade], balance: float) -> str:
        if not trades:
            return '<p class="note">No closed trades.</p>'
        shown = trades[: self._max_trade_rows]
        note = (
            f"Closed trades: showing the first {len(shown):,} of {len(trades):,}; all of them are in trades.csv."
            if len(shown) < len(trades)
            else f"Closed trades: {len(trades):,}."
        )
        head = (
            "<tr><th>#</th><th class=text>symbol</th><th class=text>side</th><th>quantity</th><th class=text>entry (UTC)</th>"
            "<th>entry price</th><th class=text>exit (UTC)</th><th>exit price</th><th>net PnL</th><th>fees</th>"
            "<th class=text>exit reason</th><th class=text>position</th></tr>"
        )
        rows = [
            f"<tr><td>{i}</td><td class=text>{escape(t.symbol)}</td><td class=text>{escape(t.side)}</td><td>{t.quantity:g}</td>"
            f"<td class=text>{_iso(t.entry_ms)}</td><td>{_price(t.entry_price)}</td><td class=text>{_iso(t.exit_ms)}</td>"
            f"<td>{_price(t.exit_price)}</td><td class={_signed_class(t.pnl)}>{_money(t.pnl, balance)}</td><td>{_money(t.fees, balance)}</td>"
            f"<td class=text>{escape(t.exit_reason)}</td><td class=text>{escape(t.position_id)}</td></tr>"
            for i, t in enumerate(shown, 1)
        ]
        return f'<p class="note">{note}</p><div class="scroll"><table class="trades"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table></div>'
