"""Data-driven replay of recorded candles and its report."""
