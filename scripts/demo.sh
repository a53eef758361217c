#!/usr/bin/env bash
# Set up the project's venv and run the main job on the embedded default: the predictive control
# loop on a simulated cloud with a synthetic workload. Writes cotenancy-report.html.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.d/10-base.sh
exec .venv/bin/cotenancy simulate --strategy predictive \
    --report cotenancy-report.html --json cotenancy-summary.json "$@"
