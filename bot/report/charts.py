"""The page's plotly figures (equity overlay per currency, equity and drawdown per strategy) as JSON for Plotly.newPlot."""
from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

from bot.config.currency import group_label, money_decimals
from bot.report.summary import StrategySummary

_LAYOUT: dict[str, Any] = {
    # The bare template: the default one repeats ~10 KB of styling in every figure.
    "template": "none",
    "height": 300,
    "margin": {"l": 70, "r": 20, "t": 40, "b": 40},
    "xaxis": {"type": "date", "showgrid": True, "gridcolor": "#e5e5e5"},
    "yaxis": {"showgrid": True, "gridcolor": "#e5e5e5", "zeroline": False},
    "hovermode": "x unified",
}


def _label(strategy_id: str) -> str:
    # Plotly renders a subset of HTML in trace names and titles, so text from files is escaped.
    return escape(strategy_id)


def _figure(traces: Sequence[go.Scatter], title: str, y_title: str, **layout: Any) -> go.Figure:
    figure = go.Figure(data=list(traces))
    figure.update_layout(_LAYOUT, title={"text": escape(title), "x": 0.01}, yaxis_title=y_title, **layout)
    return figure


def by_currency(summaries: Sequence[StrategySummary]) -> dict[str, list[StrategySummary]]:
    """The summaries grouped by their quote currency, in the order the currencies first appear."""
    groups: dict[str, list[StrategySummary]] = {}
    for summary in summaries:
        groups.setdefault(summary.run.facts.currency, []).append(summary)
    return groups


def _rounded(values: Sequence[float], balance: float) -> list[float]:
    # Enough digits for the account's scale: 10 BTC plotted to cents would be a staircase.
    places = money_decimals(balance)
    return [round(v, places) for v in values]


def _unit(currency: str, symbols: Sequence[str]) -> str:
    # An axis title in the group's money: its code, or the quote of a symbol not written BASE/QUOTE.
    return f"equity ({escape(currency if currency not in symbols else f'{currency} quote, unknown')})"


def overlay_figure(currency: str, summaries: Sequence[StrategySummary]) -> go.Figure:
    """The equity curves of the strategies trading in one currency group, on one chart and one axis of its money."""
    traces = [
        go.Scatter(x=s.run.equity.ts, y=_rounded(s.run.equity.equity, s.run.facts.starting_balance), name=_label(s.run.strategy_id), mode="lines")
        for s in summaries
    ]
    symbols = [s.run.facts.symbol for s in summaries]
    title = f"Equity in {group_label(currency, symbols)}, all {currency} strategies"
    return _figure(traces, title, _unit(currency, symbols), height=380, showlegend=True)


def equity_figure(summary: StrategySummary) -> go.Figure:
    """One strategy's equity curve, in its currency."""
    run = summary.run
    trace = go.Scatter(x=run.equity.ts, y=_rounded(run.equity.equity, run.facts.starting_balance), name=_label(run.strategy_id), mode="lines")
    return _figure([trace], f"{run.strategy_id}: equity", _unit(run.facts.currency, [run.facts.symbol]), showlegend=False)


def drawdown_figure(summary: StrategySummary) -> go.Figure:
    """One strategy's drawdown below its running peak, in percent."""
    run = summary.run
    trace = go.Scatter(
        x=run.equity.ts,
        y=[round(v, 3) for v in summary.drawdowns_pct],
        name=_label(f"{run.strategy_id} drawdown"),
        mode="lines",
        fill="tozeroy",
        line={"color": "#c0392b"},
    )
    return _figure([trace], f"{run.strategy_id}: drawdown", "% below peak", showlegend=False)


def figure_json(figure: go.Figure) -> str:
    """The figure as JSON that is safe inside a <script> element (no '<' left to close it)."""
    return str(pio.to_json(figure, validate=False)).replace("<", "\\u003c")
