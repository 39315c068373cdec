"""Trend strength: ADX."""
from __future__ import annotations

from bot.indicators.base import check_period
from bot.ohlcv import Candle


class ADX:
    """Wilder's average directional index; `value` is the ADX, with `plus_di` and `minus_di`.

    Follows talipp's ADX(di_period=period, adx_period=period) step by step (checked against its
    source), which differs from textbook Wilder in where the windows start:

    * the DIs divide Wilder-averaged DMs by talipp's ATR, whose first true range is the first
      candle's ``high - low``, one candle before the first directional movement exists;
    * +DM/-DM start with the second candle; their first averages are the plain means of the first
      `period` of them, then Wilder smoothing, so `plus_di`/`minus_di` appear with the
      `period + 1`-th candle;
    * the first ADX is the mean of the first `period` DX values (`value` appears with the
      `2 * period`-th candle), then Wilder smoothing;
    * if the ATR is 0 the DIs keep their previous values (0 if none); if +DI + -DI is 0 the DX
      keeps its previous value (0 if none).
    """

    __slots__ = (
        "period", "value", "plus_di", "minus_di", "ready",
        "_n", "_nm1", "_prev_high", "_prev_low", "_prev_close",
        "_atr", "_tr_count", "_tr_sum",
        "_spdm", "_smdm", "_dm_count", "_pdm_sum", "_mdm_sum",
        "_dx", "_dx_count", "_dx_sum",
    )

    period: int
    value: float | None
    plus_di: float | None
    minus_di: float | None
    ready: bool
    _n: float
    _nm1: float
    _prev_high: float | None
    _prev_low: float  # meaningful once _prev_high is set
    _prev_close: float | None
    _atr: float | None
    _tr_count: int
    _tr_sum: float
    _spdm: float | None
    _smdm: float  # meaningful once _spdm is set
    _dm_count: int
    _pdm_sum: float
    _mdm_sum: float
    _dx: float | None
    _dx_count: int
    _dx_sum: float

    def __init__(self, period: int = 14) -> None:
        self.period = check_period("adx", period)
        self._n = float(period)
        self._nm1 = float(period - 1)
        self.reset()

    def reset(self) -> None:
        """Return to the unwarmed state."""
        self._prev_high = None
        self._prev_low = 0.0
        self._prev_close = None
        self._atr = None
        self._tr_count = 0
        self._tr_sum = 0.0
        self._spdm = None
        self._smdm = 0.0
        self._dm_count = 0
        self._pdm_sum = 0.0
        self._mdm_sum = 0.0
        self._dx = None
        self._dx_count = 0
        self._dx_sum = 0.0
        self.value = None
        self.plus_di = None
        self.minus_di = None
        self.ready = False

    def update(self, candle: Candle) -> None:
        """Consume the next closed candle."""
        h = candle[2]
        lo = candle[3]
        n = self._n
        nm1 = self._nm1

        # Inline ATR (same as bot.indicators.ATR): a sub-object would cost a call per candle.
        pc = self._prev_close
        self._prev_close = candle[4]
        tr = h - lo if pc is None else (h if h > pc else pc) - (lo if lo < pc else pc)
        atr = self._atr
        if atr is not None:
            atr = (atr * nm1 + tr) / n
            self._atr = atr
        else:
            s = self._tr_sum + tr
            c = self._tr_count + 1
            self._tr_sum = s
            self._tr_count = c
            if c == self.period:
                atr = s / n
                self._atr = atr

        ph = self._prev_high
        pl = self._prev_low
        self._prev_high = h
        self._prev_low = lo
        if ph is None:
            return
        up = h - ph
        down = pl - lo
        pdm = up if up > down and up > 0.0 else 0.0
        mdm = down if down > up and down > 0.0 else 0.0

        spdm = self._spdm
        if spdm is not None:
            spdm = (spdm * nm1 + pdm) / n
            smdm = (self._smdm * nm1 + mdm) / n
        else:
            ps = self._pdm_sum + pdm
            ms = self._mdm_sum + mdm
            c = self._dm_count + 1
            self._pdm_sum = ps
            self._mdm_sum = ms
            self._dm_count = c
            if c < self.period:
                return
            spdm = ps / n
            smdm = ms / n
        self._spdm = spdm
        self._smdm = smdm

        # `period` DMs need `period + 1` candles, by which time the ATR (`period`) is set.
        if atr:
            pdi = 100.0 * spdm / atr
            mdi = 100.0 * smdm / atr
            self.plus_di = pdi
            self.minus_di = mdi
        else:
            pdi = self.plus_di if self.plus_di is not None else 0.0
            mdi = self.minus_di if self.minus_di is not None else 0.0
            self.plus_di = pdi
            self.minus_di = mdi

        denom = pdi + mdi
        if denom != 0.0:
            diff = pdi - mdi
            dx = 100.0 * (diff if diff >= 0.0 else -diff) / denom
        else:
            dx = self._dx if self._dx is not None else 0.0
        self._dx = dx

        value = self.value
        if value is not None:  # set together with `ready`
            self.value = (value * nm1 + dx) / n
            return
        s = self._dx_sum + dx
        c = self._dx_count + 1
        self._dx_sum = s
        self._dx_count = c
        if c == self.period:
            self.value = s / n
            self.ready = True

    def __repr__(self) -> str:
        return (
            f"ADX(period={self.period}, value={self.value!r}, plus_di={self.plus_di!r}, "
            f"minus_di={self.minus_di!r})"
        )
