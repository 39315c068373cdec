"""The page's plotly figures (equity overlay, equity and drawdown per strategy) as JSON for Plotly.newPlot."""
from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

import plotly.graph_objects as go  # type: ignore[import-untyped]
import plotly.io as pio  # type: ignore[import-untyped]

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


def overlay_figure(summaries: Sequence[StrategySummary]) -> go.Figure:
    """Every strategy's equity curve on one chart."""
    traces = [
        go.Scatter(x=s.run.equity.ts, y=[round(v, 2) for v in s.run.equity.equity], name=_label(s.run.strategy_id), mode="lines")
        for s in summaries
    ]
    return _figure(traces, "Equity, all strategies", "equity", height=380, showlegend=True)


def equity_figure(summary: StrategySummary) -> go.Figure:
    """One strategy's equity curve."""
    run = summary.run
    trace = go.Scatter(x=run.equity.ts, y=[round(v, 2) for v in run.equity.equity], name=_label(run.strategy_id), mode="lines")
    return _figure([trace], f"{run.strategy_id}: equity", "equity", showlegend=False)


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
