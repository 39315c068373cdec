"""Replies written in slices are byte for byte what one call writes: orjson's JSON, prometheus-client's text exposition."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import orjson
import pytest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from bot.daemon.read_slices import ReadSlices
from bot.http.api import sliced_json
from bot.http.prometheus import exposition

BODIES: list[Any] = [
    {},
    [],
    {"strategies": {}},
    {"strategies": {f"s{i}": {"state": "active", "equity": 1000.0 + i / 3, "points": [[1_700_000_000_000 + i, 1.5]]} for i in range(500)}},
    {f"s{i}": {"positions": [{"id": f"s{i}-p1", "quantity": 0.1}], "pending_orders": []} for i in range(300)},
    {"loaded": {"a": {"config": {"nested": {"deep": [1, 2, {"x": None}]}}}}, "available": {"a.json": {"valid": False, "problems": ["é \" \\ \n"]}}},
    {"health": "ok", "problems": [], "uptime_s": 1.25, "feed": {"source": "recorded"}, "strategies": {"ü": {"last_error": None}}},
    {"numbers": [0, -1, 2**53, 1e-9, 1.0e300]},
]


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_sliced_json_is_what_orjson_writes_in_one_call(body: Any) -> None:
    async def main() -> bytes:
        # Every entry its own slice, with pauses that really yield.
        return await sliced_json(body, ReadSlices(None, slice_s=0.0))

    assert anyio.run(main) == orjson.dumps(body)


class _Families(Collector):
    """Fixed families, as a collector of their own."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        """The families."""
        return iter(self._families)


def _families() -> list[Metric]:
    state = GaugeMetricFamily("bot_strategy_state", "1 for the state each strategy is in.\nA second line \\ with a backslash.", labels=["strategy", "state"])
    decision = HistogramMetricFamily("bot_strategy_decision_seconds", "Processing time.", labels=["strategy"])
    orders = CounterMetricFamily("bot_orders", "Orders.", labels=["strategy", "status"])
    for i in range(1_234):
        state.add_metric([f"s{i}", "active"], 1)
        decision.add_metric([f"s\"{i}\n"], [("1e-06", i), ("0.001", i * 2), ("+Inf", i * 3)], i / 7)
        orders.add_metric([f"s{i}", "filled"], i)
    empty = GaugeMetricFamily("bot_strategy_position_quantity", "Open quantity.", labels=["strategy", "symbol", "side"])
    return [GaugeMetricFamily("bot_health", "Health.", value=1), state, decision, empty, orders]


def test_the_exposition_in_slices_is_what_generate_latest_writes_in_one_call() -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(_families()))

    async def main() -> bytes:
        return await exposition(registry.collect(), ReadSlices(None, slice_s=0.0))

    text = anyio.run(main)
    assert text == generate_latest(registry)
    # Each family's header once, though its samples were written in several parts.
    assert text.count(b"# TYPE bot_strategy_decision_seconds histogram\n") == 1


def test_consecutive_parts_of_one_family_are_written_as_that_one_family() -> None:
    whole = _families()
    parts: list[Metric] = []
    for family in whole:
        # Each family cut in three parts (an empty one too), as BotCollector yields a few dozen samples at a time.
        third = len(family.samples) // 3
        for samples in (family.samples[:third], family.samples[third:2 * third], family.samples[2 * third:]):
            part = type(family).__new__(type(family))
            part.__dict__.update(family.__dict__)
            part.samples = list(samples)
            parts.append(part)
    merged = CollectorRegistry(auto_describe=False)
    merged.register(_Families(whole))

    async def main() -> bytes:
        return await exposition(iter(parts), ReadSlices(None, slice_s=0.0))

    assert anyio.run(main) == generate_latest(merged)
