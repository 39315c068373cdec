"""The tape: a book's writes to shared state recorded while taping, made in order on replay, and a risk read refused meanwhile."""
from __future__ import annotations

import pytest

from bot.bus import EventBus, StrategyPublisher
from bot.clock import ReplayClock
from bot.cluster.tape import Tape, TapedPublisher, TapedRisk
from bot.config.models import GlobalRiskConfig, StrategyRiskConfig
from bot.events import Event, KillSwitch, StopUpdated
from bot.trading.risk import RiskManager

DAY = 1_641_340_800_000


def test_taped_writes_land_on_replay_in_the_order_they_were_made() -> None:
    clock = ReplayClock()
    clock.advance_to(DAY)
    bus = EventBus(clock)
    seen: list[Event] = []
    bus.subscribe(seen.append)
    manager = RiskManager(GlobalRiskConfig.model_validate({"max_daily_loss": 10}))
    tape = Tape()
    risk = TapedRisk(manager.bind("s", StrategyRiskConfig(), "BTC/USD", bus), tape)
    publish = TapedPublisher(StrategyPublisher(bus, "s"), tape)
    risk.on_entry("s-p1", 100.0)
    tape.recording = True
    publish(StopUpdated, None, "s-p1", stop_loss=90.0, reason="test")
    risk.on_exit("s-p1", 1.0, -25.0, DAY)
    with pytest.raises(RuntimeError, match="taped"):
        risk.check_open(1.0, 1.0, 0, DAY)
    tape.recording = False
    # Nothing happened yet: no event, the exposure still counted, the kill switch not engaged.
    assert seen == [] and manager.total_exposure("USD") == 100.0 and not manager.kill_switch
    tape.replay()
    assert [type(e) for e in seen] == [StopUpdated, KillSwitch]
    assert [e.seq for e in seen] == [1, 2] and seen[0].ts == DAY
    assert manager.total_exposure("USD") == 0.0 and manager.kill_switch
    assert len(tape) == 0
