"""Incremental O(1)-per-candle technical indicators and the per-timeframe registry sharing them."""
from bot.indicators.averages import EMA, SMA
from bot.indicators.bands import BollingerBands, Donchian
from bot.indicators.base import SOURCES, Indicator
from bot.indicators.momentum import ROC, RSI
from bot.indicators.registry import INDICATOR_NAMES, IndicatorRegistry
from bot.indicators.trend import ADX
from bot.indicators.volatility import ATR

__all__ = [
    "ADX",
    "ATR",
    "EMA",
    "INDICATOR_NAMES",
    "ROC",
    "RSI",
    "SMA",
    "SOURCES",
    "BollingerBands",
    "Donchian",
    "Indicator",
    "IndicatorRegistry",
]
