"""The `bot ctl` command line: argument parsing, finding the daemon, the request, and what is printed."""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from pathlib import Path
from typing import Any, TextIO, TypeVar, overload

import anyio
import orjson
from rich.console import Console

from bot.control.client import ControlClient, DaemonNotRunning, DaemonUnreachable
from bot.control.ctl_output import NEEDS_BEFORE, print_error, print_event, print_following, print_problems, print_result
from bot.control.event_reader import Received, Unreadable, read_message
from bot.control.locate import SOCKET_ENV, NoSocket, find_socket

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3
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


def _request(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    cmd = args.ctl_command
    if cmd in ("status", "strategies", "metrics", "shutdown", "risk-reset"):
        return cmd, {}
    if cmd == "positions":
        return cmd, {} if args.id is None else {"id": args.id}
    if cmd == "validate":
        return cmd, {"file": args.file}
    if cmd == "load":
        return cmd, {"file": args.file, "activate": args.activate}
    if cmd == "unload":
        return cmd, {"id": args.id, "close_positions": args.close}
    if cmd in ("activate", "reload"):
        return cmd, {"id": args.id}
    if cmd == "deactivate":
        return cmd, {"id": args.id, "policy": args.policy}
    if cmd == "switch":
        return cmd, {"from": args.source, "to": args.target, "policy": args.policy}
    if cmd == "set":
        try:
            value: Any = orjson.loads(args.value)
        except orjson.JSONDecodeError:
            value = args.value
        return cmd, {"id": args.id, "path": args.path, "value": value}
    if cmd == "add-symbol":
        extra = {} if args.timeframe is None else {"timeframe": args.timeframe}
        return cmd, {"symbol": args.symbol, "file": args.file, **extra}
    if cmd == "remove-symbol":
        return cmd, {"symbol": args.symbol}
    if cmd == "events":
        request: dict[str, Any] = {}
        if args.strategy_id:
            request["strategy_id"] = args.strategy_id
        if args.types:
            request["types"] = args.types
        return cmd, request
    raise AssertionError(f"unhandled ctl command {cmd}")


async def _call(args: argparse.Namespace, socket_path: Path, console: Console, err: Console) -> int:
    cmd, request_args = _request(args)
    async with ControlClient(socket_path) as client:
        if cmd == "events":
            return await follow_events(client.events(request_args), request_args, args.json, console, err, sys.stdout)
        # The line saying what changed names the state before it.
        before = await client.call("status") if cmd in NEEDS_BEFORE and not args.json else None
        reply = await client.call(cmd, request_args)
    if args.json:
        print(orjson.dumps(reply).decode())
        ok = reply["ok"] and not (cmd == "validate" and not reply["result"].get("valid"))
        return EXIT_OK if ok else EXIT_REFUSED
    if not reply["ok"]:
        print_error(err, reply["error"]["message"])
        return EXIT_REFUSED
    result = reply["result"]
    if cmd == "validate" and not result.get("valid"):
        print_problems(err, result["problems"])
        return EXIT_REFUSED
    print_result(console, cmd, request_args, result, before["result"] if before is not None and before["ok"] else None)
    return EXIT_OK


async def follow_events(messages: AsyncIterable[Any], request: dict[str, Any], as_json: bool, console: Console, err: Console, out: TextIO) -> int:
    """Print an events stream, each event decoded into its typed event first; return the exit code.

    `--json` prints the wire message as received, to `out`. A message that does not fit its event
    type is named on stderr and skipped, and the stream goes on: one odd event must not blind an
    operator to the ones after it; the exit code (1) still says the stream was not read whole. A
    message of another format version stops at once (exit 3, as for anything on the socket this
    bot ctl cannot talk to): every message after it is of that version too.
    """
    skipped = False
    async for number, message in _numbered(messages):
        item = read_message(message, number)
        if isinstance(item, Received):
            if as_json:
                print(orjson.dumps(item.wire).decode(), file=out, flush=True)
            else:
                print_event(console, item.event)
        elif isinstance(item, Unreadable):
            if item.other_version:
                print_error(err, f"{item.problem}: the daemon runs another version of the bot; use its own bot ctl")
                return EXIT_NOT_RUNNING
            print_error(err, f"skipped {item.problem}")
            skipped = True
        elif not item.ok:
            if as_json:
                print(orjson.dumps(item.message).decode(), file=out, flush=True)
            else:
                print_error(err, item.message["error"]["message"])
            return EXIT_REFUSED
        elif not as_json:
            print_following(err, request)
    return EXIT_REFUSED if skipped else EXIT_OK


async def _numbered(messages: AsyncIterable[Any]) -> AsyncIterator[tuple[int, Any]]:
    number = 0
    async for message in messages:
        number += 1
        yield number, message


def run_ctl(args: argparse.Namespace) -> int:
    """Run `bot ctl`; return the exit code (0 ok, 1 refused, 2 usage, 3 no daemon answers on the socket)."""
    err = Console(stderr=True)
    console = Console(width=None if sys.stdout.isatty() else 160)
    try:
        socket_path = find_socket(args.socket, args.config, os.environ, Path.cwd())
    except NoSocket as exc:
        print_error(err, str(exc))
        return EXIT_USAGE
    try:
        return anyio.run(_call, args, socket_path, console, err)
    except (DaemonNotRunning, DaemonUnreachable) as exc:
        # Any failure to talk to the daemon: one line, exit 3, never a traceback.
        print_error(err, str(exc))
        return EXIT_NOT_RUNNING
    except KeyboardInterrupt:
        return EXIT_OK
