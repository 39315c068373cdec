#!/usr/bin/env bash
# Set up (with the cluster extra: tests/cluster starts the nats-server it puts in the venv), lint
# (ruff, mypy: any finding stops here), then run the whole test suite (pytest exits non-zero when no test ran)
# on two pytest-xdist workers, each test file whole on one worker (--dist loadfile: a module's
# module-scoped fixtures, its daemons and servers, are made once, in one process). The arguments go to
# pytest after these, so they win: `scripts/test.sh -n 0 tests/daemon/test_x.py` runs one file in this process.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --cluster
bash scripts/lint.sh
# The report's browser test drives Debian's Chromium through Playwright (which never downloads
# a browser here); the /metrics tests run Debian's promtool and a real Prometheus server. Install
# what is missing once; CI fails those tests rather than skip them.
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
{ [ -x /usr/bin/promtool ] && [ -x /usr/bin/prometheus ]; } || missing+=(prometheus)
if [ "${#missing[@]}" -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
  as_root=()
  if [ "$(id -u)" != 0 ]; then as_root=(sudo -n); fi
  if [ "$(id -u)" = 0 ] || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }; then
    { "${as_root[@]}" apt-get update -qq && "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >/dev/null 2>&1 \
      || echo "warning: could not install ${missing[*]} with apt-get; the tests that need them cannot run" >&2
  else
    echo "warning: ${missing[*]} missing and apt-get needs root; the tests that need them cannot run" >&2
  fi
fi
exec .venv/bin/python -m pytest -n 2 --dist loadfile "$@"
