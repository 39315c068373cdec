"""`bot run` in mode live with stops on the exchange: the stop protects the position while the daemon is dead.

A real daemon buys at market (buy_then_dip) with a stop-loss; the stop rests on the fake
Binance as a STOP_LOSS order. The daemon is killed with -9; the market falls through the stop,
which fills on the exchange with no bot running. Restarted, the daemon books that fill as the
position's close before trading, and places nothing twice.
"""
from __future__ import annotations

import signal
from pathlib import Path

import orjson
import pytest

from bot.journal import Journal
from tests.daemon.test_live_trading import ETH, START, _positions, call, daemon, until, write_config
from tests.fake_exchange import FakeBinance
from tests.live.support import trigger
from tests.support import ETH_1M

STOP_PCT = 0.3


def _with_stop_loss(config: Path) -> None:
    strategy_file = config.parent / "strategies" / "dip.json"
    strategy = orjson.loads(strategy_file.read_bytes())
    strategy["exits"] = {"stop_loss_pct": STOP_PCT}
    strategy_file.write_bytes(orjson.dumps(strategy))


@pytest.mark.asyncio
async def test_a_stop_resting_on_the_exchange_closes_the_position_while_the_daemon_is_dead(short_tmp: Path) -> None:
    async with FakeBinance({ETH: ETH_1M}, start=START) as fake:
        fake.set_balance("BTC", "1")
        config = write_config(short_tmp, fake, 0.01)  # the dip's limit buy rests far below: it never fills
        _with_stop_loss(config)
        async with daemon(config, fake) as first:
            await fake.wait_subscribed()
            await fake.stream(1)
            # The dip's limit order and the stop go out concurrently: either may reach the exchange first.
            await until(
                lambda: sorted((o.client_id, o.type, o.status) for o in fake.orders)
                == [("dip-1", "MARKET", "FILLED"), ("dip-2", "LIMIT", "NEW"), ("dip-3", "STOP_LOSS", "NEW")],
                "the entry filled, the dip resting, the stop resting",
            )
            stop_order = next(o for o in fake.orders if o.client_id == "dip-3")
            held = await until(lambda: _positions(first), "the market buy booked")
            (position,) = held["positions"]
            status = await until(
                lambda: _resting(call(first, "status")), "the stop confirmed on the exchange in status"
            )
            assert status[0]["client_id"] == "dip-3" and status[0]["stop_price"] == pytest.approx(position["stop_loss"])
            assert trigger(stop_order) == pytest.approx(position["stop_loss"], abs=1e-6)
            assert first.stop(signal.SIGKILL) == -signal.SIGKILL  # a crash: nothing runs on our side now

        series = fake.market(ETH).series
        hit = next(i for i in range(START + 1, len(series)) if float(series.values[i][2]) <= position["stop_loss"])
        await fake.stream(hit - START + 1)
        assert stop_order.status == "FILLED"

        async with daemon(config, fake) as second:
            held = await call(second, "positions")
            assert held["dip"]["positions"] == [] and held["dip"]["pending_orders"] == ["dip-2"]
            await fake.wait_subscribed(2)  # so the two candles reach it, rather than nobody
            await fake.stream(2)
            state = await call(second, "status")
            assert state["execution"]["stops"]["positions"] == {}
            # Nothing was sent after the restart: the stop was the close, the dip still rests.
            assert sorted(o.client_id for o in fake.orders) == ["dip-1", "dip-2", "dip-3"]
        assert second.proc.returncode == 0
    log = second.log.read_text()
    assert "dip-3 filled while the bot was down" in log
    with Journal(short_tmp / "journal.sqlite") as journal:
        assert journal.open_positions("dip") == []
        assert [o["client_id"] for o in journal.pending_orders("dip")] == ["dip-2"]
        (trade,) = journal.closed_trades("dip")
        assert trade.trade.exit_reason == "stop_loss" and trade.trade.exit_price == pytest.approx(position["stop_loss"], rel=1e-3)


async def _resting(status: object) -> list[dict[str, object]] | None:
    state = await status  # type: ignore[misc]
    rows = state["execution"]["stops"]["positions"].get("dip", [])
    return rows if rows and rows[0]["state"] == "resting" else None
