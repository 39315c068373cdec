"""Each strategy's equity over time, kept in bounded memory for the API and the web view."""
from __future__ import annotations

from array import array
from collections.abc import Iterable
from typing import Final

from bot.strategy.delivery import CandleOwner
from bot.strategy.manager import StrategyManager
from bot.strategy.orchestrator import TradingOrchestrator

# Points a curve keeps at most: past that the spacing between points grows so that the whole
# curve, evenly in time, fits in half of them; a curve of months stays this long.
MAX_POINTS: Final[int] = 2_000


def thinned(times: Iterable[int], values: Iterable[float], spacing: int) -> tuple[array[int], array[float]]:
    """The points at least `spacing` ms after the point kept before them, the first and the last always kept."""
    kept_times: array[int] = array("q")
    kept_values: array[float] = array("d")
    pairs = list(zip(times, values, strict=True))
    for index, (ts, value) in enumerate(pairs):
        if not kept_times or ts - kept_times[-1] >= spacing or index == len(pairs) - 1:
            kept_times.append(ts)
            kept_values.append(value)
    return kept_times, kept_values


class EquityCurve:
    """One strategy's (ts, equity) points, oldest first: evenly spread in time as it grows, the newest point always the latest equity."""

    __slots__ = ("times", "values", "spacing")

    def __init__(self) -> None:
        # Two arrays of machine numbers: 16 bytes a point, not a tuple of two boxed numbers each.
        self.times: array[int] = array("q")
        self.values: array[float] = array("d")
        # Least time (ms) between two kept points; 0 keeps every one until the first thinning.
        self.spacing = 0

    def add(self, ts: int, equity: float) -> None:
        """The equity at `ts` (a time before the newest point is ignored: the curve only moves forward)."""
        times = self.times
        if times:
            last = times[-1]
            if ts <= last:
                if ts == last:
                    self.values[-1] = equity
                return
            # The newest point stands in for its stretch until `spacing` has passed since the point before it.
            if len(times) > 1 and ts - times[-2] < self.spacing:
                times[-1] = ts
                self.values[-1] = equity
                return
        times.append(ts)
        self.values.append(equity)
        if len(times) > MAX_POINTS:
            self._thin()

    def prepend(self, earlier: list[tuple[int, float]]) -> None:
        """Points from before the first one (the journalled days of an earlier run); later ones are ignored."""
        first = self.times[0] if self.times else None
        older = [(ts, value) for ts, value in earlier if first is None or ts < first]
        if older:
            self.times = array("q", [ts for ts, _ in older]) + self.times
            self.values = array("d", [value for _, value in older]) + self.values
            if len(self.times) > MAX_POINTS:
                self._thin()

    def points(self, at_most: int) -> list[tuple[int, float]]:
        """At most `at_most` of its points, evenly spread in time, the first and the newest among them."""
        times, values = self.times, self.values
        if len(times) > at_most:
            spacing = -(-(times[-1] - times[0]) // max(at_most - 1, 1))
            times, values = thinned(times, values, spacing)
            while len(times) > at_most:
                spacing *= 2
                times, values = thinned(times, values, spacing)
        return list(zip(times, values, strict=True))

    def _thin(self) -> None:
        span = self.times[-1] - self.times[0]
        self.spacing = max(2 * self.spacing, -(-span // (MAX_POINTS // 2)))
        self.times, self.values = thinned(self.times, self.values, self.spacing)


class EquityCurves:
    """Each strategy's equity curve: a point after each turn it has had committed (its equity at the close it handled).

    The daemon's delivery calls `handled` after a strategy's turn, so every candle a strategy handles
    is a point, at its own time, however fast candles come. Nothing here reads the journal: the
    `equity` command puts a strategy's journalled days in front of its curve (`prepend`), once.
    """

    def __init__(self, after: int | None = None, handled_before: dict[str, int] | None = None) -> None:
        # Turns at or before the close an earlier run had reached (the feed's, or a strategy's own when it
        # was ahead) replay what that run handled: the equity then was the journalled days', not the book's now.
        self._after = after if after is not None else 0
        self._floors = {sid: max(ts, self._after) for sid, ts in (handled_before or {}).items()}
        self._curves: dict[str, EquityCurve] = {}
        # Strategies whose journalled days are in front of their curve.
        self.seeded: set[str] = set()

    def handled(self, owner: CandleOwner) -> None:
        """After a turn of `owner`: its equity at the close of the candle it handled."""
        if isinstance(owner, TradingOrchestrator) and owner.now > self._floors.get(owner.strategy_id, self._after):
            curve = self._curves.get(owner.strategy_id)
            if curve is None:
                curve = self._curves[owner.strategy_id] = EquityCurve()
            curve.add(owner.now, owner.portfolio.equity)

    def refresh_one(self, orchestrator: TradingOrchestrator) -> None:
        """The strategy's equity now as its newest point, when its clock moved past its curve's floor."""
        sid = orchestrator.strategy_id
        if orchestrator.now > self._floors.get(sid, self._after):
            self.curve(sid).add(orchestrator.now, orchestrator.portfolio.equity)

    def forget_unloaded(self, manager: StrategyManager) -> None:
        """Forget the curves of strategies no longer loaded."""
        ids = manager.ids()
        if len(self._curves) > len(ids):
            loaded = set(ids)
            for sid in [sid for sid in self._curves if sid not in loaded]:
                del self._curves[sid]
                self.seeded.discard(sid)

    def curve(self, strategy_id: str) -> EquityCurve:
        """The strategy's curve (an empty one until it has handled a candle)."""
        curve = self._curves.get(strategy_id)
        if curve is None:
            curve = self._curves[strategy_id] = EquityCurve()
        return curve
