"""`bot sweep`'s options: a module of its own, so `bot --help` builds the parser without the sweep's code."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.log_options import add_log_options

# The report figures a sweep ranks by, each with whether more is better.
RANK_FIGURES: dict[str, bool] = {
    "net_pnl": True,
    "return_pct": True,
    "realised_pnl": True,
    "final_equity": True,
    "win_rate": True,
    "trades": True,
    "wins": True,
    "max_drawdown": False,
    "max_drawdown_pct": False,
    "fees": False,
}


def add_sweep_parser(commands: Any) -> None:
    """The `sweep` subcommand's options."""
    sweep = commands.add_parser(
        "sweep",
        help="replay one strategy over a grid of parameter values and rank the variants",
        description="Replay variants of one strategy (every combination of the --grid values) and rank them by a report figure.",
    )
    sweep.add_argument("--config", default="config.json", type=Path, help="base configuration (default: config.json)")
    sweep.add_argument("--strategy", required=True, metavar="ID", help="the strategy to vary (its id in the config)")
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="PATH=V1,V2,...",
        help="a field of the strategy's file and its values, such as params.fast=8,10,12 or exits.stop_loss_pct=1,2 (repeatable: "
        "every combination is a variant, named like ID.fast-8.slow-26)",
    )
    sweep.add_argument("--rank", default="net_pnl", metavar="FIGURE", help=f"the report figure to rank by (default net_pnl; one of {', '.join(RANK_FIGURES)})")
    sweep.add_argument("--jobs", type=int, default=1, metavar="N", help="replay the variants in N processes (default 1)")
    sweep.add_argument("--out", default=Path("runs/sweep"), type=Path, help="output folder: the replay's outputs and sweep.csv (default: runs/sweep)")
    sweep.add_argument("--from", dest="start", metavar="WHEN", help="trade from the first candle at or after WHEN (as bot replay --from)")
    sweep.add_argument("--to", dest="end", metavar="WHEN", help="stop before the first candle at or after WHEN (as bot replay --to)")
    add_log_options(sweep)
