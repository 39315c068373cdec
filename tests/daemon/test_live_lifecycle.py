"""Mode live: a stop while the exchange is down at start, and strategies unloaded, discarded or loaded with orders in flight.

Real `bot run` processes trade buy_then_dip (a market buy, then a resting limit buy) on the fake
Binance through the real ccxt client, with a real SQLite journal; the exchange being down is the
fake answering every REST request with HTTP 503. The last two run the real gateway and manager in
the test process (same fake, same ccxt client, real journal) to see what no daemon reply shows:
the gateway's accounts, a late fill closed, a resting stop left to the exchange.
"""
from __future__ import annotations

import logging
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from bot.control.client import ControlClient
from bot.daemon.live_trading import settle_unloaded
from bot.daemon.recovery import restore_orchestrator
from bot.errors import StrategyStateError
from bot.events import PositionClosed, PositionOpened
from bot.journal import Journal
from bot.strategy.booking_faults import BookingFaults
from bot.strategy.manager import StrategyManager
from bot.trading.actions import OpenPosition
from tests.daemon.process import DaemonProcess, journal_rows
from tests.daemon.test_live_trading import ETH, START, _positions, call, daemon, limit_reached_within, until, write_config
from tests.fake_exchange import FakeBinance
from tests.live.support import trigger
from tests.live.support import until as until_live
from tests.live.trading_support import eth_strategy, fake_market, gateway_on, journal_at
from tests.support import ETH_1M

DOWN = 10**6  # REST requests the fake refuses with 503: the exchange is down until the test clears the fault


def _wait_for_log(process: DaemonProcess, text: str, timeout: float = 20.0) -> None:
    """Block until the daemon's log contains `text` (run it in a thread: the fake answers from the test's loop)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in process.log.read_text():
            return
        if process.proc.poll() is not None:
            raise AssertionError(f"daemon exited with {process.proc.returncode}:\n{process.log.read_text()}")
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not logged after {timeout}s:\n{process.log.read_text()}")


def _exit_code_within(process: DaemonProcess, timeout: float) -> int | None:
    """The exit code if the daemon ends within `timeout` seconds, else None (it is then killed, so the test never leaks it)."""
    try:
        return process.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        process.stop(signal.SIGKILL)
        return None


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["sigterm", "shutdown"])
async def test_a_stop_while_the_exchange_is_down_at_start_ends_the_daemon_cleanly(short_tmp: Path, how: str) -> None:
    async with FakeBinance({ETH: ETH_1M}, start=START) as fake:
        fake.set_balance("BTC", "1")
        config = write_config(short_tmp, fake, 0.01)
        fake.faults.rest_errors(503, DOWN)
        process = DaemonProcess(config, env=fake.credential_env())
        try:
            await anyio.to_thread.run_sync(_wait_for_log, process, "loading markets failed")
            if how == "sigterm":
                process.proc.send_signal(signal.SIGTERM)
            else:
                async with ControlClient(process.socket) as client:
                    reply = await client.call("shutdown")
                assert reply["ok"], reply
            # Exit 0 is the stop's doing: the start's own deadline (exchange.start_timeout_s) ends it with 2.
            code = await anyio.to_thread.run_sync(_exit_code_within, process, 30.0)
            assert code == 0, process.log.read_text()
        finally:
            await anyio.to_thread.run_sync(process.stop)
    log = process.log.read_text()
    assert "Traceback" not in log and "stopped before trading started" in log
    assert not process.socket.exists()
    assert not [path for path, _ in fake.requests if path == "/api/v3/order"]  # nothing was traded


async def _reply(process: DaemonProcess, cmd: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    async with ControlClient(process.socket) as client:
        return await client.call(cmd, args)


async def _dip_traded(process: DaemonProcess, fake: FakeBinance) -> None:
    """Stream the first live candle: buy_then_dip buys at market (dip-1, booked) and rests a limit buy (dip-2)."""
    await fake.wait_subscribed()
    await fake.stream(1)
    await until(lambda: [(o.client_id, o.status) for o in fake.orders] == [("dip-1", "FILLED"), ("dip-2", "NEW")], "a filled and a resting order")
    await until(lambda: _positions(process), "the market buy booked")


def _order_status(folder: Path, client_id: str) -> str | None:
    """How the journal's order table ended a dip order (submitted while it waits for an outcome)."""
    rows = journal_rows(folder, "SELECT status FROM orders WHERE strategy_id = 'dip' AND client_id = ?", client_id)
    return str(rows[0][0]) if rows else None


@pytest.mark.asyncio
async def test_a_strategy_unloaded_with_an_order_in_flight_settles_it_before_it_can_be_loaded_again(short_tmp: Path) -> None:
    async with FakeBinance({ETH: ETH_1M}, start=START) as fake:
        fake.set_balance("BTC", "1")
        config = write_config(short_tmp, fake, 0.01)  # far below the market: dip-2 rests
        async with daemon(config, fake) as process:
            await _dip_traded(process, fake)
            fake.faults.rest_errors(503, DOWN)  # the exchange goes down: the cancel of dip-2 cannot reach it
            unloaded = await call(process, "unload", {"id": "dip"})
            assert unloaded["state"] == "unloaded" and unloaded["settling"] == ["dip-2"]
            status = await call(process, "status")
            assert "dip" not in status["strategies"] and status["settling"] == {"dip": ["dip-2"]}
            # Loaded again now, it would take dip-2 back from the journal while its outcome is still coming.
            refused = await _reply(process, "load", {"file": "strategies/dip.json"})
            assert not refused["ok"] and refused["error"]["code"] == "invalid_state"
            assert "'dip'" in refused["error"]["message"] and "dip-2" in refused["error"]["message"]

            fake.faults.rest.clear()  # the exchange is back: the cancel lands, its outcome is booked and journalled
            await until(lambda: fake.orders[1].status == "CANCELED", "dip-2 cancelled on the exchange")
            await until(lambda: _order_status(short_tmp, "dip-2") == "cancelled", "the cancellation journalled")
            await until(lambda: _no_settling(process), "the unloaded strategy's account closed")
            loaded = await call(process, "load", {"file": "strategies/dip.json"})
            assert loaded["id"] == "dip"
            held = (await call(process, "positions"))["dip"]
            assert [p["quantity"] for p in held["positions"]] == [0.5] and held["pending_orders"] == []
        assert process.proc.returncode == 0
    assert _order_status(short_tmp, "dip-2") == "cancelled"
    with Journal(short_tmp / "journal.sqlite") as journal:
        assert journal.pending_orders("dip") == []
        assert [p["quantity"] for p in journal.open_positions("dip")] == [0.5]
    assert "[dip] the orders in flight after its unload have settled" in process.log.read_text()


async def _no_settling(process: DaemonProcess) -> bool:
    settling: dict[str, Any] = (await call(process, "status"))["settling"]
    return settling == {}


@pytest.mark.asyncio
async def test_a_strategy_not_restored_at_start_is_left_out_of_reconciliation_and_a_later_load_resolves_its_orders(short_tmp: Path) -> None:
    async with FakeBinance({ETH: ETH_1M}, start=START) as fake:
        fake.set_balance("BTC", "1")
        limit = limit_reached_within(fake, START, 30)
        config = write_config(short_tmp, fake, limit)
        async with daemon(config, fake) as first:
            await _dip_traded(first, fake)
            assert first.stop(signal.SIGKILL) == -signal.SIGKILL
        await fake.stream(30)  # while the daemon is down, the market reaches the limit: dip-2 fills
        assert [o.status for o in fake.orders] == ["FILLED", "FILLED"]
        # Disabled in the config now: dip is not restored at the next start (an unreadable journal
        # row no longer keeps a strategy from loading, so the operator's choice is the way here).
        data = orjson.loads(config.read_bytes())
        data["strategies"] = [{"file": "strategies/dip.json", "enabled": False}]
        config.write_bytes(orjson.dumps(data))

        async with daemon(config, fake) as second:
            assert "dip" not in (await call(second, "status"))["strategies"]
            # Its journalled book is kept for a later start, untouched by the reconciliation.
            assert journal_rows(short_tmp, "SELECT client_id FROM orders WHERE strategy_id = 'dip' AND status = 'submitted'") == [("dip-2",)]
            open_positions = journal_rows(short_tmp, "SELECT state FROM positions WHERE strategy_id = 'dip' AND status != 'closed'")
            assert [orjson.loads(state)["quantity"] for (state,) in open_positions] == [0.5]
            # Loaded by hand, it takes its book back and its pending order is looked up on the exchange.
            await call(second, "load", {"file": "strategies/dip.json"})
            held = await until(lambda: _two_positions(second), "dip-2's fill booked")
            assert sorted(p["quantity"] for p in held["positions"]) == [0.2, 0.5] and held["pending_orders"] == []
            assert [o.client_id for o in fake.orders] == ["dip-1", "dip-2"]  # nothing sent again
        assert second.proc.returncode == 0
    log = second.log.read_text()
    assert "filled while the bot was down" not in log  # reconciliation left dip's orders to dip
    with Journal(short_tmp / "journal.sqlite") as journal:
        assert journal.pending_orders("dip") == []
        assert sorted(p["quantity"] for p in journal.open_positions("dip")) == [0.2, 0.5]


async def _two_positions(process: DaemonProcess) -> dict[str, Any] | None:
    held: dict[str, Any] = (await call(process, "positions"))["dip"]
    return held if len(held["positions"]) == 2 else None


@pytest.mark.asyncio
async def test_unload_closing_positions_also_closes_one_an_entry_in_flight_opens_then_the_account_is_closed(tmp_path: Path) -> None:
    async with fake_market(btc="1") as fake:
        with journal_at(tmp_path) as journal:
            faults = BookingFaults(logging.getLogger("bot.tests.live_lifecycle"))
            async with gateway_on(fake, journal, faults=faults) as live:
                gateway = live.gateway
                manager = StrategyManager(live.rig.services, live.rig.factory, accounts=gateway, booking_faults=faults)
                manager.load(eth_strategy())
                manager.activate("s1")
                live.feed_served(START - 50, 50)
                live.act(OpenPosition(ETH, "long", 0.5, "market"))
                # Unloaded before the gateway's task has even sent the entry: it cannot be recalled.
                snapshot = manager.unload("s1", close_positions=True)
                assert snapshot["positions"] == [] and manager.settling() == {"s1": ["s1-1"]}
                assert "s1" in gateway.accounts
                with pytest.raises(StrategyStateError, match=r"'s1'.*s1-1"):
                    manager.load(eth_strategy())

                async with anyio.create_task_group() as tg:
                    tg.start_soon(settle_unloaded, manager, 0.02)
                    await until_live(lambda: not manager.settling(), 5.0, "the unloaded strategy settled")
                    tg.cancel_scope.cancel()
                # The entry filled after the unload; the position it opened was closed at market.
                assert [(o.client_id, o.side, o.status) for o in fake.orders] == [("s1-1", "BUY", "FILLED"), ("s1-2", "SELL", "FILLED")]
                (closed,) = live.events(PositionClosed)
                assert closed.trade.exit_reason == "unload" and closed.trade.quantity == 0.5
                assert "s1" not in gateway.accounts and gateway.tracked == {}
                assert journal.open_positions("s1") == [] and journal.pending_orders("s1") == []
                # Loaded again, it starts flat from its journalled book, and nothing is left to look up.
                restore_orchestrator(journal, manager.load(eth_strategy()))
                assert manager.get("s1").positions.positions == {} and manager.adopt_restored("s1") == []


@pytest.mark.asyncio
async def test_a_stop_resting_at_unload_stays_on_the_exchange_and_a_later_load_books_it_when_it_fired(tmp_path: Path) -> None:
    async with fake_market() as fake:
        with journal_at(tmp_path) as journal:
            async with gateway_on(fake, journal) as live:
                gateway = live.gateway
                manager = StrategyManager(live.rig.services, live.rig.factory, accounts=gateway)
                spec = eth_strategy(exits={"stop_loss_pct": 0.3})
                manager.load(spec)
                manager.activate("s1")
                live.feed_served(START - 50, 50)
                live.act(OpenPosition(ETH, "long", 0.5, "test"))
                (opened,) = await live.wait_for(PositionOpened)
                await until_live(lambda: [(o.client_id, o.status) for o in fake.orders] == [("s1-1", "FILLED"), ("s1-2", "NEW")], what="the stop resting")
                await until_live(lambda: gateway.in_flight("s1") == [], what="the gateway to confirm the stop")
                manager.unload("s1")
                # Nothing in flight: its account is closed at once, and the stop keeps protecting the position.
                assert manager.settling() == {} and "s1" not in gateway.accounts and gateway.tracked == {}
                series, stop = fake.market(ETH).series, opened.position.stop_loss
                assert stop is not None
                hit = next(i for i in range(START, len(series)) if float(series.values[i][2]) <= stop)
                await fake.stream(hit - START + 1)  # the market falls through the stop while the strategy is unloaded
                assert fake.orders[1].status == "FILLED" and [o["client_id"] for o in journal.pending_orders("s1")] == ["s1-2"]

                restore_orchestrator(journal, manager.load(spec))
                manager.adopt_restored("s1")  # as `load` does (its StopKeeper hands the stop over as it is restored)
                assert gateway.tracked["s1-2"].unconfirmed  # looked up by the poller
                (closed,) = await live.wait_for(PositionClosed)
                assert closed.trade.exit_reason == "stop_loss" and closed.trade.exit_price == pytest.approx(trigger(fake.orders[1]), rel=0.01)
                assert manager.get("s1").positions.positions == {} and journal.open_positions("s1") == [] and journal.pending_orders("s1") == []
                assert [o.client_id for o in fake.orders] == ["s1-1", "s1-2"]
