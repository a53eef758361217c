"""Running the self-test of the Watcher plugin under the Watcher venv's interpreter (fixtures in
``conftest.py``; tests that need the raw process, e.g. to read Watcher's log, call it directly)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[3]
WATCHER_PYTHON = REPO_ROOT / ".cache" / "venvs" / "watcher" / "bin" / "python"

#: first-run imports (xgboost, ortools, Watcher's stack) take a while on a busy two-core machine
RUN_TIMEOUT = 600


def run_selftest(watcher_python: Path, request: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """One request to the self-test runner under the Watcher venv: its JSON answer on stdout,
    Watcher's log on stderr."""
    return subprocess.run(
        [str(watcher_python), "-m", "cotenancy.plugins.watcher.selftest"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        cwd=REPO_ROOT,
    )
