"""Merge the outputs of a replay run as parts (one folder per part, some strategies each) into one run's outputs.

The merged events.jsonl, trades.csv, equity.csv and report.json are those a one-process replay of
every strategy writes: events and trades in the order bot.replay.event_order describes (`seq`
renumbered), equity rows per sample in config order, strategies in config order in the report.
Parts hold consecutive runs of the config's strategies, in order; the first part also holds the
market-wide events, the others' are left out.
"""
from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson

from bot.event_codec import HEADER
from bot.replay.event_order import MARKET, load_keys
from bot.replay.report import assemble_report, write_report_json

_FIRST = itemgetter(0)


@dataclass(frozen=True, slots=True)
class Part:
    """One part's output folder, how many strategies it replayed, and whether it holds the market-wide events."""

    folder: Path
    strategies: int
    market: bool


def merge_parts(parts: Sequence[Part], out_dir: Path) -> tuple[dict[str, Any], int]:
    """Write the merged outputs into `out_dir` (created when missing); return the report and the count of events."""
    out_dir.mkdir(parents=True, exist_ok=True)
    events = _merge_events(parts, out_dir / "events.jsonl")
    _merge_trades(parts, out_dir / "trades.csv")
    _merge_equity(parts, out_dir / "equity.csv")
    report = _merge_reports([orjson.loads((part.folder / "report.json").read_bytes()) for part in parts])
    write_report_json(out_dir / "report.json", report)
    return report, events


def _rows(lines: Iterator[bytes]) -> Iterator[bytes]:
    """A CSV file's rows: a quoted field may hold a line break (a strategy's exit reason), so a row ends where its quotes are even."""
    for line in lines:
        if b'"' in line:
            while line.count(b'"') % 2:
                more = next(lines, None)
                if more is None:  # a file cut inside a quoted field: its last row as it stands
                    break
                line += more
        yield line


def _keyed(part: Part, lines_file: str, hi_name: str, lo_name: str) -> Iterator[tuple[int, bytes]]:
    hi = load_keys(part.folder, hi_name)
    lo = load_keys(part.folder, lo_name)
    with (part.folder / lines_file).open("rb") as file:
        next(file)  # the header line
        # events.jsonl lines never break inside an event (JSON escapes line breaks); trades.csv rows may.
        lines: Iterator[bytes] = _rows(file) if lines_file.endswith(".csv") else file
        if part.market:
            for h, low, line in zip(hi, lo, lines, strict=True):
                yield h << 63 | low, line
        else:
            for h, low, line in zip(hi, lo, lines, strict=True):
                if low != MARKET:
                    yield h << 63 | low, line


def _merge_events(parts: Sequence[Part], path: Path) -> int:
    count = 0
    with path.open("wb", buffering=1 << 20) as out:
        out.write(HEADER + b"\n")
        write = out.write
        for _, line in heapq.merge(*(_keyed(part, "events.jsonl", "order.hi", "order.lo") for part in parts), key=_FIRST):
            count += 1
            # Every line starts with {"seq":N, : the merged log numbers its lines afresh.
            write(b'{"seq":%d,' % count + line[line.index(b",") + 1 :])
    return count


def _merge_trades(parts: Sequence[Part], path: Path) -> None:
    with path.open("wb") as out:
        with (parts[0].folder / "trades.csv").open("rb") as first:
            out.write(first.readline())
        for _, line in heapq.merge(*(_keyed(part, "trades.csv", "trades.hi", "trades.lo") for part in parts), key=_FIRST):
            out.write(line)


def _merge_equity(parts: Sequence[Part], path: Path) -> None:
    """Each sample writes one row per strategy in config order: the parts' rows of a sample follow each other."""
    rows: list[list[bytes]] = []
    for part in parts:
        with (part.folder / "equity.csv").open("rb") as file:
            header = file.readline()
            rows.append(file.readlines())
    samples = min((len(lines) // part.strategies for lines, part in zip(rows, parts, strict=True)), default=0)
    with path.open("wb", buffering=1 << 20) as out:
        out.write(header)
        for sample in range(samples):
            for lines, part in zip(rows, parts, strict=True):
                start = sample * part.strategies
                out.writelines(lines[start : start + part.strategies])


def _merge_reports(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The parts' strategies in order, totals recomputed; the first part's replay facts, unless another part aborted."""
    facts = dict(reports[0]["replay"])
    aborted = next((r["replay"] for r in reports if r["replay"]["status"] != "complete"), None)
    if aborted is not None:
        facts["status"], facts["error"] = aborted["status"], aborted["error"]
    strategies: dict[str, Any] = {}
    for report in reports:
        strategies.update(report["strategies"])
    return assemble_report(strategies, facts)
