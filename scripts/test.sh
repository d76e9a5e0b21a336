#!/usr/bin/env bash
# The whole suite: unit tests, integration tests on the real kernel (as root), interop tests against real peers.
# Ends with the leak check (tests/conftest.py). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "make test needs root: the integration tests mount filesystems and create namespaces" >&2
  exit 1
fi
export PYTHONDONTWRITEBYTECODE=1
exec .venv/bin/python -m pytest -q -ra --durations=15 "$@" tests
