#!/usr/bin/env bash
# Set up everything the tests need (apt packages, venvs, simulators, PostgreSQL) and run them.
# Usage: scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
for step in scripts/setup.d/*.sh; do
    echo "==> setup: $step"
    bash "$step"
done
export COTENANCY_SHARED="${COTENANCY_SHARED:-$(cd .. && pwd)/shared}"
echo "==> tests"
exec .venv/bin/python -m pytest "$@"
