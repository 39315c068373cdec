"""The `bot ctl` command line: argument parsing, the request, and human-readable output."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import anyio
import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bot.config.loader import load_config

from bot.control.client import ControlClient, DaemonNotRunning, DaemonUnreachable
from bot.errors import ConfigError

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3
POLICIES = ("manage", "close", "freeze")


def add_ctl_parser(commands: Any) -> None:
    """Register `bot ctl` and its subcommands."""
    ctl = commands.add_parser("ctl", help="steer a running daemon through its control socket")
    ctl.add_argument("--config", default="config.json", type=Path, help="config whose control.socket to use (default: config.json)")
    ctl.add_argument("--socket", type=Path, help="control socket path (overrides --config)")
    ctl.add_argument("--json", action="store_true", help="print the raw JSON reply")
    sub = ctl.add_subparsers(dest="ctl_command", required=True, metavar="CMD")
    sub.add_parser("status", help="strategies, health, feed")
    sub.add_parser("strategies", help="loaded and available strategies")
    sub.add_parser("metrics", help="per-strategy processing figures")
    sub.add_parser("shutdown", help="stop the daemon gracefully")
    sub.add_parser("risk-reset", help="release the kill switch")
    p = sub.add_parser("positions", help="open positions, all or one strategy")
    p.add_argument("id", nargs="?")
    p = sub.add_parser("validate", help="check a config or strategy file without applying it")
    p.add_argument("file")
    p = sub.add_parser("load", help="load a strategy file (dormant)")
    p.add_argument("file")
    p.add_argument("--activate", action="store_true")
    p = sub.add_parser("unload", help="unload a strategy")
    p.add_argument("id")
    p.add_argument("--close", action="store_true", help="close its positions at the last price first")
    for name in ("activate", "reload"):
        p = sub.add_parser(name, help=f"{name} a strategy")
        p.add_argument("id")
    p = sub.add_parser("deactivate", help="stop a strategy's new entries")
    p.add_argument("id")
    p.add_argument("--policy", choices=POLICIES, default="manage")
    p = sub.add_parser("switch", help="deactivate one strategy and activate another in one step")
    p.add_argument("source", metavar="FROM")
    p.add_argument("target", metavar="TO")
    p.add_argument("--policy", choices=POLICIES, default="manage")
    p = sub.add_parser("set", help="change one runtime parameter (VALUE is JSON, else text)")
    p.add_argument("id")
    p.add_argument("path", help="dotted field path, e.g. quantity or exits.stop_loss_pct")
    p.add_argument("value")
    p = sub.add_parser("add-symbol", help="subscribe a symbol mid-session from a recorded candle file")
    p.add_argument("symbol")
    p.add_argument("file")
    p.add_argument("--timeframe")
    p = sub.add_parser("remove-symbol", help="stop the feed of a symbol added with add-symbol (no strategy may use it)")
    p.add_argument("symbol")
    p = sub.add_parser("events", help="follow the live event stream")
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


def _socket(args: argparse.Namespace) -> Path:
    if args.socket is not None:
        return Path(args.socket)
    loaded = load_config(args.config)
    return (loaded.base_dir / loaded.bot.control.socket).resolve()


def _print_status(console: Console, result: dict[str, Any]) -> None:
    console.print(
        f"health [bold]{result['health']}[/]"
        + (f" ({escape('; '.join(result['problems']))})" if result["problems"] else "")
        + f"  uptime {result['uptime_s']:.0f}s  feed {result['feed']['state']} ({result['feed']['candles']:,} candles)"
        + ("  [bold red]KILL SWITCH[/]" if result["kill_switch"] else ""),
        highlight=False,
    )
    table = Table()
    for column in ("strategy", "state", "symbols", "tf", "warm", "positions", "equity", "last error"):
        table.add_column(column)
    for sid, s in result["strategies"].items():
        state = s["state"] + (f" ({s['policy']})" if s["policy"] else "")
        warm = "yes" if s["warm"] else "no"
        table.add_row(sid, state, ", ".join(s["symbols"]), s["timeframe"], warm, str(s["positions"]), f"{s['equity']:,.2f}", escape(s["last_error"] or ""))
    console.print(table)
    added = result.get("added_symbols") or {}
    if added:
        listed = ", ".join(f"{symbol} {entry['timeframe']} ({entry['file']})" for symbol, entry in added.items())
        console.print(f"added symbols: {escape(listed)}", highlight=False, soft_wrap=True)


def _print_metrics(console: Console, result: dict[str, Any]) -> None:
    table = Table(title=f"slowest: {result['slowest']}")
    columns = ("candles", "avg_us", "p99_us", "max_us", "inbox_depth", "overruns", "errors", "actions_done", "actions_failed")
    table.add_column("strategy")
    for column in columns:
        table.add_column(column, justify="right")
    for sid, m in result["strategies"].items():
        table.add_row(sid, *(f"{m.get(c, 0):,.1f}" if isinstance(m.get(c), float) else f"{m.get(c, 0):,}" for c in columns))
    console.print(table)


def _print_positions(console: Console, result: dict[str, Any]) -> None:
    table = Table()
    for column in ("strategy", "position", "side", "quantity", "entry", "stop", "trailing", "take-profits left"):
        table.add_column(column)
    for sid, data in result.items():
        for p in data["positions"]:
            left = [f"{tp[0]:.8g}" for tp in p["take_profit"] if not tp[2]]
            trailing = f"{p['trailing_stop']:.8g}" if p["trailing_active"] else "-"
            stop = "-" if p["stop_loss"] is None else f"{p['stop_loss']:.8g}"
            table.add_row(sid, p["position_id"], p["side"], f"{p['quantity']:.8g}", f"{p['entry_price']:.8g}", stop, trailing, ", ".join(left))
    console.print(table)


def _print_result(console: Console, cmd: str, result: Any) -> None:
    if cmd == "status":
        _print_status(console, result)
    elif cmd == "metrics":
        _print_metrics(console, result)
    elif cmd == "positions":
        _print_positions(console, result)
    elif cmd == "validate" and not result.get("valid"):
        for problem in result["problems"]:
            console.print(escape(f"{problem['file']}: {problem['field'] or '<file>'}: {problem['reason']}"), soft_wrap=True)
    else:
        console.print_json(orjson.dumps(result).decode())


async def _call(args: argparse.Namespace, socket_path: Path, console: Console, err: Console) -> int:
    cmd, request_args = _request(args)
    async with ControlClient(socket_path) as client:
        if cmd == "events":
            return await _follow(client, request_args, args.json, console, err)
        reply = await client.call(cmd, request_args)
    if args.json:
        print(orjson.dumps(reply).decode())
    elif reply["ok"]:
        _print_result(console, cmd, reply["result"])
    if not reply["ok"]:
        if not args.json:
            err.print(f"[bold red]error[/] ({reply['error']['code']}): {escape(reply['error']['message'])}", highlight=False, soft_wrap=True)
        return EXIT_REFUSED
    if cmd == "validate" and not reply["result"].get("valid"):
        return EXIT_REFUSED
    return EXIT_OK


async def _follow(client: ControlClient, request: dict[str, Any], as_json: bool, console: Console, err: Console) -> int:
    async for message in client.events(request):
        if "event" in message:
            if as_json:
                print(orjson.dumps(message["event"]).decode(), flush=True)
            else:
                e = message["event"]
                console.print(f"{e['seq']:>8} {e['ts']} {e['type']:<16} {e['strategy_id'] or '-':<16} {escape(orjson.dumps(e['payload']).decode())}", highlight=False, soft_wrap=True)
        elif not message.get("ok"):
            err.print(f"[bold red]error[/] ({message['error']['code']}): {escape(message['error']['message'])}", highlight=False, soft_wrap=True)
            return EXIT_REFUSED
    return EXIT_OK


def run_ctl(args: argparse.Namespace) -> int:
    """Run `bot ctl`; return the exit code (0 ok, 1 refused, 2 usage, 3 no daemon to talk to)."""
    err = Console(stderr=True)
    console = Console(width=None if sys.stdout.isatty() else 160)
    try:
        socket_path = _socket(args)
    except ConfigError as exc:
        for problem in exc.problems:
            err.print(f"[bold red]error[/]: {escape(str(problem))}", highlight=False, soft_wrap=True)
        return EXIT_USAGE
    try:
        return anyio.run(_call, args, socket_path, console, err)
    except (DaemonNotRunning, DaemonUnreachable) as exc:
        # Any failure to talk to the daemon: one line, exit 3, never a traceback.
        err.print(f"[bold red]error[/]: {escape(str(exc))}", highlight=False, soft_wrap=True)
        return EXIT_NOT_RUNNING
    except KeyboardInterrupt:
        return EXIT_OK
