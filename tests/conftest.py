"""Fixtures shared by every test area."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

pytest_plugins = ["fixtures_store", "fixtures_sqlite"]

REPO_ROOT = Path(__file__).resolve().parent.parent

# Keep trained models and default stores of one test run away from the user's and other runs'.
os.environ["COTENANCY_STATE_PATH"] = tempfile.mkdtemp(prefix="cotenancy-test-state-")


def shared_path() -> Path:
    """Where the shared traces live: ``$COTENANCY_SHARED`` or ``../shared`` beside the checkout."""
    return Path(os.environ.get("COTENANCY_SHARED", REPO_ROOT.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared data folder; its absence is a failure, not a skip."""
    path = shared_path()
    if not (path / "traces").is_dir():
        pytest.fail(f"shared traces not found at {path}/traces (set COTENANCY_SHARED)")
    return path


@pytest.fixture
def conf():
    """A fresh, fully registered configuration with no config files read."""
    from cotenancy.conf import make_conf

    return make_conf([], config_files=[])
