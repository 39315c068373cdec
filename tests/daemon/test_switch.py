"""Hot-switch through the control socket during a replay whose feed the test steps."""
from __future__ import annotations

from typing import Any

import anyio
import orjson

from bot.control.client import ControlClient
from tests.control.client import result
from tests.daemon.process import DaemonProcess


def _candles(socket: Any, sid: str) -> int:
    return int(result(socket, "metrics")["strategies"][sid]["candles"])


def test_after_switch_candles_reach_the_new_strategy_only(stepped: DaemonProcess) -> None:
    daemon = stepped
    fast = orjson.loads((daemon.folder / "strategies" / "ema_cross.json").read_bytes())
    fast.update({"id": "ema_fast", "timeframe": "1m"})
    fast["analyzers"][0]["params"] = {"fast": 5, "slow": 13}
    (daemon.folder / "strategies" / "ema_fast.json").write_bytes(orjson.dumps(fast))
    assert result(daemon.socket, "load", {"file": "strategies/ema_fast.json"}) == {"id": "ema_fast", "state": "dormant"}
    events: list[dict[str, Any]] = []
    switched: dict[str, Any] = {}

    async def scenario() -> None:
        async with ControlClient(daemon.socket) as watcher, ControlClient(daemon.socket) as control:

            async def collect(streaming: anyio.Event) -> None:
                async for message in watcher.events({}):
                    if "event" in message:
                        events.append(message["event"])
                    else:
                        streaming.set()

            async def seen(close_ts: int | None) -> None:
                """Until the events stream has carried the candle closing at `close_ts`."""
                with anyio.fail_after(15):
                    while not any(e["type"] == "candle" and e["ts"] == close_ts for e in events):
                        await anyio.sleep(0.01)

            async with anyio.create_task_group() as tg:
                streaming = anyio.Event()
                tg.start_soon(collect, streaming)
                await streaming.wait()
                before = await anyio.to_thread.run_sync(daemon.step, 20)  # both strategies trade first
                await seen(before.last_close)
                switched.update(await control.call("switch", {"from": "rsi_reversion", "to": "ema_fast", "policy": "close"}))
                after = await anyio.to_thread.run_sync(daemon.step, 40)
                await seen(after.last_close)
                tg.cancel_scope.cancel()

    anyio.run(scenario)
    assert switched["ok"], switched
    status = result(daemon.socket, "status")["strategies"]
    assert status["rsi_reversion"]["state"] == "dormant" and status["rsi_reversion"]["policy"] == "close"
    assert status["ema_fast"]["state"] == "active"
    frozen = _candles(daemon.socket, "rsi_reversion")
    started = _candles(daemon.socket, "ema_fast")
    assert started == 40  # every 1m candle since the switch, none before
    daemon.step(10)
    assert _candles(daemon.socket, "rsi_reversion") == frozen
    assert _candles(daemon.socket, "ema_fast") == started + 10
    # In the event stream: the switch is announced, and after it the old strategy decides nothing.
    states = [(e["strategy_id"], e["payload"]["change"]) for e in events if e["type"] == "strategy_state"]
    assert ("rsi_reversion", "deactivated") in states and ("ema_fast", "activated") in states
    switch_seq = next(e["seq"] for e in events if e["type"] == "strategy_state" and e["strategy_id"] == "ema_fast")
    after = [e for e in events if e["seq"] > switch_seq]
    assert any(e["type"] == "candle" for e in after)
    assert not [e for e in after if e["strategy_id"] == "rsi_reversion" and e["type"] in ("signal", "position_opened")]
    # Policy close: whatever rsi_reversion held is gone.
    assert result(daemon.socket, "positions", {"id": "rsi_reversion"})["rsi_reversion"]["positions"] == []
