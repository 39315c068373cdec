"""The `bot ctl` arguments: its parser and subcommands, apart from the client so that `bot --help` imports none of it."""
from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final, TypeVar, overload

SOCKET_ENV: Final[str] = "BOT_SOCKET"
POLICIES = ("manage", "close", "freeze")
SET_DESCRIPTION = """\
Change one field of a loaded strategy, validated as its strategy file would be (a strategy
module's params by its own Params); every change survives a restart. quantity, exits, fees,
fill, risk, description and enabled (and a declarative strategy's thresholds) apply at once
and keep positions and indicators. params (and a declarative strategy's analyzers and
filters) rebuild the strategy in place: its positions, orders and balance stay, and its new
indicators are warmed from the candle history (an active strategy acts on the very next
candle; a timeframe it did not read before has only what the base history makes of it, and set
says when the strategy is not warm); if it does not build with the new value, nothing changes. symbol, timeframe,
module, class and starting_balance are refused: change them in the strategy file, then
unload and load it."""
SET_EXAMPLES = """\
examples (the default config):
  bot ctl set ema_cross quantity 0.2
  bot ctl set momentum exits.stop_loss_pct 5
  bot ctl set scalping risk.max_open_positions 2
  bot ctl set hybrid fees.taker_bps 1
  bot ctl set trend_mtf params.fast 8
  bot ctl set pairs_arbitrage params.entry_z 2.5
  bot ctl set mean_reversion exits.take_profit '[{"pct": 1, "close_pct": 100}]'"""


_N = TypeVar("_N")


class _CtlParser(argparse.ArgumentParser):
    """A `bot ctl` subcommand's parser: arguments it does not know are its own error, under its own name (`bot ctl status`)."""

    # argparse's own three overloads, kept so the override stays a true subtype.
    @overload
    def parse_known_args(self, args: Iterable[str] | None = None, namespace: None = None) -> tuple[argparse.Namespace, list[str]]: ...
    @overload
    def parse_known_args(self, args: Iterable[str] | None, namespace: _N) -> tuple[_N, list[str]]: ...
    @overload
    def parse_known_args(self, *, namespace: _N) -> tuple[_N, list[str]]: ...

    def parse_known_args(self, args: Iterable[str] | None = None, namespace: Any = None) -> tuple[Any, list[str]]:
        parsed, extra = super().parse_known_args(args, namespace)
        if extra:
            self.error(f"unrecognized arguments: {' '.join(extra)}")
        return parsed, extra


def _common(suppress: bool) -> argparse.ArgumentParser:
    """--socket, --config and --json: taken before the subcommand and after it (there they do not reset what came before)."""
    default: Any = argparse.SUPPRESS if suppress else None
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--socket", type=Path, default=default, help=f"control socket path (first choice; then ${SOCKET_ENV}, then --config)")
    common.add_argument("--config", type=Path, default=default, help="config whose control.socket to use (default: ./config.json)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS if suppress else False, help="print the raw JSON reply")
    return common


def add_ctl_parser(commands: Any) -> None:
    """Register `bot ctl` and its subcommands."""
    ctl = commands.add_parser(
        "ctl",
        help="steer a running daemon through its control socket",
        parents=[_common(suppress=False)],
        description=(
            f"The daemon's socket: --socket, else ${SOCKET_ENV}, else control.socket of --config, else of ./config.json"
            f" (--config with a ${SOCKET_ENV} naming another socket is refused)."
        ),
    )
    sub = ctl.add_subparsers(dest="ctl_command", required=True, metavar="CMD", parser_class=_CtlParser)
    after = [_common(suppress=True)]
    sub.add_parser("status", help="strategies, health, feed", parents=after)
    sub.add_parser("strategies", help="loaded and available strategies", parents=after)
    sub.add_parser("metrics", help="per-strategy processing figures", parents=after)
    sub.add_parser("shutdown", help="stop the daemon gracefully", parents=after)
    sub.add_parser("risk-reset", help="release the kill switch", parents=after)
    p = sub.add_parser("positions", help="open positions, all or one strategy", parents=after)
    p.add_argument("id", nargs="?")
    p = sub.add_parser("trades", help="closed trades, newest first, all or one strategy", parents=after)
    p.add_argument("id", nargs="?")
    p.add_argument("--limit", type=int, default=20, help="trades shown (default 20, at most 1000)")
    p.add_argument("--before", type=int, metavar="N", help="only trades numbered below N (the next page: the number the last page ends with)")
    p = sub.add_parser("validate", help="check a config or strategy file without applying it", parents=after)
    p.add_argument("file")
    p = sub.add_parser("load", help="load a strategy file (dormant)", parents=after)
    p.add_argument("file")
    p.add_argument("--activate", action="store_true")
    p = sub.add_parser("unload", help="unload a strategy", parents=after)
    p.add_argument("id")
    p.add_argument("--close", action="store_true", help="close its positions at the last price first")
    for name in ("activate", "reload"):
        p = sub.add_parser(name, help=f"{name} a strategy", parents=after)
        p.add_argument("id")
    p = sub.add_parser("deactivate", help="stop a strategy's new entries", parents=after)
    p.add_argument("id")
    p.add_argument("--policy", choices=POLICIES, default="manage")
    p = sub.add_parser("move", help="move a strategy's mind to another worker (cluster placement workers)", parents=after)
    p.add_argument("id")
    p.add_argument("worker")
    p = sub.add_parser("switch", help="deactivate one strategy and activate another in one step", parents=after)
    p.add_argument("source", metavar="FROM")
    p.add_argument("target", metavar="TO")
    p.add_argument("--policy", choices=POLICIES, default="manage")
    p = sub.add_parser(
        "set",
        help="change one field of a loaded strategy (VALUE is JSON, else text)",
        parents=after,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=SET_DESCRIPTION,
        epilog=SET_EXAMPLES,
    )
    p.add_argument("id")
    p.add_argument("path", help="dotted field path, e.g. quantity, exits.stop_loss_pct or fees.taker_bps")
    p.add_argument("value", help="the new value: JSON (0.2, null, [1, 2], {\"pct\": 1}), anything else is text")
    p = sub.add_parser("add-symbol", help="subscribe a symbol mid-session from a recorded candle file", parents=after)
    p.add_argument("symbol")
    p.add_argument("file")
    p.add_argument("--timeframe")
    p = sub.add_parser("remove-symbol", help="stop the feed of a symbol added with add-symbol (no strategy may use it)", parents=after)
    p.add_argument("symbol")
    p = sub.add_parser("events", help="follow the live event stream", parents=after)
    p.add_argument("--strategy", dest="strategy_id")
    p.add_argument("--type", dest="types", action="append", help="event type (repeatable)")
