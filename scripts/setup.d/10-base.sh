#!/usr/bin/env bash
# The project's own virtual environment with cotenancy installed (editable) and its test tools.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || { apt_install python3.11 python3.11-venv; }
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || apt_install python3.11-venv

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip setuptools wheel
fi
stamp="$CACHE_DIR/base-installed"
constraints="$REPO_ROOT/constraints.txt"
if [ ! -f "$stamp" ] || [ "$REPO_ROOT/setup.cfg" -nt "$stamp" ] || [ "$constraints" -nt "$stamp" ]; then
    "$VENV/bin/pip" install -q -c "$constraints" -e "$REPO_ROOT[test]"
    touch "$stamp"
fi
"$VENV/bin/python" -c 'import cotenancy.drivers.base, cotenancy.plugins, xgboost, ortools' \
    || { echo "base environment is broken" >&2; exit 1; }
