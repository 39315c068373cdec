"""A live-trading rig: real strategies whose orders go through the live gateway and real ccxt to the fake exchange."""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from bot.clock import WallClock
from bot.config.exchange import ExchangeConfig
from bot.config.models import StrategyConfig
from bot.journal import Journal
from bot.journal.turns import Turns
from bot.live.exchange import build_exchange
from bot.live.execution import CommitGate, LiveExchange
from bot.ohlcv import Candle
from bot.strategy.booking_faults import BookingFaults
from bot.strategy.orchestrator import TradingOrchestrator
from bot.trading.actions import Action
from bot.trading.positions import Position
from tests.fake_exchange import FakeBinance
from tests.live.support import ETH, until
from tests.support import E, Rig, strategy

START = 1200
# Fast settings so tests do not wait out real delays; the client timeout is short so a held
# order response (the timeout fault) times out quickly.
EXECUTION = {
    "poll_interval_s": 0.02, "stop_poll_interval_s": 0.05, "lookup_delay_s": 0.05, "retry_min_s": 0.01, "retry_max_s": 0.05,
    "request_window_s": 0.3,
}
TIMEOUT_MS = 400


def eth_strategy(**overrides: Any) -> StrategyConfig:
    """A strategy on ETH/BTC 1m that never signals by itself: tests queue its actions."""
    base: dict[str, Any] = {
        "symbol": ETH,
        "quantity": 0.5,
        "analyzers": [{"type": "ema_cross", "params": {"fast": 50, "slow": 100}}],
        "exit_threshold": None,
        "fees": {"maker_bps": 10, "taker_bps": 10},
        # In BTC, the fake account's quote asset: within what the tests fund it with.
        "starting_balance": 1.0,
    }
    base.update(overrides)
    return strategy(**base)


class CountedGateway(LiveExchange):
    """The live gateway, counting its poll rounds so a test can wait for some instead of for a time.

    A test can also hold the poller (`hold_polls`) and let it run a given number of rounds
    (`allow_polls`), so it decides when the poller asks the exchange relative to another caller.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.poll_rounds = 0
        self._polled = anyio.Event()
        # Rounds the poller may still start (None: any number).
        self._allowed: int | None = None
        self._allowance = anyio.Event()

    def hold_polls(self) -> None:
        """Start no further poll round until `allow_polls` (a round already asking goes on)."""
        self._allowed = 0

    def allow_polls(self, rounds: int | None = None) -> None:
        """Let the poller start `rounds` more rounds (None: any number, as before `hold_polls`)."""
        self._allowed = None if rounds is None else (self._allowed or 0) + rounds
        self._allowance.set()
        self._allowance = anyio.Event()

    async def poll_once(self) -> None:
        while self._allowed == 0:
            await self._allowance.wait()
        if self._allowed is not None:
            self._allowed -= 1
        await super().poll_once()
        self.poll_rounds += 1
        self._polled.set()
        self._polled = anyio.Event()

    async def polled(self, rounds: int, timeout: float = 5.0) -> None:
        """Wait until `rounds` more poll rounds have run."""
        target = self.poll_rounds + rounds
        with anyio.fail_after(timeout):
            while self.poll_rounds < target:
                await self._polled.wait()


class LiveRig:
    """A Rig trading through a running LiveExchange on a fake exchange."""

    def __init__(self, fake: FakeBinance, rig: Rig, gateway: CountedGateway) -> None:
        self.fake = fake
        self.rig = rig
        self.gateway = gateway

    def orch(self, strategy_id: str = "s1") -> TradingOrchestrator:
        return self.rig.manager.get(strategy_id)

    def act(self, *actions: Action, strategy_id: str = "s1") -> None:
        """Queue actions and drain them, as the orchestrator does after a candle."""
        orchestrator = self.orch(strategy_id)
        for action in actions:
            orchestrator.actions.put(action)
        orchestrator.actions.drain()

    def events(self, cls: type[E], strategy_id: str | None = "s1") -> list[E]:
        """Published events of one class for one strategy (None: market-wide events only)."""
        return [e for e in self.rig.events if isinstance(e, cls) and e.strategy_id == strategy_id]

    def positions(self, strategy_id: str = "s1") -> list[Position]:
        return list(self.orch(strategy_id).positions.positions.values())

    async def wait_for(self, cls: type[E], count: int = 1, strategy_id: str | None = "s1", timeout: float = 5.0) -> list[E]:
        """Wait until `count` events of a class have been published; return them."""
        await until(lambda: len(self.events(cls, strategy_id)) >= count, timeout, f"{count} {cls.type} event(s)")
        return self.events(cls, strategy_id)

    def served(self, first: int, count: int) -> list[Candle]:
        """Candles of the served ETH/BTC series, as the hub would get them."""
        series = self.fake.market(ETH).series
        return [Candle(series.stamps[i], *(float(v) for v in series.values[i])) for i in range(first, first + count)]

    def feed_served(self, first: int, count: int) -> None:
        """Push served candles through the hub (what the live feed does)."""
        self.rig.feed(ETH, self.served(first, count))


@asynccontextmanager
async def gateway_on(
    fake: FakeBinance,
    journal: Journal | None = None,
    *,
    arm: bool = True,
    faults: BookingFaults | None = None,
    commits: CommitGate | None = None,
    timeout_ms: int = TIMEOUT_MS,
    **execution: Any,
) -> AsyncIterator[LiveRig]:
    """A running gateway and a Rig on it (the journal, when given, hears every event first); stopped on exit.

    Stops may be placed on the exchange at once (`arm`); a test that restores and reconciles
    passes arm=False, and reconciliation arms them, as in the daemon. With `faults`, failed
    bookings go to the strategy manager built with them, as in the daemon (else they are logged).
    With `commits` (the daemon's Turns), an order decided inside a turn is placed after its commit.
    `timeout_ms` is the client's request timeout.
    """
    config = ExchangeConfig.model_validate(fake.signed_exchange_config(timeout_ms=timeout_ms, execution={**EXECUTION, **execution}))
    exchange, redact = build_exchange(config, fake.credential_env(), streaming=False)
    log = logging.getLogger("bot.tests.live")
    gateway = CountedGateway(
        exchange, config.execution, WallClock(), log, redact=redact, on_error=None if faults is None else faults.report, commits=commits
    )
    # The daemon's wiring: with its turns, the bus holds a turn's journalled events until the commit.
    rig = Rig(feeds={ETH: "1m"}, exchange=gateway, turns=commits if isinstance(commits, Turns) else None)
    if journal is not None:
        rig.services.bus.before_delivery = journal.record
    gateway_rig = LiveRig(fake, rig, gateway)
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(gateway.run)
            if arm:
                gateway.arm_stops()
            try:
                yield gateway_rig
            finally:
                tg.cancel_scope.cancel()
    finally:
        await exchange.close()


@asynccontextmanager
async def fake_market(btc: str = "1", eth: str = "0", stop_orders: bool = True, **binance: Any) -> AsyncIterator[FakeBinance]:
    """The fake exchange at candle START, serving ETH/BTC (taking stop-market orders or not), with a funded account.

    `binance`: more of FakeBinance's options (lot_step, buyer_commission_in_base).
    """
    from tests.support import ETH_1M

    async with FakeBinance({ETH: ETH_1M}, start=START, stop_loss=stop_orders, **binance) as fake:
        fake.set_balance("BTC", btc)
        fake.set_balance("ETH", eth)
        yield fake


def journal_at(folder: Path) -> Journal:
    """A real SQLite journal file in `folder`."""
    return Journal(folder / "journal.sqlite")
