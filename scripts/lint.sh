#!/usr/bin/env bash
# The static checks run before the tests: ruff and strict mypy, both configured in pyproject.toml.
# Both always run, so one pass shows every finding; exits non-zero when either finds anything.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
if ! .venv/bin/ruff check --output-format concise bot strategies scripts tests; then
  echo "lint failed: ruff found the problems above (those marked [*]: .venv/bin/ruff check --fix bot strategies scripts tests)" >&2
  status=1
fi
if ! .venv/bin/mypy; then
  echo "lint failed: mypy --strict found the type errors above" >&2
  status=1
fi
if [ "$status" != 0 ]; then echo "the tests did not run: fix the lint findings first" >&2; fi
exit "$status"
