"""Pairs arbitrage: trade the spread of two correlated symbols back to its mean."""
from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field, model_validator

from bot.ohlcv import Candle, timeframe_ms
from bot.strategy.base import Strategy, StrategyContext, StrategyParams, Stream


class PairsParams(StrategyParams):
    """Parameters of pairs_arbitrage."""

    second_symbol: str = Field(default="XMR/BTC", min_length=1, description="the other leg; the strategy file's symbol is the first")
    window: int = Field(default=100, ge=10, le=10_000, description="candles in the rolling spread statistics")
    hedge: Literal["ols", "none"] = Field(
        default="ols", description="spread = log(first) - beta*log(second), beta by rolling least squares ('ols') or 1 ('none')"
    )
    entry_z: float = Field(default=2.0, gt=0, description="open when the spread's z-score reaches +-entry_z")
    exit_z: float = Field(
        default=0.5, ge=0, description="close when the z-score, signed by the pair's side, is at most exit_z: back near the mean or past it"
    )
    stop_z: float = Field(default=4.0, gt=0, description="close when the z-score runs on against the pair to stop_z (its entry side only)")
    max_hold_bars: int | None = Field(default=288, ge=1, description="close a pair held this many candles of the timeframe, gaps included")

    @model_validator(mode="after")
    def _ordered(self) -> PairsParams:
        if not self.exit_z < self.entry_z < self.stop_z:
            raise ValueError(f"need exit_z < entry_z < stop_z, got exit_z={self.exit_z}, entry_z={self.entry_z}, stop_z={self.stop_z}")
        return self


class SpreadWindow:
    """Rolling log-price spread of two series and its z-score (the statistics include the newest candle)."""

    __slots__ = ("_window", "_hedge", "_xs", "_ys", "_spreads")

    def __init__(self, window: int, hedge: str) -> None:
        self._window = window
        self._hedge = hedge
        self._xs: deque[float] = deque(maxlen=window)
        self._ys: deque[float] = deque(maxlen=window)
        self._spreads: deque[float] = deque(maxlen=window)

    def reset(self) -> None:
        """Forget every price."""
        self._xs.clear()
        self._ys.clear()
        self._spreads.clear()

    def update(self, first: float, second: float) -> tuple[float, float] | None:
        """Take one aligned pair of closes; return (z-score, beta) once the window is full, else None."""
        y, x = math.log(first), math.log(second)
        self._ys.append(y)
        self._xs.append(x)
        beta = self.beta()
        self._spreads.append(y - beta * x)
        if len(self._spreads) < self._window:
            return None
        # The spread of the whole window under today's beta, so the z-score compares like with like.
        spreads = [yy - beta * xx for yy, xx in zip(self._ys, self._xs)]
        mean = sum(spreads) / len(spreads)
        variance = sum((s - mean) ** 2 for s in spreads) / len(spreads)
        if variance <= 0:
            return None
        return (spreads[-1] - mean) / math.sqrt(variance), beta

    def beta(self) -> float:
        """Least-squares slope of log(first) on log(second) over the window (1 without hedging)."""
        if self._hedge == "none" or len(self._xs) < 2:
            return 1.0
        n = len(self._xs)
        mx = sum(self._xs) / n
        my = sum(self._ys) / n
        var = sum((x - mx) ** 2 for x in self._xs)
        if var <= 0:
            return 1.0
        return sum((x - mx) * (y - my) for x, y in zip(self._xs, self._ys)) / var


class PairsArbitrage(Strategy[PairsParams]):
    """Market-neutral pairs trade: when the z-score of the spread between two correlated symbols
    (log prices, rolling least-squares hedge ratio) reaches +-entry_z, it shorts the rich leg and
    buys the cheap one as one paired action (reason spread_rich when the first symbol is rich,
    spread_cheap when it is cheap), and closes both legs together: z_exit when the z-score, signed
    by the pair's side (z for a pair short the first symbol, -z for one long it), is at most
    exit_z, so a spread that overshoots past the mean also exits; z_stop when that signed z-score
    reaches stop_z (the spread ran on in the direction it entered); time_limit when the pair has
    been held max_hold_bars candles of the timeframe, counted by elapsed time from the first leg's
    fill, gaps included.

    Decisions happen only on bars where both symbols have a candle; each leg fills at its own
    symbol's next candle, so after a gap the legs may fill at different times (exits wait for
    both). The z-score is the newest spread's against the whole window, every spread recomputed
    with the newest hedge ratio, with the population variance.

    Suits two assets driven by the same factor (two altcoins against BTC, two perpetuals of one
    coin) in a ranging market; a lasting break of the relationship is what the z-stop is for.
    Needs both symbols at the same timeframe; legs are sized to equal notional (the first leg is
    the file's quantity), and risk.max_open_positions must allow two positions.
    """

    name = "pairs_arbitrage"
    version = "1.0.0"

    def __init__(self, params: PairsParams, context: StrategyContext) -> None:
        super().__init__(params, context)
        if params.second_symbol == context.symbol:
            raise ValueError(f"second_symbol must differ from the strategy's symbol {context.symbol!r}")
        spec = context.spec
        if spec.exits.stop_loss_pct is not None or spec.exits.take_profit or spec.exits.trailing is not None:
            # Legs of a pair have no stops of their own (one leg stopped alone would leave the
            # other unhedged): refuse exits the user would believe are in force.
            raise ValueError("exits (stop_loss_pct, take_profit, trailing) do not apply to pair legs: remove them; stop_z and max_hold_bars end a pair")
        if spec.risk.max_open_positions < 2:
            raise ValueError(f"risk.max_open_positions is {spec.risk.max_open_positions}: a pair needs at least 2")
        self.spread = SpreadWindow(params.window, params.hedge)
        self._closes: dict[str, tuple[int, float]] = {}
        self._last_bar = -1
        self.z: float | None = None
        self.beta = 1.0
        self._tf_ms = timeframe_ms(context.timeframe)
        self._held_bars = 0

    def subscriptions(self) -> Sequence[Stream]:
        """Both legs at the trading timeframe."""
        return ((self.ctx.symbol, self.ctx.timeframe), (self.params.second_symbol, self.ctx.timeframe))

    def _aligned(self, symbol: str, candle: Candle) -> bool:
        """Record a leg's close; True once both legs have closed the same bar (evaluated once)."""
        self._closes[symbol] = (candle.ts, candle.close)
        first = self._closes.get(self.ctx.symbol)
        second = self._closes.get(self.params.second_symbol)
        if first is None or second is None or first[0] != second[0] or first[0] == self._last_bar:
            return False
        self._last_bar = first[0]
        result = self.spread.update(first[1], second[1])
        self.z, self.beta = (None, self.beta) if result is None else result
        return True

    def on_history(self, symbol: str, timeframe: str, candle: Candle) -> None:
        """Keep the spread window current."""
        self._aligned(symbol, candle)

    def reset(self) -> None:
        """Forget the spread window."""
        self.spread.reset()
        self._closes.clear()
        self._last_bar = -1
        self.z = None

    def on_candle(self, symbol: str, timeframe: str, candle: Candle) -> None:
        """Once both legs closed the bar: open, hold or close the pair on the spread's z-score."""
        if not self._aligned(symbol, candle):
            return
        ctx = self.ctx
        legs = [p for p in ctx.positions() if p.group is not None]
        z = self.z
        if legs:
            # From the legs' fill time, so a restart does not reset the clock.
            self._held_bars = (candle.ts - min(p.entry_ts for p in legs)) // self._tf_ms + 1
            group = legs[0].group
            assert group is not None
            if any(not p.closable for p in legs):
                return
            if len(legs) < 2:
                # The other leg is still waiting for its fill; if its entry is cancelled instead,
                # the position manager closes this one (PositionManager.cancel_pending).
                return
            first = next(p for p in legs if p.symbol == ctx.symbol)
            reason = self._exit_reason(z, first.side == "long")
            if reason is not None:
                ctx.signal("exit", z or 0.0, symbol, candle, self._details(reason))
                ctx.close_pair(group, reason)
            return
        if z is None or abs(z) < self.params.entry_z or not ctx.is_flat(ctx.symbol) or not ctx.is_flat(self.params.second_symbol):
            return
        first_price = self._closes[ctx.symbol][1]
        second_price = self._closes[self.params.second_symbol][1]
        first_qty = ctx.quantity
        second_qty = first_qty * first_price / second_price
        self._held_bars = 0
        ctx.signal("entry", z, symbol, candle, self._details("z_entry"))
        if z > 0:  # the first leg is rich against the second: sell it, buy the second
            ctx.open_pair(self.params.second_symbol, second_qty, ctx.symbol, first_qty, "spread_rich")
        else:
            ctx.open_pair(ctx.symbol, first_qty, self.params.second_symbol, second_qty, "spread_cheap")

    def _exit_reason(self, z: float | None, long_first: bool) -> str | None:
        p = self.params
        if z is not None:
            # Long the first leg means it was cheap (z negative): done when z comes back up.
            signed = -z if long_first else z
            if signed <= p.exit_z:
                return "z_exit"
            if signed >= p.stop_z:
                return "z_stop"
        if p.max_hold_bars is not None and self._held_bars >= p.max_hold_bars:
            return "time_limit"
        return None

    def _details(self, reason: str) -> dict[str, Any]:
        return {"z": self.z, "beta": self.beta, "reason": reason, "held_bars": self._held_bars}

    def snapshot(self) -> dict[str, Any]:
        """The latest z-score and hedge ratio."""
        return {"z": self.z, "beta": self.beta, "held_bars": self._held_bars}
