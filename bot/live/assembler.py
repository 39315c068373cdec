"""Turns one symbol's stream of candle updates into closed candles in order, or asks for a REST fill."""
from __future__ import annotations

from dataclasses import dataclass

from bot.ohlcv import Candle


@dataclass(frozen=True, slots=True)
class Publish:
    """Publish this closed candle now."""

    candle: Candle


@dataclass(frozen=True, slots=True)
class Fill:
    """Fetch over REST and publish every candle opening before `until` not yet published, then go on."""

    until: int
    reason: str


Step = Publish | Fill


class CandleAssembler:
    """Decides, update by update, which candles are closed, which are duplicates, and where holes are.

    Updates may be partial (the forming candle), repeated, out of order, or missing. A candle
    is closed when the exchange flags it so (`closed=True`) or when a later candle starts.
    When the exchange does flag closes (`flags_closes`), a candle that ends without its flag
    lost its last update: its final values come from REST instead of the partial ones seen.
    Anything at or before the last published candle is ignored. A jump past the next expected
    candle is a hole: REST fills it before the newer candle is published.
    """

    def __init__(self, tf_ms: int, last_ts: int | None, flags_closes: bool) -> None:
        self.tf_ms = tf_ms
        self.last_ts = last_ts
        self.flags_closes = flags_closes
        # Open time of the first candle not yet accounted for (published, or known absent).
        self.next_ts: int | None = None if last_ts is None else last_ts + tf_ms
        self._forming: Candle | None = None
        self.ignored = 0

    def published(self, ts: int) -> None:
        """Record that the candle opening at `ts` was published (from the stream or REST)."""
        self.last_ts = ts
        self.next_ts = max(self.next_ts or 0, ts + self.tf_ms)
        if self._forming is not None and self._forming.ts <= ts:
            self._forming = None

    def filled(self, until: int) -> None:
        """Record that REST had nothing more before `until` (a true gap in the exchange's data)."""
        self.next_ts = max(self.next_ts or 0, until)

    def disconnected(self) -> None:
        """Forget the forming candle: its later updates (and maybe its close) were lost with the connection."""
        self._forming = None

    def update(self, candle: Candle, closed: bool | None) -> list[Step]:
        """The steps an update calls for, in order (often none: a partial update is only remembered)."""
        ts = candle.ts
        if self.last_ts is not None and ts <= self.last_ts:
            self.ignored += 1  # a duplicate, or an old update arriving late
            return []
        forming = self._forming
        if forming is not None and ts < forming.ts:
            self.ignored += 1  # older than the candle in progress: out of order
            return []
        steps: list[Step] = []
        if forming is not None and ts > forming.ts:
            # A later candle started, so the forming one is over.
            self._forming = None
            if self.flags_closes:
                steps.append(Fill(ts, f"candle {forming.ts} ended without its closing update"))
            else:
                if self._is_hole(forming.ts):
                    steps.append(Fill(forming.ts, f"candles missing before {forming.ts}"))
                steps.append(Publish(forming))
                self.next_ts = forming.ts + self.tf_ms
        if not any(isinstance(step, Fill) and step.until == ts for step in steps) and self._is_hole(ts):
            steps.append(Fill(ts, f"candles missing before {ts}"))
        if closed:
            steps.append(Publish(candle))
        else:
            self._forming = candle
        return steps

    def _is_hole(self, ts: int) -> bool:
        return self.next_ts is not None and ts > self.next_ts
