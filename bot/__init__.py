"""Multi-strategy trading bot: isolated orchestrators per strategy on one shared candle hub and event bus."""
