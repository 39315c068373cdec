"""A sweep's result: its variants ranked by one figure of the replay report, as rows for the table and sweep.csv."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.sweep.grid import Axis, SweepInputError, Variant, value_text
from bot.sweep.sweep_args import RANK_FIGURES

# Report figures a sweep ranks by, and whether more is better (drawdown and fees: less is).
# The figures every row shows, after the grid's values (the ranked one among them, or first when it is not).
SHOWN = ("net_pnl", "return_pct", "trades", "win_rate", "max_drawdown_pct", "fees", "final_equity")


def check_rank(figure: str) -> None:
    """SweepInputError for a figure a sweep cannot rank by."""
    if figure not in RANK_FIGURES:
        raise SweepInputError(f"--rank {figure}: not a figure to rank by (one of {', '.join(RANK_FIGURES)})")


@dataclass(frozen=True, slots=True)
class Ranked:
    """The ranked table: column names and one row per variant, best first."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]


def rank(variants: list[Variant], axes: list[Axis], strategies: dict[str, dict[str, Any]], figure: str) -> Ranked:
    """Rank the variants by `figure` of their reports (best first; ties keep the grid's order)."""
    check_rank(figure)
    more_is_better = RANK_FIGURES[figure]
    figures = (figure, *(name for name in SHOWN if name != figure))
    order = sorted(
        range(len(variants)),
        key=lambda i: -strategies[variants[i].spec.id][figure] if more_is_better else strategies[variants[i].spec.id][figure],
    )
    rows = []
    for place, index in enumerate(order, start=1):
        variant = variants[index]
        report = strategies[variant.spec.id]
        rows.append((place, variant.spec.id, *variant.values, *(report[name] for name in figures), report["state"]))
    return Ranked(("rank", "strategy_id", *(axis.name for axis in axes), *figures, "state"), tuple(rows))


def write_csv(ranked: Ranked, path: Path) -> None:
    """sweep.csv: the columns, then the rows best first; numbers as repr writes them (exact), grid values as in the ids."""
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(ranked.columns)
        for row in ranked.rows:
            writer.writerow([_cell(value) for value in row])


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return value_text(value)
