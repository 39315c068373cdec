#!/usr/bin/env bash
# Set up, then paper-trade the default config.json over the bundled recorded candles.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/bot replay --config config.json --out runs/demo "$@"
