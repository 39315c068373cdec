"""`bot run --fresh` in mode live: refused while the journal holds positions or orders on the exchange, unless --force."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import anyio
import pytest

from tests.daemon.process import DaemonProcess
from tests.daemon.test_live_trading import ETH, START, call, daemon, until, write_config
from tests.fake_exchange import FakeBinance
from tests.support import ETH_1M


def open_work(journal: Path) -> tuple[int, int]:
    """Positions not closed and orders still submitted in a journal file, read with plain SQLite."""
    with closing(sqlite3.connect(f"{journal.as_uri()}?mode=ro", uri=True)) as db:
        positions = db.execute("SELECT COUNT(*) FROM positions WHERE status != 'closed'").fetchone()[0]
        orders = db.execute("SELECT COUNT(*) FROM orders WHERE status = 'submitted'").fetchone()[0]
    return int(positions), int(orders)


def journal_files(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_ino for p in folder.iterdir() if p.name.startswith("journal.sqlite")}


async def bot_run(config: Path, fake: FakeBinance, *args: str) -> subprocess.CompletedProcess[str]:
    """`bot run --config CONFIG ARGS` to its end, with the fake's keys in its environment (the fake keeps answering meanwhile)."""
    command = [sys.executable, "-m", "bot", "run", "--config", str(config), *args]
    environment = {**os.environ, **fake.credential_env()}
    return await anyio.to_thread.run_sync(
        lambda: subprocess.run(command, cwd=config.parent, env=environment, capture_output=True, text=True, timeout=60)
    )


@pytest.mark.asyncio
async def test_fresh_in_mode_live_is_refused_while_the_journal_holds_a_position_and_an_order_and_force_moves_it(short_tmp: Path) -> None:
    async with FakeBinance({ETH: ETH_1M}, start=START) as fake:
        fake.set_balance("BTC", "1")
        # A market buy, then a limit buy far below the market: it rests on the exchange.
        config = write_config(short_tmp, fake, 0.01)
        async with daemon(config, fake) as first:
            await fake.wait_subscribed()
            await fake.stream(1)
            await until(lambda: [(o.client_id, o.status) for o in fake.orders] == [("dip-1", "FILLED"), ("dip-2", "NEW")], "a fill and a resting order", timeout=30)
            held = await until(lambda: _held(first), "the position and the resting order journalled", timeout=30)
            assert held == (1, ["dip-2"])
        assert first.proc.returncode == 0
        files = journal_files(short_tmp)
        assert open_work(short_tmp / "journal.sqlite") == (1, 1)

        done = await bot_run(config, fake, "--fresh")
        assert done.returncode == 2, done.stderr
        assert done.stderr.splitlines() == [
            ("error: --fresh in mode live: journal.sqlite holds 1 open position and 1 pending order on the exchange; a new journal "
            "would leave them and their stop orders unmanaged: close them first (bot ctl), or add --force to start over all the same")
        ]
        assert journal_files(short_tmp) == files  # nothing moved: a plain bot run resumes it
        assert (await bot_run(config, fake, "--force")).stderr.splitlines() == [
            "error: --force only goes with --fresh (it lets --fresh start over in mode live with positions or orders open)"
        ]

        # --force: the operator takes it on; the journal is moved aside (and kept), the daemon starts a new one.
        forced = DaemonProcess(config, env=fake.credential_env(), args=["--fresh", "--force"])
        try:
            with anyio.fail_after(30):
                await anyio.to_thread.run_sync(forced.wait_ready)
            # The new journal knows no position: the strategy buys again, under client ids the exchange has not
            # seen (dip-1 and dip-2 are the old journal's: a lookup by id after a lost answer would find those).
            await fake.wait_subscribed(2)
            await fake.stream(1)
            await until(lambda: len(fake.orders) == 4 or None, "the new journal's two orders", timeout=30)
            assert [o.client_id for o in fake.orders] == ["dip-1", "dip-2", "dip-3", "dip-4"]
        finally:
            assert await anyio.to_thread.run_sync(forced.stop) == 0
    log = forced.log.read_text()
    (aside,) = [p for p in short_tmp.iterdir() if p.name.startswith("journal.sqlite.2")]
    assert f"--fresh: moved journal.sqlite aside to {aside.name}; starting a new journal" in log
    assert (
        "WARNING --fresh --force: the journal moved aside holds 1 open position and 1 pending order: they stay open on the exchange, "
        "with their stop orders, unknown to the new journal; close them there"
    ) in log
    assert "new journal journal.sqlite" in log
    assert open_work(aside) == (1, 1)


async def _held(process: DaemonProcess) -> tuple[int, list[str]] | None:
    held = (await call(process, "positions"))["dip"]
    return (len(held["positions"]), held["pending_orders"]) if held["positions"] and held["pending_orders"] else None
