"""What `bot ctl` prints for people: a table, or one line saying what changed (`--json` prints the raw reply instead)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bot.config.currency import money_decimals
from bot.event_codec import payload_of
from bot.events import Event
from bot.fmt import format_fields, format_number, format_path, format_time, format_value

# What each position policy does to the positions a strategy holds when it stops trading.
_KEPT = {"manage": "kept, exits still enforced", "close": "closing at market", "freeze": "left as they are, no exit enforced"}


def _plural(count: int, word: str, words: str | None = None) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {words or word + 's'}"


def _value(value: Any) -> str:
    """A config value as a person types it: JSON, with numbers without float noise (1, not 1.0)."""
    if isinstance(value, float):
        return format_number(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{orjson.dumps(key).decode()}: {_value(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    return orjson.dumps(value).decode()


def _money(amount: float, balance: float) -> str:
    """An amount of an account of this starting balance, to its scale (10 BTC to 0.0001, 10,000 USD to 0.01)."""
    places = money_decimals(balance)
    # Rounded first, so a loss smaller than the last decimal shows as 0, not -0.
    return f"{round(amount, places) or 0.0:,.{places}f}"


def _print(console: Console, text: str) -> None:
    # Replies quote ids, files and reasons: never rich markup, one line per line.
    console.print(escape(text), highlight=False, soft_wrap=True)


# -- tables -----------------------------------------------------------------------------------
def _status(console: Console, result: dict[str, Any], _: dict[str, Any], __: Any) -> None:
    head = f"health {result['health']}"
    if result["problems"]:
        head += f" ({'; '.join(result['problems'])})"
    head += f"  clock {format_time(result['clock_ts'])}" if result.get("clock_ts") else ""
    head += f"  uptime {result['uptime_s']:.0f}s  feed {result['feed']['state']} ({result['feed']['candles']:,} candles)"
    _print(console, head + ("  KILL SWITCH" if result["kill_switch"] else ""))
    table = Table()
    minds = (result.get("cluster") or {}).get("minds")
    columns = ["strategy", "state", "symbols", "tf", "warm", "positions", "currency", "equity", "day pnl", "last error"]
    if minds is not None:
        columns.insert(2, "worker")
    for column in columns:
        table.add_column(column, justify="right" if column in ("positions", "equity", "day pnl") else "left")
    for sid, s in result["strategies"].items():
        state = s["state"] + (f" ({s['policy']})" if s["policy"] else "")
        where = [] if minds is None else [_worker_of(minds, sid)]
        table.add_row(
            escape(sid),
            state,
            *where,
            escape(", ".join(s["symbols"])),
            s["timeframe"],
            "yes" if s["warm"] else "no",
            str(s["positions"]),
            escape(s["currency"]),
            _money(s["equity"], s["starting_balance"]),
            _money(s["day_pnl"], s["starting_balance"]),
            escape(s["last_error"] or ""),
        )
    console.print(table)
    cluster = result.get("cluster")
    if cluster:
        _print(
            console,
            f"cluster {cluster['state']} {cluster['url']}: {cluster['published']:,} published, {cluster['backlog']:,} waiting, "
            f"dropped {cluster['dropped_candles']:,} candles and {cluster['dropped_events']:,} events, {cluster['skipped']:,} already stored"
            + (f" ({cluster['detail']})" if cluster["detail"] else ""),
        )
    if minds is not None:
        _workers(console, minds)
    added = result.get("added_symbols") or {}
    if added:
        _print(console, "added symbols: " + ", ".join(f"{symbol} {entry['timeframe']} ({format_path(Path(entry['file']))})" for symbol, entry in added.items()))
    for sid, orders in (result.get("settling") or {}).items():
        _print(console, f"{sid}: unloaded, orders still in flight: {', '.join(orders)}")


def _worker_of(minds: dict[str, Any], sid: str) -> str:
    """Where a strategy's mind is: its worker (and lease epoch), waiting for one, or not placed (it has not decided yet)."""
    mind = minds["minds"].get(sid)
    if mind is not None:
        return escape(f"{mind['worker']} (epoch {mind['epoch']})")
    if sid in minds["waiting"]:
        return f"waiting {minds['waiting'][sid]:.0f}s"
    return "-"


def _workers(console: Console, minds: dict[str, Any]) -> None:
    """The workers the hub has taken in: each one's host, pid, whether it is heard from, its strategies."""
    if not minds["workers"]:
        _print(console, "workers: none taken in yet (bot worker --config ... --name NAME)")
        return
    table = Table(title="workers")
    for column in ("worker", "host", "pid", "live", "heard", "strategies"):
        table.add_column(column, justify="right" if column in ("pid", "heard", "strategies") else "left")
    for name, worker in minds["workers"].items():
        table.add_row(escape(name), escape(worker["host"]), str(worker["pid"]), "yes" if worker["live"] else "no", f"{worker['seen_s']:.0f}s ago", str(len(worker["strategies"])))
    console.print(table)


def _strategies(console: Console, result: dict[str, Any], _: dict[str, Any], __: Any) -> None:
    table = Table(title="loaded")
    for column in ("strategy", "state", "symbol", "tf", "module", "file"):
        table.add_column(column)
    for sid, entry in result["loaded"].items():
        config = entry["config"]
        module = config.get("module") or "declarative"
        if config.get("class_name"):
            module += f" ({config['class_name']})"
        file = format_path(Path(entry["file"])) if entry["file"] else "-"
        table.add_row(escape(sid), entry["state"], escape(config["symbol"]), config["timeframe"], escape(module), escape(file))
    console.print(table)
    available = result["available"]
    if not available:
        return
    table = Table(title="available in strategies/")
    for column in ("file", "strategy", "symbol", "tf", "module", "valid"):
        table.add_column(column)
    problems: list[str] = []
    for name, entry in available.items():
        if entry["valid"]:
            config = entry["config"]
            table.add_row(escape(name), escape(entry["id"]), escape(config["symbol"]), config["timeframe"], escape(config.get("module") or "declarative"), "valid")
        else:
            table.add_row(escape(name), "", "", "", "", f"invalid ({_plural(len(entry['problems']), 'problem')})")
            problems += entry["problems"]
    console.print(table)
    for problem in problems:
        _print(console, problem)


def _metrics(console: Console, result: dict[str, Any], _: dict[str, Any], __: Any) -> None:
    table = Table(title=f"slowest: {result['slowest'] or '-'}")
    columns: tuple[str, ...] = ("candles", "avg_us", "p99_us", "max_us", "inbox_depth", "overruns", "errors", "actions_done", "actions_failed")
    if any("decision_wait_p99_us" in m for m in result["strategies"].values()):
        # Strategies deciding on workers: how long their decisions take to come back.
        columns += ("decision_wait_p50_us", "decision_wait_p99_us", "protecting")
    table.add_column("strategy")
    for column in columns:
        table.add_column(column, justify="right")
    for sid, m in result["strategies"].items():
        table.add_row(escape(sid), *(f"{m.get(c, 0):,.1f}" if isinstance(m.get(c), float) else f"{m.get(c, 0):,}" for c in columns))
    console.print(table)


def _positions(console: Console, result: dict[str, Any], _: dict[str, Any], __: Any) -> None:
    table = Table()
    for column in ("strategy", "position", "symbol", "side", "quantity", "entry", "opened", "stop", "trailing", "take-profits left"):
        table.add_column(column)
    pending: list[str] = []
    for sid, data in result.items():
        for p in data["positions"]:
            left = [format_number(tp[0]) for tp in p["take_profit"] if not tp[2]]
            trailing = format_number(p["trailing_stop"]) if p["trailing_active"] and p["trailing_stop"] is not None else "-"
            stop = "-" if p["stop_loss"] is None else format_number(p["stop_loss"])
            opened = "-" if p.get("entry_ts") is None else format_time(p["entry_ts"])
            table.add_row(
                escape(sid), escape(p["position_id"]), escape(p["symbol"]), p["side"], format_number(p["quantity"]),
                format_number(p["entry_price"]), opened, stop, trailing, ", ".join(left) or "-",
            )
        if data["pending_orders"]:
            pending.append(f"{sid}: pending orders {', '.join(data['pending_orders'])}")
    if table.row_count:
        console.print(table)
    else:
        _print(console, "no open positions")
    for line in pending:
        _print(console, line)


def _trades(console: Console, result: dict[str, Any], _: dict[str, Any], __: Any) -> None:
    table = Table()
    for column in ("n", "strategy", "symbol", "side", "quantity", "entry", "opened", "exit", "closed", "pnl", "fees", "reason"):
        table.add_column(column, justify="right" if column in ("n", "quantity", "entry", "exit", "pnl", "fees") else "left")
    for t in result["trades"]:
        table.add_row(
            str(t["n"]), escape(t["strategy_id"]), escape(t["symbol"]), t["side"], format_number(t["quantity"]),
            format_number(t["entry_price"]), format_time(t["entry_ts"]), format_number(t["exit_price"]), format_time(t["exit_ts"]),
            f"{format_number(t['pnl'])} {t['currency'] or ''}".strip(), format_number(t["fees"]), escape(t["exit_reason"]),
        )
    if table.row_count:
        console.print(table)
    else:
        _print(console, "no closed trades")
    counts = ", ".join(f"{sid} {c['total']} ({c['today']} today)" for sid, c in result["counts"].items())
    _print(console, f"closed trades: {counts}" if counts else "no strategy loaded")
    if result["next"] is not None:
        _print(console, f"older trades: --before {result['next']}")


# -- one line per action ----------------------------------------------------------------------
def _was(before: Any, sid: str) -> tuple[str, int]:
    """A strategy's state and open positions as read just before the command."""
    entry = (before or {}).get("strategies", {}).get(sid) if isinstance(before, dict) else None
    return (entry["state"], entry["positions"]) if entry else ("?", 0)


def _deactivated(sid: str, policy: str, before: Any) -> str:
    was, held = _was(before, sid)
    kept = f", {_plural(held, 'position')} {_KEPT[policy]}" if held else ", no position"
    return f"{sid}: {was} -> dormant (policy {policy}{kept})"


def _activate(console: Console, result: dict[str, Any], _: dict[str, Any], before: Any) -> None:
    _print(console, f"{result['id']}: {_was(before, result['id'])[0]} -> {result['state']}")


def _deactivate(console: Console, result: dict[str, Any], _: dict[str, Any], before: Any) -> None:
    _print(console, _deactivated(result["id"], result["policy"], before))


def _switch(console: Console, result: dict[str, Any], _: dict[str, Any], before: Any) -> None:
    _print(console, _deactivated(result["from"], result["policy"], before))
    _print(console, f"{result['to']}: {_was(before, result['to'])[0]} -> active")


def _load(console: Console, result: dict[str, Any], args: dict[str, Any], _: Any) -> None:
    _print(console, f"{result['id']}: loaded from {args['file']} ({result['state']})")


def _unload(console: Console, result: dict[str, Any], args: dict[str, Any], before: Any) -> None:
    sid = result["strategy_id"]
    was, held = _was(before, sid)
    left = len(result["positions"])
    if args.get("close_positions") and held:
        what = f"{_plural(held - left, 'position')} closed at the last price"
    elif left:
        what = f"{_plural(left, 'open position')} kept in the journal until it is loaded again"
    else:
        what = "no open position"
    portfolio = result["portfolio"]
    equity = f"{_money(portfolio['equity'], portfolio['start'])} {result['currency']}".rstrip()
    _print(console, f"{sid}: {was} -> unloaded ({what}; equity {equity})")
    if result.get("settling"):
        _print(console, f"{sid}: orders still in flight, booked as the exchange settles them: {', '.join(result['settling'])}")


def _reload(console: Console, result: dict[str, Any], _: dict[str, Any], __: Any) -> None:
    changed = ", ".join(result["changed"])
    _print(console, f"{result['id']}: reloaded, " + (f"changed {changed}" if changed else "nothing changed"))


def _set(console: Console, result: dict[str, Any], args: dict[str, Any], _: Any) -> None:
    path = result.get("path", args["path"])
    if not result["changed"]:
        _print(console, f"{result['id']}: {path} is already {_value(result.get('new', args['value']))} (nothing changed)")
    elif "old" in result:
        _print(console, f"{result['id']}: {path} {_value(result['old'])} -> {_value(result['new'])}")
    else:
        _print(console, f"{result['id']}: {path} = {_value(args['value'])} (changed {', '.join(result['changed'])})")
    if result.get("warm") is False:
        cold = result.get("cold")
        if cold:
            streams = "; ".join(
                f"{_plural(s['history'], 'candle')} of {s['symbol']} {s['timeframe']} history for {', '.join(s['indicators'])}" for s in cold
            )
            _print(console, f"{result['id']}: not warm yet: {streams}; it acts on cold indicators until enough candles close")
        else:
            _print(console, f"{result['id']}: not warm yet: warmed from the candle history when activated")


def _validate(console: Console, result: dict[str, Any], args: dict[str, Any], _: Any) -> None:
    if result["kind"] == "strategy":
        _print(console, f"{args['file']}: OK (strategy {result['id']})")
    else:
        _print(console, f"{args['file']}: OK (config, {_plural(len(result['strategies']), 'strategy', 'strategies')}: {', '.join(result['strategies'])})")


def _add_symbol(console: Console, result: dict[str, Any], args: dict[str, Any], _: Any) -> None:
    _print(console, f"{result['symbol']}: added, {result['timeframe']} candles from {args['file']} ({result['history']:,} candles of history)")


def _remove_symbol(console: Console, result: dict[str, Any], _: dict[str, Any], __: Any) -> None:
    _print(console, f"{result['symbol']}: removed (its feed stopped)")


def _risk_reset(console: Console, result: dict[str, Any], _: dict[str, Any], __: Any) -> None:
    _print(console, "kill switch released: entries allowed again" if result["was"] else "kill switch was not engaged (nothing to release)")


def _move(console: Console, result: dict[str, Any], _: dict[str, Any], __: Any) -> None:
    source = f"from {result['from']} " if result["from"] else ""
    _print(console, f"{result['id']}: its mind moves {source}to {result['to']} at its next candle (its book stays here)")


def _shutdown(console: Console, _: dict[str, Any], __: dict[str, Any], ___: Any) -> None:
    _print(console, "daemon stopping (it finishes queued candles, then exits)")


Printer = Callable[[Console, Any, dict[str, Any], Any], None]
PRINTERS: dict[str, Printer] = {
    "status": _status,
    "strategies": _strategies,
    "metrics": _metrics,
    "positions": _positions,
    "trades": _trades,
    "activate": _activate,
    "deactivate": _deactivate,
    "switch": _switch,
    "move": _move,
    "load": _load,
    "unload": _unload,
    "reload": _reload,
    "set": _set,
    "validate": _validate,
    "add-symbol": _add_symbol,
    "remove-symbol": _remove_symbol,
    "risk-reset": _risk_reset,
    "shutdown": _shutdown,
}
# Commands whose line says what changed from the state just before: the strategies it names are read first.
NEEDS_BEFORE = frozenset({"activate", "deactivate", "switch", "unload"})


def print_result(console: Console, cmd: str, args: dict[str, Any], result: Any, before: Any = None) -> None:
    """A successful reply for people (validate: only when the file is valid)."""
    PRINTERS[cmd](console, result, args, before)


def print_problems(err: Console, problems: list[dict[str, str]]) -> None:
    """An invalid file's problems, one `error: file: field: reason` line each, as `bot validate` prints them."""
    for problem in problems:
        _print(err, f"error: {problem['file']}: {problem['field'] or '<file>'}: {problem['reason']}")


def print_error(err: Console, message: str) -> None:
    """A refusal: one `error: ...` line per line of the daemon's message (`set` lists one problem a line)."""
    for line in message.splitlines() or [""]:
        _print(err, f"error: {line}")


def print_following(err: Console, request: dict[str, Any]) -> None:
    """The line `events` prints once the daemon streams (on stderr: stdout holds only events)."""
    types = ", ".join(request.get("types") or ()) or "all types"
    _print(err, f"following events ({types}; {request.get('strategy_id') or 'all strategies'}); Ctrl-C to stop")


def print_event(console: Console, event: Event) -> None:
    """One event of `events`: sequence, UTC time, type, strategy and its payload as key=value fields.

    The fields are named as in events.jsonl and `--json` (the codec's payload of the typed event),
    so a line a person reads can be found in the file.
    """
    try:
        body = format_fields(payload_of(event, wire=True))
    except RecursionError:  # a strategy's own details nested deeper than Python recurses
        body = "payload=(nested too deeply to print; --json shows it)"
    _print(console, f"{event.seq:>8} {format_time(event.ts)} {event.type:<16} {format_value('strategy_id', event.strategy_id or '-'):<16} {body}")
