"""`bot report`: read a replay's output folder, compute the metrics and write the HTML page."""
from __future__ import annotations

from pathlib import Path

import plotly.offline

from bot.errors import RunFileError
from bot.report.page import ReportPage
from bot.report.rundata import load_run
from bot.report.summary import interval_of, summarise


def write_report(run_dir: Path, out: Path | None = None, max_trade_rows: int = 1000) -> Path:
    """Write the report of the replay in `run_dir` to `out` (default run_dir/report.html); return its path."""
    data = load_run(run_dir)
    interval = interval_of(data)
    summaries = [summarise(run, interval) for run in data.strategies.values()]
    # plotly.js ships inside the plotly package: inlined, the page needs no network.
    page = ReportPage(plotly.offline.get_plotlyjs(), max_trade_rows).render(data, summaries, interval)
    target = out if out is not None else run_dir / "report.html"
    try:
        target.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise RunFileError(str(target), None, f"cannot write the report: {exc.strerror or exc}") from None
    return target
