"""Fixtures for the Watcher plugin: Watcher runs in its own venv, driven through a subprocess.

Watcher cannot be imported into the project's environment (nor next to Nova), so every test
sends a JSON request to ``cotenancy.plugins.watcher.selftest`` running under the Watcher venv's
interpreter and asserts on the JSON it prints. A missing venv fails the tests: build it with
``scripts/setup.d/50-watcher.sh``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from watcher_selftest import WATCHER_PYTHON, run_selftest


@pytest.fixture(scope="session")
def watcher_python() -> Path:
    if not WATCHER_PYTHON.exists():
        pytest.fail(f"Watcher venv missing at {WATCHER_PYTHON}: run scripts/setup.d/50-watcher.sh")
    return WATCHER_PYTHON


@pytest.fixture(scope="session")
def watcher(watcher_python: Path) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Send one request to the self-test runner in the Watcher venv; its failure fails the test.

    Answers are kept for the session: the runner is deterministic and each start costs seconds.
    """
    answers: dict[str, dict[str, Any]] = {}

    def run(request: dict[str, Any]) -> dict[str, Any]:
        key = json.dumps(request, sort_keys=True)
        if key not in answers:
            answers[key] = ask(request)
        return json.loads(json.dumps(answers[key]))

    def ask(request: dict[str, Any]) -> dict[str, Any]:
        proc = run_selftest(watcher_python, request)
        try:
            answer = json.loads(proc.stdout)
        except ValueError:
            pytest.fail(f"selftest printed no JSON (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
        if proc.returncode != 0 or "error" in answer:
            pytest.fail(f"selftest failed: {answer.get('error')}\n{answer.get('traceback', '')}")
        return answer

    return run
