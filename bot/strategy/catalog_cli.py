"""`bot strategies` and `bot strategies info ID`: what the catalog offers, with defaults and parameter schema (its arguments: bot.strategy.catalog_args)."""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bot.config.loader import STRATEGY_FOLDER, strategy_folders
from bot.config.models import BotConfig
from bot.strategy.catalog import CatalogEntry, CatalogLookupError, StrategyCatalog

EXIT_OK = 0
EXIT_INVALID = 2
# A sentence ends at . ! or ? followed by a space and the next sentence's first letter.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`(\"'])")


def discover_for(config: Path) -> StrategyCatalog:
    """The catalog a config sees: strategies/ beside it plus its strategy_paths (just strategies/ without a config)."""
    if config.is_file():
        try:
            bot = BotConfig.model_validate(orjson.loads(config.read_bytes()))
        except (orjson.JSONDecodeError, ValidationError) as exc:
            raise ValueError(f"{config}: not a valid configuration ({exc.__class__.__name__}); run `bot validate --config {config}`") from None
        return StrategyCatalog.discover([f for f in strategy_folders(config, bot) if f.is_dir()])
    folder = config.parent / STRATEGY_FOLDER
    return StrategyCatalog.discover([folder] if folder.is_dir() else [])


def run_strategies(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Carry out `bot strategies [info ID]`."""
    try:
        catalog = discover_for(args.config)
    except ValueError as exc:
        err.print(f"[bold red]error[/]: {escape(str(exc))}", highlight=False, soft_wrap=True)
        return EXIT_INVALID
    for problem in catalog.problems:
        err.print(f"[bold yellow]skipped[/]: {escape(str(problem))}", highlight=False, soft_wrap=True)
    if getattr(args, "strategies_command", None) == "info":
        try:
            entry = catalog.get(args.name)
        except CatalogLookupError as exc:
            known = ", ".join(e.name for e in catalog.entries())
            err.print(f"[bold red]error[/]: {escape(exc.reason)} (strategies: {escape(known)})", highlight=False, soft_wrap=True)
            return EXIT_INVALID
        if args.json:
            out.print_json(json.dumps(_info(entry)))
        else:
            _print_info(entry, out)
        return EXIT_OK
    entries = catalog.entries()
    if args.json:
        out.print_json(json.dumps([{k: v for k, v in _info(e).items() if k not in ("schema",)} for e in entries]))
        return EXIT_OK
    rows = [(entry.name, entry.version, f"{entry.module}:{entry.class_name}", headline(entry.summary)) for entry in entries]
    if not out.is_terminal:
        # A pipe or a file: one line per strategy, never wrapped into a column of fragments.
        widths = [max((len(row[i]) for row in rows), default=0) for i in range(3)]
        for row in rows:
            out.print(escape("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3]), highlight=False, soft_wrap=True)
        return EXIT_OK
    table = Table(title="strategies (bot strategies info ID for the whole description)", title_justify="left")
    for column in ("name", "version", "module", "description"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    out.print(table)
    return EXIT_OK


def headline(summary: str) -> str:
    """The first sentence of a strategy's summary (the listing's description; `info ID` prints the whole text)."""
    return _SENTENCE_END.split(summary.strip(), maxsplit=1)[0]


def _info(entry: CatalogEntry) -> dict[str, Any]:
    return {
        "name": entry.name,
        "version": entry.version,
        "module": entry.module,
        "class": entry.class_name,
        "path": str(entry.path) if entry.path else None,
        "summary": entry.summary,
        "description": entry.description,
        "defaults": entry.defaults(),
        "schema": entry.schema(),
    }


def _print_info(entry: CatalogEntry, out: Console) -> None:
    where = str(entry.path) if entry.path else "built in"
    out.print(f"[bold]{escape(entry.name)}[/] {escape(entry.version)}  ({escape(entry.module)}:{escape(entry.class_name)}, {escape(where)})")
    out.print()
    out.print(escape(entry.description))
    out.print()
    table = Table(title="parameters (params in a strategy file)", title_justify="left")
    for column in ("parameter", "type", "default", "constraints", "description"):
        table.add_column(column, overflow="fold")
    for row in parameter_rows(entry.schema(), entry.defaults()):
        table.add_row(*(escape(cell) for cell in row))
    if not table.rows:
        out.print("no parameters: the declarative strategy reads analyzers, filters, thresholds and exits from its file")
        return
    out.print(table)


_CONSTRAINTS = (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<"), ("minLength", "min length"))


def parameter_rows(schema: dict[str, Any], defaults: dict[str, Any], prefix: str = "", defs: dict[str, Any] | None = None) -> list[tuple[str, str, str, str, str]]:
    """(dotted name, type, default, constraints, description) per parameter; nested models are flattened."""
    defs = defs if defs is not None else schema.get("$defs", {})
    rows: list[tuple[str, str, str, str, str]] = []
    for name, prop in schema.get("properties", {}).items():
        ref = prop.get("$ref") or next((a["$ref"] for a in prop.get("allOf", []) if "$ref" in a), None)
        if ref is not None:
            nested = defs[ref.rsplit("/", 1)[-1]]
            rows.extend(parameter_rows(nested, defaults.get(name) or {}, f"{prefix}{name}.", defs))
            continue
        rows.append((f"{prefix}{name}", _type(prop), json.dumps(defaults.get(name)), _constraints(prop), prop.get("description", "")))
    return rows


def _type(prop: dict[str, Any]) -> str:
    if "enum" in prop:
        return " | ".join(json.dumps(v) for v in prop["enum"])
    if "anyOf" in prop:
        return " | ".join(_type(p) for p in prop["anyOf"])
    if prop.get("type") == "array" and "prefixItems" in prop:
        return "[" + ", ".join(_type(p) for p in prop["prefixItems"]) + "]"
    if "const" in prop:
        return json.dumps(prop["const"])
    return str(prop.get("type", "any"))


def _constraints(prop: dict[str, Any]) -> str:
    parts = [f"{label} {prop[key]}" for key, label in _CONSTRAINTS if key in prop]
    for option in prop.get("anyOf", []):
        parts.extend(f"{label} {option[key]}" for key, label in _CONSTRAINTS if key in option)
    return ", ".join(parts)
