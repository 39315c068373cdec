"""The `bot record` arguments, apart from the recorder so that `bot --help` imports none of it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.log_options import add_log_options


def add_record_parser(commands: Any) -> None:
    """Add the `record` subcommand to the `bot` parser's subcommands."""
    record = commands.add_parser("record", help="record an exchange's closed candles to CSV files replay can read")
    record.add_argument("--config", type=Path, help="take the exchange settings (urls, options, sandbox, keys' variables) from this config")
    record.add_argument("--exchange", help="ccxt exchange id (default: the config's exchange.id)")
    record.add_argument("--symbols", required=True, help="unified symbols, comma-separated: ETH/BTC,BTC/USDT")
    record.add_argument("--timeframe", default=None, help="candle timeframe (default: the config's exchange.feed.timeframe, else 1m)")
    record.add_argument("--out", required=True, type=Path, help="folder of the CSV files, one per symbol (SYMBOL_TF.csv)")
    record.add_argument("--since", help="first candle to record, ISO 8601 UTC (a resumed file continues after its last row instead)")
    record.add_argument("--until", help="stop before the candle opening at this ISO 8601 UTC time (default: run until stopped)")
    add_log_options(record)
