"""The `bot ctl` command line: finding the daemon, the request, and what is printed (its arguments: bot.control.ctl_args)."""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Any, TextIO

import anyio
import orjson
from rich.console import Console

from bot.control.client import ControlClient, DaemonNotRunning, DaemonUnreachable
from bot.control.ctl_output import NEEDS_BEFORE, print_error, print_event, print_following, print_problems, print_result
from bot.control.event_reader import Received, Unreadable, read_message
from bot.control.locate import NoSocket, find_socket

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3


def _request(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    cmd = args.ctl_command
    if cmd in ("status", "strategies", "metrics", "shutdown", "risk-reset"):
        return cmd, {}
    if cmd == "positions":
        return cmd, {} if args.id is None else {"id": args.id}
    if cmd == "trades":
        page = {"limit": args.limit, **({} if args.before is None else {"before": args.before})}
        return cmd, page if args.id is None else {"id": args.id, **page}
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
    if cmd == "move":
        return cmd, {"id": args.id, "worker": args.worker}
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
        before = await _states_before(client, cmd, request_args) if cmd in NEEDS_BEFORE and not args.json else None
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
    print_result(console, cmd, request_args, result, before)
    return EXIT_OK


async def _states_before(client: ControlClient, cmd: str, request_args: dict[str, Any]) -> dict[str, Any]:
    """The rows of the strategies a change names, read just before it: its line says what changed.

    Only those strategies: a full `status` reads every strategy between candles and can wait
    for a busy daemon's rounds before the change is even sent.
    """
    ids = (request_args["from"], request_args["to"]) if cmd == "switch" else (request_args["id"],)
    rows: dict[str, Any] = {}
    for sid in ids:
        reply = await client.call("strategy", {"id": sid})
        if reply["ok"]:
            rows[sid] = reply["result"]
    return {"strategies": rows}


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
