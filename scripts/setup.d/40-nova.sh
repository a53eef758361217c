#!/usr/bin/env bash
# Builds the Nova test harness venv (.cache/venvs/nova): a real Nova + placement as their own
# functional tests run them. Kept apart from the project venv because Nova pins its own stack.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.cache/venvs/nova"
STAMP="$VENV/.cotenancy-nova-ready"
CONSTRAINTS="$ROOT/tests/harness/nova/constraints.txt"
# The venv is rebuilt whenever this spec or the constraints change.
SPEC_VERSION="2-$(sha256sum "$CONSTRAINTS" | cut -c1-16)"
PACKAGES=(
  "nova==34.0.0"
  "openstack-placement==16.0.0"
  "SQLAlchemy<2.1"
  "testtools"
  "oslotest"
  "wsgi-intercept"
  "requests-mock"
  "gabbi"
  "python-neutronclient"
  "eventlet"
)

if [[ "${1:-}" == "--refreeze" ]]; then
  # Re-resolve without the constraints, then record what was installed.
  rm -f "$STAMP"
  REFREEZE=1
else
  REFREEZE=0
fi

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$SPEC_VERSION" && -x "$VENV/bin/python" ]]; then
  echo "nova harness venv ready: $VENV"
  exit 0
fi

PYTHON="${COTENANCY_NOVA_PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then
      PYTHON="$(command -v "$candidate")"
      break
    fi
  done
fi
if [[ -z "$PYTHON" ]]; then
  echo "40-nova: no python3.11/python3 found" >&2
  exit 1
fi
if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "40-nova: installing python3-venv"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
fi

echo "40-nova: building $VENV with $PYTHON"
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
if [[ "$REFREEZE" == 1 ]]; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PACKAGES[@]}"
else
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -c "$CONSTRAINTS" "${PACKAGES[@]}"
fi

# Fail here, not in the tests, when the harness cannot import what it needs.
"$VENV/bin/python" - <<'PY'
import os, sys
import nova.tests.functional.integrated_helpers  # noqa: F401
import placement.tests.functional.fixtures.placement  # noqa: F401
paste = os.path.join(sys.prefix, "etc", "nova", "api-paste.ini")
assert os.path.exists(paste), f"missing {paste}"
PY
if [[ "$REFREEZE" == 1 ]]; then
  {
    head -n 2 "$CONSTRAINTS"
    "$VENV/bin/pip" freeze --disable-pip-version-check | grep -v '^-e\|@ file'
  } > "$CONSTRAINTS.new"
  mv "$CONSTRAINTS.new" "$CONSTRAINTS"
  SPEC_VERSION="2-$(sha256sum "$CONSTRAINTS" | cut -c1-16)"
fi
echo "$SPEC_VERSION" > "$STAMP"
echo "40-nova: ready"
