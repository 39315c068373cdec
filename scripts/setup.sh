#!/usr/bin/env bash
# Create .venv (Python 3.11+) if it is missing and install the bot with its test and dev (lint)
# dependencies at the releases pinned in requirements.lock (scripts/lock.sh regenerates it).
# Reinstalls only when pyproject.toml or requirements.lock changed since the last successful install.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  py="${PYTHON:-}"
  if [ -z "$py" ]; then
    for candidate in python3.11 python3.12 python3.13 python3; do
      if command -v "$candidate" >/dev/null 2>&1; then py="$candidate"; break; fi
    done
  fi
  if [ -z "$py" ]; then echo "no python3 found: install Python 3.11 or newer" >&2; exit 1; fi
  "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11 or newer is required ($py is older)" >&2; exit 1; }
  "$py" -m venv .venv
fi
stamp=".venv/.installed-$(.venv/bin/python -c 'import hashlib; print(hashlib.sha256(open("pyproject.toml", "rb").read() + open("requirements.lock", "rb").read()).hexdigest()[:16])')"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -c requirements.lock -e '.[test,dev]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi
