"""The tape: what a book's part before the decision does to shared state (events, global risk), recorded, to be done in its strategy's slot.

In lockstep the hub runs every strategy's `bar` before the minds decide, but in process strategy
i's `bar` comes after strategy i-1's `settle`. `bar` reads only its own book; its writes to what
strategies share (the bus's seq, the risk manager's tallies, exposure and kill switch) are
recorded here and replayed at the start of strategy i's slot, so they land where in process put
them. Arguments are evaluated when recorded (records are built at call time), and an event
stamped with `ts` None reads the candle clock, which does not move within a candle's step.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from bot.bus import StrategyPublisher
from bot.config.models import StrategyRiskConfig
from bot.events import StrategyEvent
from bot.trading.risk import RiskView

P = ParamSpec("P")
S = TypeVar("S", bound=StrategyEvent)


class Tape:
    """Calls recorded in order while `recording`, replayed by `replay`."""

    __slots__ = ("recording", "_calls")

    def __init__(self) -> None:
        self.recording = False
        self._calls: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []

    def record(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Keep one call for later."""
        self._calls.append((fn, args, kwargs))

    def replay(self) -> None:
        """Make the recorded calls, in order, and forget them."""
        calls = self._calls
        self._calls = []
        for fn, args, kwargs in calls:
            fn(*args, **kwargs)

    def __len__(self) -> int:
        return len(self._calls)


class TapedPublisher(StrategyPublisher):
    """A strategy's publisher whose events are recorded on the tape while it records."""

    __slots__ = ("_inner", "_tape")

    def __init__(self, inner: StrategyPublisher, tape: Tape) -> None:
        super().__init__(inner._bus, inner.strategy_id)
        self._inner = inner
        self._tape = tape

    def __call__(self, cls: Callable[Concatenate[int, int, int, str, P], S], ts: int | None, *args: P.args, **kwargs: P.kwargs) -> S:
        """Publish, or record the publishing while the tape records (the caller never reads the event back: none does)."""
        if self._tape.recording:
            self._tape.record(self._inner, (cls, ts, *args), kwargs)
            return None  # type: ignore[return-value]  # nothing reads a book's published event
        return self._inner(cls, ts, *args, **kwargs)


class TapedRisk:
    """A strategy's risk view whose writes are recorded on the tape while it records; a read then is refused (it would see the wrong order)."""

    __slots__ = ("_inner", "_tape")

    def __init__(self, inner: RiskView, tape: Tape) -> None:
        self._inner = inner
        self._tape = tape

    @property
    def limits(self) -> StrategyRiskConfig:
        """The strategy's own limits."""
        return self._inner.limits

    @limits.setter
    def limits(self, limits: StrategyRiskConfig) -> None:
        self._inner.limits = limits

    def check_open(self, quantity: float, price: float, open_positions: int, ts: int) -> tuple[str, str] | None:
        """The inner view's answer; never asked before the decision (bar opens nothing)."""
        if self._tape.recording:
            raise RuntimeError("a risk check while the book's part before the decision is taped: the lockstep order would be broken")
        return self._inner.check_open(quantity, price, open_positions, ts)

    def on_entry(self, position_id: str, notional: float) -> None:
        """Count an entry's exposure (recorded while taping)."""
        self._call(self._inner.on_entry, position_id, notional)

    def on_exit(self, position_id: str, fraction: float, net_pnl: float, ts: int) -> None:
        """Release exposure and book PnL (recorded while taping)."""
        self._call(self._inner.on_exit, position_id, fraction, net_pnl, ts)

    def release(self, position_id: str) -> None:
        """Forget an entry's exposure (recorded while taping)."""
        self._call(self._inner.release, position_id)

    def book(self, net_pnl: float, ts: int) -> None:
        """Book PnL (recorded while taping)."""
        self._call(self._inner.book, net_pnl, ts)

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        if self._tape.recording:
            self._tape.record(fn, args, {})
        else:
            fn(*args)
