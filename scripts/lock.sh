#!/usr/bin/env bash
# Regenerate requirements.lock, the exact releases scripts/setup.sh installs (runtime, test and dev
# dependencies; not the bot itself), from pyproject.toml with pip-tools in a throwaway venv.
# Pins still allowed by pyproject.toml are kept; pass --upgrade (or --upgrade-package NAME) to move
# to newer releases. Then run scripts/test.sh and commit requirements.lock with the change.
set -euo pipefail
cd "$(dirname "$0")/.."
# The oldest Python the bot supports: the pins (and their markers) must install there.
py="${PYTHON:-python3.11}"
command -v "$py" >/dev/null 2>&1 || { echo "$py not found: the lock is made with Python 3.11 (set PYTHON=...)" >&2; exit 1; }
tools="$(mktemp -d)"
trap 'rm -rf "$tools"' EXIT
"$py" -m venv "$tools"
"$tools/bin/python" -m pip install --quiet pip-tools==7.6.2
# Run from the repository root with relative paths, so the command recorded in the header is the same everywhere.
CUSTOM_COMPILE_COMMAND="scripts/lock.sh" "$tools/bin/pip-compile" --quiet --extra test --extra dev --strip-extras \
  --no-emit-index-url --no-emit-find-links --output-file requirements.lock "$@" pyproject.toml
echo "requirements.lock written; now run scripts/test.sh" >&2
