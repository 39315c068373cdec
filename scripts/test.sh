#!/usr/bin/env bash
# Set up (with the cluster extra: tests/cluster starts the nats-server it puts in the venv), lint
# (ruff, mypy: any finding stops here), then run the whole test suite (pytest exits non-zero when no test ran).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --cluster
bash scripts/lint.sh
# The report's browser test drives Debian's Chromium through Playwright (which never downloads
# a browser here). Install it once when missing; CI fails that test rather than skip it.
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
  as_root=()
  if [ "$(id -u)" != 0 ]; then as_root=(sudo -n); fi
  if [ "$(id -u)" = 0 ] || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }; then
    { "${as_root[@]}" apt-get update -qq && "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1 \
      || echo "warning: could not install chromium with apt-get; the browser test cannot run" >&2
  else
    echo "warning: /usr/bin/chromium is missing and apt-get needs root; the browser test cannot run" >&2
  fi
fi
exec .venv/bin/python -m pytest "$@"
