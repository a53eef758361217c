#!/usr/bin/env bash
# Builds the Nova test harness venv (.cache/venvs/nova): a real Nova + placement as their own
# functional tests run them. Kept apart from the project venv because Nova pins its own stack.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
NOVA_VENV="$ROOT/.cache/venvs/nova"
STAMP="$NOVA_VENV/.cotenancy-nova-ready"
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

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$SPEC_VERSION" && -x "$NOVA_VENV/bin/python" ]]; then
  echo "nova harness venv ready: $NOVA_VENV"
  exit 0
fi

# The same interpreter as the project venv (10-base.sh), installed from Debian when missing.
source "$ROOT/scripts/lib.sh"
PYTHON="${COTENANCY_NOVA_PYTHON:-${PYTHON:-python3.11}}"
command -v "$PYTHON" >/dev/null || apt_install python3.11 python3.11-venv
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || apt_install python3.11-venv

echo "40-nova: building $NOVA_VENV with $PYTHON"
rm -rf "$NOVA_VENV"
mkdir -p "$(dirname "$NOVA_VENV")"
"$PYTHON" -m venv "$NOVA_VENV"
"$NOVA_VENV/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
if [[ "$REFREEZE" == 1 ]]; then
  "$NOVA_VENV/bin/pip" install --quiet --disable-pip-version-check "${PACKAGES[@]}"
else
  "$NOVA_VENV/bin/pip" install --quiet --disable-pip-version-check -c "$CONSTRAINTS" "${PACKAGES[@]}"
fi

# Fail here, not in the tests, when the harness cannot import what it needs.
"$NOVA_VENV/bin/python" - <<'PY'
import os, sys
import nova.tests.functional.integrated_helpers  # noqa: F401
import placement.tests.functional.fixtures.placement  # noqa: F401
paste = os.path.join(sys.prefix, "etc", "nova", "api-paste.ini")
assert os.path.exists(paste), f"missing {paste}"
PY
if [[ "$REFREEZE" == 1 ]]; then
  {
    head -n 2 "$CONSTRAINTS"
    "$NOVA_VENV/bin/pip" freeze --disable-pip-version-check | grep -v '^-e\|@ file'
  } > "$CONSTRAINTS.new"
  mv "$CONSTRAINTS.new" "$CONSTRAINTS"
  SPEC_VERSION="2-$(sha256sum "$CONSTRAINTS" | cut -c1-16)"
fi
echo "$SPEC_VERSION" > "$STAMP"
echo "40-nova: ready"
