"""Candles: the value type, timeframes, recorded-file reading, aggregation and history."""
