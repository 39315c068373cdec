#!/usr/bin/env bash
# Create .venv (Python 3.11+) if it is missing and install the bot with its test and dev (lint)
# dependencies at the releases pinned in requirements.lock (scripts/lock.sh regenerates it).
# `--cluster` also installs the cluster extra (nats-py and the nats-server binary), hash-checked
# from requirements-cluster.lock first; scripts/test.sh asks for it, scripts/run.sh does not.
# Reinstalls only when pyproject.toml or a lock file it installs from changed since the last
# successful install (a stamp per kind of install: the cluster one also holds for the plain one).
set -euo pipefail
cd "$(dirname "$0")/.."
cluster=0
for arg in "$@"; do
  case "$arg" in
    --cluster) cluster=1 ;;
    *) echo "usage: scripts/setup.sh [--cluster]" >&2; exit 2 ;;
  esac
done
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
digest() { .venv/bin/python -c 'import hashlib, sys; print(hashlib.sha256(b"".join(open(p, "rb").read() for p in sys.argv[1:])).hexdigest()[:16])' "$@"; }
stamp=".venv/.installed-$(digest pyproject.toml requirements.lock)"
cluster_stamp=".venv/.installed-cluster-$(digest pyproject.toml requirements.lock requirements-cluster.lock)"
if [ "$cluster" = 1 ] && [ ! -f "$cluster_stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  # Hash-checked first; the editable install then finds both satisfied (pip cannot hash an editable install).
  .venv/bin/python -m pip install --quiet --require-hashes --only-binary :all: -r requirements-cluster.lock
  .venv/bin/python -m pip install --quiet -c requirements.lock -e '.[test,dev,cluster]'
  rm -f .venv/.installed-*
  touch "$stamp" "$cluster_stamp"
elif [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -c requirements.lock -e '.[test,dev]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi
