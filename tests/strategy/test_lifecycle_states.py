"""The lifecycle state machine: the transition table, and the manager's operations driven through it."""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from bot.errors import StrategyError, StrategyStateError
from bot.events import StrategyStateChanged
from bot.ohlcv import Candle
from bot.strategy.catalog import StrategyCatalog
from bot.strategy.lifecycle import STATES, TRANSITIONS, IllegalTransitionError, Lifecycle, StrategyState
from bot.strategy.manager import StrategyManager
from tests.support import Rig, module_strategy, strategy

# A real strategy module whose code raises on its `after`-th trading candle (0: never), or during warm-up.
FUSE = '''
from pydantic import Field
from bot.strategy.base import Strategy, StrategyParams


class FuseParams(StrategyParams):
    """Parameters."""

    after: int = Field(default=0, ge=0)
    in_warm_up: bool = False


class Fuse(Strategy[FuseParams]):
    """Raises on purpose.

    Suits lifecycle tests.
    """

    name = "fuse"
    version = "1.0.0"

    def __init__(self, params: FuseParams, context) -> None:
        super().__init__(params, context)
        self.seen = 0

    def on_history(self, symbol, timeframe, candle):
        if self.params.in_warm_up:
            raise RuntimeError("fuse blew during warm-up")

    def on_candle(self, symbol, timeframe, candle):
        self.seen += 1
        if self.seen == self.params.after:
            raise RuntimeError("fuse blew")
'''

LEGAL = [(a, b) for a in STATES for b in sorted(TRANSITIONS[a])]
ILLEGAL = [(a, b) for a, b in itertools.product(STATES, STATES) if b not in TRANSITIONS[a]]


def test_the_table_names_every_state_and_only_states() -> None:
    assert set(TRANSITIONS) == set(STATES)
    assert all(targets <= set(STATES) for targets in TRANSITIONS.values())
    assert set(STATES) == {"loading", "dormant", "active", "failed", "unloaded", "settling"}
    assert Lifecycle("s").state == "loading"


@pytest.mark.parametrize(("source", "target"), LEGAL)
def test_every_legal_transition_is_taken(source: StrategyState, target: StrategyState) -> None:
    lifecycle = Lifecycle("s", source)
    assert lifecycle.can(target)
    lifecycle.to(target)
    assert lifecycle.state == target


@pytest.mark.parametrize(("source", "target"), ILLEGAL)
def test_every_illegal_transition_is_refused_and_changes_nothing(source: StrategyState, target: StrategyState) -> None:
    lifecycle = Lifecycle("s", source)
    assert not lifecycle.can(target)
    with pytest.raises(IllegalTransitionError, match=f"strategy 's' cannot go from {source} to {target}"):
        lifecycle.require(target)  # what the manager asks before it changes routes or orders
    with pytest.raises(IllegalTransitionError, match=f"strategy 's' cannot go from {source} to {target}"):
        lifecycle.to(target)
    assert lifecycle.state == source


def test_the_refusals_that_matter_are_in_the_table() -> None:
    for source, target in [("unloaded", "active"), ("loading", "active"), ("settling", "active"), ("unloaded", "dormant"), ("active", "active")]:
        assert (source, target) in ILLEGAL
    assert issubclass(IllegalTransitionError, StrategyStateError)  # control replies report it like any state refusal


def _rig(tmp_path: Path) -> Rig:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "fuse.py").write_text(FUSE)
    return Rig(catalog=StrategyCatalog.discover([folder]))


def test_the_manager_drives_load_activate_deactivate_switch_fail_and_unload_through_the_machine(
    tmp_path: Path, btc_candles: list[Candle]
) -> None:
    rig = _rig(tmp_path)
    manager = rig.manager
    built = rig.factory.get_or_create(module_strategy("fuse", id="built"))
    assert built.state == "loading"  # built, not yet accepted by a manager
    rig.factory.evict("built")

    a = manager.load(module_strategy("fuse", id="A"))
    b = manager.load(module_strategy("fuse", id="B", params={"after": 5}))
    assert manager.states() == {"A": "dormant", "B": "dormant"}
    rig.feed("BTC/USD", btc_candles[:50])
    manager.activate("A")
    assert a.state == "active"
    manager.switch("A", "B")
    assert (a.state, b.state) == ("dormant", "active")
    rig.feed("BTC/USD", btc_candles[50:60])  # B's code raises on its fifth candle
    assert b.state == "failed" and b.last_error == "RuntimeError: fuse blew"
    manager.deactivate("B")
    assert manager.states()["B"] == "dormant"
    manager.activate("B")  # the fuse blew once: it runs on
    rig.feed("BTC/USD", btc_candles[60:70])
    assert manager.states()["B"] == "active"
    assert manager.unload("B")["state"] == "unloaded" and b.lifecycle.state == "unloaded"
    with pytest.raises(IllegalTransitionError, match="cannot go from unloaded to active"):
        b.lifecycle.to("active")  # an unloaded strategy never comes back
    states = [(e.strategy_id, e.state, e.change) for e in rig.of_type(StrategyStateChanged)]
    assert states == [
        ("A", "dormant", "loaded"), ("B", "dormant", "loaded"), ("A", "active", "activated"), ("A", "dormant", "deactivated"),
        ("B", "active", "activated"), ("B", "failed", "failed"), ("B", "dormant", "deactivated"),
        ("B", "active", "activated"), ("B", "unloaded", "unloaded"),
    ]


def test_a_failed_warm_up_and_a_refused_load_go_through_the_machine(tmp_path: Path, btc_candles: list[Candle]) -> None:
    rig = _rig(tmp_path)
    rig.feed("BTC/USD", btc_candles[:20])
    doomed = rig.manager.load(module_strategy("fuse", id="W", params={"in_warm_up": True}))
    with pytest.raises(StrategyError, match="fuse blew during warm-up"):
        rig.manager.activate("W")
    assert doomed.state == "failed"
    with pytest.raises(StrategyError, match="fuse blew during warm-up"):
        rig.manager.activate("W")  # fails again: failed -> failed
    assert doomed.state == "failed"
    with pytest.raises(StrategyStateError, match="has no candle feed"):
        rig.manager.load(strategy(id="nofeed", symbol="ETH/BTC"))
    assert rig.manager.ids() == ["W"]


def test_restore_puts_back_only_journalled_states_the_machine_knows(tmp_path: Path) -> None:
    rig = _rig(tmp_path)
    restored = rig.manager.load(module_strategy("fuse", id="R"), announce=False)
    rig.manager.restore_state("R", "failed", None, "RuntimeError: before the crash")
    assert (restored.state, restored.last_error) == ("failed", "RuntimeError: before the crash")
    rig.manager.load(module_strategy("fuse", id="S"), announce=False)
    with pytest.raises(StrategyStateError, match="cannot restore strategy 'S' to state 'settling'"):
        rig.manager.restore_state("S", "settling", None, None)
    assert rig.manager.get("S").state == "dormant"


class _Accounts:
    """The gateway's part in settling: orders in flight per strategy, as a live gateway reports them."""

    def __init__(self) -> None:
        self.orders: dict[str, list[str]] = {}

    def in_flight(self, strategy_id: str) -> list[str]:
        return list(self.orders.get(strategy_id, ()))

    def close_account(self, strategy_id: str) -> list[str]:
        return self.in_flight(strategy_id)

    def adopt_restored(self, strategy_id: str) -> list[str]:
        return []


def test_an_unload_with_orders_in_flight_settles_then_ends_unloaded(btc_candles: list[Candle]) -> None:
    rig = Rig()
    accounts = _Accounts()
    manager = StrategyManager(rig.services, rig.factory, accounts=accounts)
    orchestrator = manager.load(strategy(id="L"))
    manager.activate("L")
    rig.feed("BTC/USD", btc_candles[:10])
    accounts.orders["L"] = ["L-1"]
    manager.unload("L")
    assert orchestrator.state == "settling" and manager.settling() == {"L": ["L-1"]}
    assert manager.settle() == []
    assert orchestrator.state == "settling"
    accounts.orders["L"] = []
    assert manager.settle() == ["L"]
    assert orchestrator.lifecycle.state == "unloaded" and manager.settling() == {}
