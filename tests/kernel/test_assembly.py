"""The kernel (bot/kernel) is the one place a bot is assembled, and the layer that starts the servers."""
from __future__ import annotations

import ast
import logging
from pathlib import Path
from typing import Any, cast

import anyio
import pytest

from bot.clock import WallClock
from bot.config.models import BotConfig
from bot.daemon.delivery import InboxDelivery
from bot.kernel import Seams, build_bot
from bot.services import BotServices
from bot.strategy.booking_faults import BookingFaults
from bot.strategy.delivery import DirectDelivery, HandlerErrorHook
from bot.strategy.manager import StreamRouter
from bot.trading.paper import PaperExchange
from tests.support import REPO, strategy


def _imported_modules(path: Path) -> set[str]:
    """Every module a file imports: top-level, function-local and under TYPE_CHECKING alike."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_the_daemon_package_imports_nothing_from_the_control_plane_or_the_kernel() -> None:
    offending = {
        f"{path.relative_to(REPO)}: {module}"
        for path in (REPO / "bot" / "daemon").rglob("*.py")
        for module in _imported_modules(path)
        if module.startswith(("bot.control", "bot.kernel"))
    }
    assert not offending


# A config check builds a strategy once to see which streams it reads, on a bus of its own that
# nothing subscribes to: a dry build, not a bot.
_DRY_BUILD = ("bot/strategy/config_check.py", "EventBus(")
# A strategy's mind on a worker builds and tags its signals on a bus of its own; they travel to the hub's bus.
_MIND_BUS = ("bot/cluster/mind.py", "EventBus(")


def test_only_the_kernel_builds_services_factories_and_managers() -> None:
    builders = ("StrategyManager(", "OrchestratorFactory(", "BotServices(", "EventBus(")
    offending = [
        (str(path.relative_to(REPO)), name)
        for folder in ("bot", "scripts")
        for path in (REPO / folder).rglob("*.py")
        if path.parent.name != "kernel"
        for name in builders
        if name in path.read_text() and f"class {name[:-1]}" not in path.read_text()
    ]
    assert [o for o in offending if o not in (_DRY_BUILD, _MIND_BUS)] == []


def test_a_replay_is_built_on_the_candle_clock_paper_exchange_and_direct_delivery() -> None:
    bot = build_bot(BotConfig(), "replay")
    assert isinstance(bot.services.exchange, PaperExchange) and isinstance(bot.manager.delivery, DirectDelivery)
    with pytest.raises(ValueError, match="candle clock"):
        build_bot(BotConfig(), "replay", Seams(clock=WallClock()))


def test_live_needs_the_gateway_and_the_wall_clock() -> None:
    with pytest.raises(ValueError, match="mode live"):
        build_bot(BotConfig(), "live", Seams(clock=WallClock()))


def test_a_queued_delivery_is_built_around_the_managers_guarded_seam() -> None:
    async def main() -> bool:
        async with anyio.create_task_group() as tg:
            seams: list[HandlerErrorHook] = []

            def inboxes(services: BotServices, on_error: HandlerErrorHook) -> InboxDelivery:
                seams.append(on_error)
                return InboxDelivery(tg, 10, on_error)

            bot = build_bot(BotConfig(), "paper", Seams(delivery=inboxes))
            delivery = bot.manager.delivery
            assert isinstance(delivery, InboxDelivery)
            delivery.close_all()
        return seams == [bot.manager.on_handler_error]

    assert anyio.run(main)


def test_a_stream_router_is_refused_with_a_queued_delivery() -> None:
    """A queued delivery wraps each route: the router would take every trading candle for another stream's (no fills, no stops)."""
    routed: list[BotServices] = []

    def router(services: BotServices) -> StreamRouter:
        routed.append(services)
        raise AssertionError("not built: the combination is refused first")

    def inboxes(services: BotServices, on_error: HandlerErrorHook) -> InboxDelivery:
        raise AssertionError("not built either")

    for mode in ("paper", "live"):
        seams = Seams(delivery=inboxes, router=router, clock=WallClock())
        with pytest.raises(ValueError, match="direct delivery, not a queued one"):
            build_bot(BotConfig(), "paper", seams) if mode == "paper" else build_bot(BotConfig(), "live", _live(seams))
    assert not routed


def _live(seams: Seams) -> Seams:
    faults = BookingFaults(logging.getLogger("bot.tests.assembly"))
    return Seams(
        delivery=seams.delivery, router=seams.router, clock=seams.clock, exchange=PaperExchange(),
        accounts=cast(Any, object()), booking_faults=faults,
    )


def test_failed_bookings_the_gateway_reports_reach_the_manager_built_with_the_relay() -> None:
    """The relay is built before the gateway and the manager: a report through it fails the active strategy (no hook
    set on the gateway afterwards); one relay serves one manager; mode live is refused without it."""
    faults = BookingFaults(logging.getLogger("bot.tests.assembly"))
    bot = build_bot(BotConfig(), "paper", Seams(booking_faults=faults))
    bot.services.hub.add_feed("BTC/USD", "1m")
    bot.manager.load(strategy(id="s1"))
    bot.manager.activate("s1")
    faults.report("s1", ValueError("the fill could not be booked"))
    assert bot.manager.states() == {"s1": "failed"}
    assert bot.manager.get("s1").last_error == "ValueError: the fill could not be booked"
    with pytest.raises(ValueError, match="already handled"):
        build_bot(BotConfig(), "paper", Seams(booking_faults=faults))
    with pytest.raises(ValueError, match="booking faults"):
        build_bot(BotConfig(), "live", Seams(clock=WallClock(), exchange=PaperExchange(), accounts=cast(Any, object())))
