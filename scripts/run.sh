#!/usr/bin/env bash
# Set up, then run the daemon with config.json: paper trading on the bundled recorded candles,
# clock-driven, no network, no API keys. Steer it with `.venv/bin/bot ctl ...`; stop it with
# Ctrl-C (or `.venv/bin/bot ctl shutdown`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/bot run --config config.json "$@"
