"""Hybrid: momentum and mean reversion blended, with the ADX regime deciding which one leads."""
from __future__ import annotations

import math
from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from bot.ohlcv import Candle, timeframe_ms
from bot.strategy.analyzer_params import BollingerParams, RsiParams
from bot.strategy.analyzers import BollingerAnalyzer, RsiAnalyzer
from bot.strategy.base import Strategy, StrategyContext, StrategyParams
from bot.strategy.conditions import MarketConditions, MarketFilter


class HybridParams(StrategyParams):
    """Parameters of hybrid."""

    roc_period: int = Field(default=10, ge=1, description="candles of the rate of change behind the momentum score")
    roc_full_pct: float = Field(default=0.5, gt=0, description="rate of change, in percent, that scores full momentum (+1 or -1)")
    rsi: RsiParams = Field(default=RsiParams(), description="RSI half of the mean-reversion score: +1 at oversold, -1 at overbought")
    bollinger: BollingerParams = Field(default=BollingerParams(), description="Bollinger half of the mean-reversion score: +1 at the lower band")
    adx_period: int = Field(default=14, ge=2, description="period of the ADX that tells the regime")
    range_adx: float = Field(default=20.0, ge=0, le=100, description="ADX at or below this: ranging, mean reversion dominates")
    trend_adx: float = Field(default=25.0, ge=0, le=100, validate_default=True, description="ADX at or above this: trending, momentum dominates")
    dominant_weight: float = Field(default=0.8, gt=0.5, le=1, description="weight of the dominant score; the other gets the rest")
    entry_threshold: float = Field(default=0.5, gt=0, le=1, description="enter long when the weighted score rises to at least this")
    exit_threshold: float = Field(default=0.3, gt=0, le=1, description="exit when the weighted score falls to -exit_threshold or below")
    market: MarketConditions = MarketConditions()

    @field_validator("trend_adx")
    @classmethod
    def _trend_above_range(cls, value: float, info: ValidationInfo) -> float:
        low = info.data.get("range_adx")
        if low is not None and value <= low:
            raise ValueError(f"trend_adx ({value}) must be above range_adx ({low})")
        return value


class Hybrid(Strategy[HybridParams]):
    """Long-only blend of momentum and mean reversion whose weights follow the ADX regime: the
    momentum score (rate of change over `roc_full_pct`, clipped to [-1, 1]) leads with
    `dominant_weight` when ADX >= `trend_adx`, the mean-reversion score (mean of the RSI and
    Bollinger analyzers' scores) leads when ADX <= `range_adx`, and in between they weigh the same.

    Enters on the candle where the weighted score rises through `entry_threshold` (from below
    it) while flat and the market conditions hold; exits when the score falls to
    `-exit_threshold`. Suits markets that alternate between trends and ranges, on 5m-1h
    candles, where neither a pure trend follower nor a pure mean reverter holds up; a stop-loss
    in the strategy file covers a regime change in the middle of a position.
    """

    name = "hybrid"
    version = "1.0.0"

    def __init__(self, params: HybridParams, context: StrategyContext) -> None:
        super().__init__(params, context)
        indicators = context.indicators()
        self.roc = indicators.require("roc", period=params.roc_period)
        self.adx = indicators.require("adx", period=params.adx_period)
        self.rsi = RsiAnalyzer(params.rsi, indicators)
        self.bands = BollingerAnalyzer(params.bollinger, indicators)
        self._rsi = indicators.require("rsi", period=params.rsi.period)
        self._bb = indicators.require("bollinger", period=params.bollinger.period, k=params.bollinger.k)
        self.market = MarketFilter(params.market, indicators, timeframe_ms(context.timeframe))
        self._prev_score: float | None = None
        self._last: dict[str, Any] = {}

    def scores(self, candle: Candle) -> dict[str, Any] | None:
        """The regime, the weights and the scores of the candle just closed; None until every indicator is warm."""
        roc, adx = self.roc.value, self.adx.value
        if roc is None or adx is None or self._rsi.value is None or self._bb.value is None or math.isnan(roc):
            return None
        p = self.params
        momentum = max(-1.0, min(1.0, roc / p.roc_full_pct))
        reversion = (self.rsi.score(candle) + self.bands.score(candle)) / 2.0
        if adx >= p.trend_adx:
            regime, w_momentum = "trend", p.dominant_weight
        elif adx <= p.range_adx:
            regime, w_momentum = "range", 1.0 - p.dominant_weight
        else:
            regime, w_momentum = "mixed", 0.5
        w_reversion = 1.0 - w_momentum
        return {
            "regime": regime,
            "adx": adx,
            "momentum": momentum,
            "mean_reversion": reversion,
            "momentum_weight": w_momentum,
            "mean_reversion_weight": w_reversion,
            "score": w_momentum * momentum + w_reversion * reversion,
        }

    def on_candle(self, symbol: str, timeframe: str, candle: Candle) -> None:
        """Enter when the weighted score rises through the entry threshold, exit when it falls to -exit_threshold."""
        if symbol != self.ctx.symbol or timeframe != self.ctx.timeframe:
            return
        now = self.scores(candle)
        prev, self._prev_score = self._prev_score, None if now is None else now["score"]
        self._last = now or {}
        if now is None:
            return
        ctx = self.ctx
        score: float = now["score"]
        position = ctx.position()
        if position is None:
            threshold = self.params.entry_threshold
            if prev is not None and prev < threshold <= score and ctx.is_flat() and self.market.allows("long", candle):
                ctx.signal("entry", score, symbol, candle, now)
                ctx.open("long")
        elif score <= -self.params.exit_threshold and position.closable:
            ctx.signal("exit", score, symbol, candle, now)
            ctx.close(position)

    def on_history(self, symbol: str, timeframe: str, candle: Candle) -> None:
        """Keep the previous score current, so the first live candle can detect a crossing."""
        if symbol == self.ctx.symbol and timeframe == self.ctx.timeframe:
            now = self.scores(candle)
            self._prev_score = None if now is None else now["score"]
            self._last = now or {}

    def reset(self) -> None:
        """Forget the previous score."""
        self._prev_score = None
        self._last = {}

    def snapshot(self) -> dict[str, Any]:
        """The regime, weights and scores of the last candle."""
        return dict(self._last)
