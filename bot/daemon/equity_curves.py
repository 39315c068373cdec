"""Each strategy's equity over time, kept in bounded memory for the API and the web view."""
from __future__ import annotations

from collections.abc import Callable
from typing import Final

from bot.events import Event
from bot.journal import JournalError
from bot.strategy.manager import StrategyManager

# Points a curve keeps at most: past that every other point goes and the spacing doubles, so a
# curve of weeks stays this long (the first point and the newest are always kept).
MAX_POINTS: Final[int] = 2_000


class EquityCurve:
    """One strategy's (ts, equity) points, oldest first, thinned as it grows; the newest point always the latest equity."""

    __slots__ = ("points", "spacing", "_anchor")

    def __init__(self, earlier: list[tuple[int, float]] | None = None) -> None:
        self.points: list[tuple[int, float]] = []
        # Least time (ms) between two kept points; 0 keeps every one until the first thinning.
        self.spacing = 0
        # The time of the newest point kept for good (the last one is replaced until `spacing` has passed since it).
        self._anchor: int | None = None
        for ts, equity in earlier or ():
            self.add(ts, equity)

    def add(self, ts: int, equity: float) -> None:
        """The equity at `ts` (a time before the newest point is ignored: the curve only moves forward)."""
        points = self.points
        if points and ts <= points[-1][0]:
            if ts == points[-1][0]:
                points[-1] = (ts, equity)
            return
        anchor = self._anchor
        if anchor is not None and len(points) > 1 and ts - anchor < self.spacing:
            points[-1] = (ts, equity)
            return
        points.append((ts, equity))
        self._anchor = ts
        if len(points) > MAX_POINTS:
            self._thin()

    def _thin(self) -> None:
        points = self.points
        kept = points[::2]
        if kept[-1] is not points[-1]:
            kept.append(points[-1])
        self.points = kept
        self.spacing = max(2 * self.spacing, (kept[-1][0] - kept[0][0]) // (MAX_POINTS // 2))
        self._anchor = kept[-1][0]


class EquityCurves:
    """A bus subscriber (candle events) that adds every loaded strategy's equity to its curve once per candle time.

    Each point is the strategy's own: the equity its book holds, at the close of the last candle it
    handled (a candle announced is not handled yet: the time is the strategy's, never the event's).
    A strategy's curve starts with its end-of-day snapshots from the journal (`earlier`), so a
    restart keeps its history by the day.
    """

    def __init__(self, manager: StrategyManager, earlier: Callable[[str], list[tuple[int, float]]]) -> None:
        self._manager = manager
        self._earlier = earlier
        self._curves: dict[str, EquityCurve] = {}
        self._last_ts = -1

    def __call__(self, event: Event) -> None:
        """Sample every strategy once per new candle time (another symbol's candle of the same close adds nothing)."""
        if event.ts <= self._last_ts:
            return
        self._last_ts = event.ts
        self.sample()

    def sample(self) -> None:
        """Add each loaded strategy's current equity at its own time; forget the curves of strategies no longer loaded."""
        manager = self._manager
        curves = self._curves
        ids = manager.ids()
        for sid in ids:
            orchestrator = manager.get(sid)
            now = orchestrator.now
            if now <= 0:
                continue  # it has handled no candle yet
            curve = curves.get(sid)
            if curve is None:
                curve = curves[sid] = EquityCurve(self._days(sid))
            curve.add(now, orchestrator.portfolio.equity)
        if len(curves) > len(ids):
            loaded = set(ids)
            for sid in [sid for sid in curves if sid not in loaded]:
                del curves[sid]

    def _days(self, strategy_id: str) -> list[tuple[int, float]]:
        try:
            return self._earlier(strategy_id)
        except JournalError:
            return []  # a row it cannot read: the curve starts now (this runs on the bus: a candle never fails over it)

    def points(self, strategy_id: str) -> list[tuple[int, float]]:
        """The strategy's curve as it stands, with its equity now as the newest point."""
        self.sample()
        curve = self._curves.get(strategy_id)
        return list(curve.points) if curve is not None else []
