"""Live market data through ccxt: exchange construction, candle feed, recorder."""
