#!/usr/bin/env bash
# Builds the Watcher harness venv (.cache/venvs/watcher): a real python-watcher 17.0.0 with this
# project installed editable into it, so the watcher_goals/watcher_strategies entry points of
# cotenancy register where Watcher's own loaders look. Kept apart from the project venv because
# Watcher pins its own OpenStack stack and cannot share a process with Nova.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.cache/venvs/watcher"
STAMP="$VENV/.cotenancy-watcher-ready"
# Bump when the package set changes so existing venvs are rebuilt.
SPEC_VERSION="2"
CONSTRAINTS="$ROOT/tests/harness/watcher/constraints.txt"
PACKAGES=(
  "python-watcher==17.0.0"
  "SQLAlchemy<2.1"
)

install_project() {
  # The project with its own dependencies (numpy, ortools, xgboost...) so the strategy can plan;
  # setup.cfg bounds SQLAlchemy below 2.1 as Watcher needs.
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -c "$CONSTRAINTS" -e "$ROOT"
}

verify() {
  # Fail here, not in the tests, when Watcher cannot see the plugin through its own loaders.
  "$VENV/bin/python" - <<'PY'
import watcher.tests.unit.decision_engine.model.faker_cluster_state  # noqa: F401  (selects oslo.service backend)
from oslo_config import cfg
cfg.CONF([], project="watcher")
from watcher.decision_engine.loading import default
assert "cotenancy" in default.DefaultGoalLoader().list_available(), "goal cotenancy not registered"
assert "cotenancy_predictive" in default.DefaultStrategyLoader().list_available(), "strategy not registered"
PY
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$SPEC_VERSION" && -x "$VENV/bin/python" ]]; then
  # Editable install: the code is live; re-run pip only when the project metadata (entry points,
  # dependencies) moved on.
  if [[ "$ROOT/setup.cfg" -nt "$STAMP" || "$CONSTRAINTS" -nt "$STAMP" ]]; then
    install_project
    verify
    touch "$STAMP"
  fi
  echo "watcher harness venv ready: $VENV"
  exit 0
fi

PYTHON="${COTENANCY_WATCHER_PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then
      PYTHON="$(command -v "$candidate")"
      break
    fi
  done
fi
if [[ -z "$PYTHON" ]]; then
  echo "50-watcher: no python3.11/python3 found" >&2
  exit 1
fi
if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "50-watcher: installing python3-venv"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
fi

echo "50-watcher: building $VENV with $PYTHON"
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
"$VENV/bin/pip" install --quiet --disable-pip-version-check -c "$CONSTRAINTS" "${PACKAGES[@]}"
install_project
verify
echo "$SPEC_VERSION" > "$STAMP"
echo "50-watcher: ready"
