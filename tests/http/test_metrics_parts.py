"""/metrics read from a daemon in parts of a few dozen samples, and written as prometheus-client writes each family whole.

A real DaemonState (recorded feed, real journal) with 70 strategies loaded through the operations:
every strategy family spans several parts (18 of the decision histogram), and `bot_orders` too.
"""
from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from bot.control.commands import Control
from bot.daemon import operations
from bot.http.prometheus import DaemonMetrics, exposition
from tests.daemon.test_operations import Bot, bot  # noqa: F401  (the fixture)

pytestmark = pytest.mark.asyncio

STRATEGIES = 70


class _Whole(Collector):
    """Families given whole: what one generate_latest call writes for them."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        """The families."""
        yield from self._families


def _merged(parts: list[Metric]) -> list[Metric]:
    """Consecutive parts of one name as one family."""
    whole: list[Metric] = []
    for part in parts:
        if whole and whole[-1].name == part.name:
            whole[-1].samples.extend(part.samples)
        else:
            whole.append(part)
    return whole


async def test_the_scrape_in_parts_is_what_generate_latest_writes_for_each_whole_family(bot: Bot) -> None:  # noqa: F811
    ids = [f"s{i:02d}" for i in range(STRATEGIES)]
    for sid in ids:
        bot.load(bot.strategy_file(sid, id=sid), activate=True)
    orders = bot.state.services.metrics.orders
    for n, sid in enumerate([*ids, "zz_unloaded"]):
        for status in ("submitted", "filled", "cancelled", "rejected")[: 1 + n % 4]:
            orders[(sid, status)] = n + 1
    control = Control.of(bot.state).for_request()
    metrics = DaemonMetrics(control, "paper")
    await metrics.collector.read_status(control)
    # Unloaded after the status was read: four strategies, one whole part of the histogram, are left out of their parts.
    for sid in ids[4:8]:
        operations.unload(bot.state, sid)

    parts = list(metrics.collector.collect())
    counts = {name: sum(1 for part in parts if part.name == name) for name in {part.name for part in parts}}
    assert counts["bot_strategy_decision_seconds"] == 18  # 70 strategies, four a part
    assert counts["bot_strategy_state"] == 2 and counts["bot_orders"] == 5  # 64 a part; 71 strategies, 16 a part
    empty = [part for part in parts if part.name == "bot_strategy_decision_seconds" and not part.samples]
    assert len(empty) == 1  # the part of the four unloaded: empty, between parts with samples

    written = await exposition(iter(parts), control.slices())
    assert written == generate_latest(_Whole(_merged([copy.deepcopy(part) for part in parts])))
    assert b'bot_orders_total{status="cancelled",strategy="zz_unloaded"} 71.0' in written
    assert b'bot_strategy_state{state="active",strategy="s05"}' not in written
    assert b'bot_strategy_state{state="active",strategy="s69"} 1.0' in written
    # A scrape (its status read again) writes the same families.
    assert await metrics.scrape(control) == written
