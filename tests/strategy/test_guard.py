"""The strategy guard: an Exception from a strategy's code is its failure; cancellation and interrupts never are."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.errors import StrategyError, StrategyStateError
from bot.events import StrategyFault
from bot.ohlcv import Candle
from bot.strategy.catalog import StrategyCatalog
from bot.strategy.guard import attempt, build
from tests.support import Rig, module_strategy, repo_catalog, strategy

RAISER = '''
from pydantic import Field
from bot.strategy.base import Strategy, StrategyParams


class RaiserParams(StrategyParams):
    """Parameters."""

    kind: str = Field(default="none")


class Raiser(Strategy[RaiserParams]):
    """Raises what it is told to on its first trading candle.

    Suits guard tests.
    """

    name = "raiser"
    version = "1.0.0"

    def on_candle(self, symbol, timeframe, candle):
        kind = self.params.kind
        if kind == "value":
            raise ValueError("bad value")
        if kind == "interrupt":
            raise KeyboardInterrupt
        if kind == "cancel":
            import asyncio
            raise asyncio.CancelledError
'''


def _boom(exc: BaseException) -> None:
    raise exc


def test_attempt_returns_an_exception_and_nothing_when_the_call_returns() -> None:
    error = attempt(_boom, ZeroDivisionError("x"))
    assert isinstance(error, ZeroDivisionError) and str(error) == "x"
    assert attempt(len, "abc") is None


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), SystemExit(3), asyncio.CancelledError(), GeneratorExit()])
def test_attempt_never_swallows_what_is_not_an_exception(exc: BaseException) -> None:
    with pytest.raises(type(exc)):
        attempt(_boom, exc)


def test_build_turns_a_strategys_exception_into_its_refusal_and_lets_the_bots_own_through() -> None:
    with pytest.raises(StrategyError, match="strategy 's' failed: ValueError: bad params") as caught:
        build("s", _boom, ValueError("bad params"))
    assert isinstance(caught.value.cause, ValueError)
    refusal = StrategyStateError("not now")
    with pytest.raises(StrategyStateError) as passed:
        build("s", _boom, refusal)
    assert passed.value is refusal
    with pytest.raises(KeyboardInterrupt):
        build("s", _boom, KeyboardInterrupt())


def _rig(tmp_path: Path) -> Rig:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "raiser.py").write_text(RAISER)
    return Rig(catalog=StrategyCatalog.discover([folder]))


def test_a_strategys_exception_fails_it_alone_through_the_guard(tmp_path: Path, btc_candles: list[Candle]) -> None:
    rig = _rig(tmp_path)
    rig.start(module_strategy("raiser", id="bad", params={"kind": "value"}), module_strategy("raiser", id="good"))
    rig.feed("BTC/USD", btc_candles[:3])
    assert rig.manager.states() == {"bad": "failed", "good": "active"}
    (error,) = rig.of_type(StrategyFault, "bad")
    assert error.error == "ValueError: bad value" and error.where.startswith("raiser.py:")
    assert error.note == "strategy marked failed; its positions stay protected"
    assert rig.manager.get("good").metrics.candles == 3


@pytest.mark.parametrize(("kind", "raised"), [("interrupt", KeyboardInterrupt), ("cancel", asyncio.CancelledError)])
def test_an_interrupt_or_cancellation_from_strategy_code_is_not_its_failure(
    tmp_path: Path, btc_candles: list[Candle], kind: str, raised: type[BaseException]
) -> None:
    rig = _rig(tmp_path)
    rig.start(module_strategy("raiser", id="stop", params={"kind": kind}))
    with pytest.raises(raised):
        rig.feed("BTC/USD", btc_candles[:1])
    assert rig.manager.states() == {"stop": "active"} and not rig.of_type(StrategyFault)



@pytest.mark.parametrize("score", [float("nan"), float("inf"), float("-inf")])
def test_a_signal_score_that_is_not_a_finite_number_is_refused(btc_candles: list[Candle], score: float) -> None:
    """JSON has no NaN: an event log line holding one could not be read back. Raised in the strategy's own call,
    so the guarded seam fails that strategy alone."""
    rig = Rig(catalog=repo_catalog())
    rig.start(module_strategy("ema_cross", id="s"))
    context = rig.manager.get("s").strategy.ctx
    with pytest.raises(ValueError, match="a signal's score must be a finite number"):
        context.signal("enter", score, "BTC/USD", btc_candles[0])
    context.signal("enter", 1, "BTC/USD", btc_candles[0])  # an int is a finite number


def test_a_failure_after_a_committed_turn_of_a_strategy_that_stopped_trading_meanwhile_is_reported_not_dropped() -> None:
    """Its send or a subscriber failed once its turn was committed, and it was deactivated while the commit was pending."""
    rig = Rig()
    rig.start(strategy(id="s"))
    rig.manager.deactivate("s", "manage")
    orchestrator = rig.manager.get("s")
    rig.manager.on_handler_error(orchestrator, orchestrator.on_candle, RuntimeError("the gateway's task group has ended"))
    faults = [e for e in rig.events if isinstance(e, StrategyFault)]
    assert [(f.error, f.note) for f in faults] == [("RuntimeError: the gateway's task group has ended", "after its turn")]
    assert orchestrator.state == "dormant"
