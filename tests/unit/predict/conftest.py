"""Fixtures of the predictor tests."""

from __future__ import annotations

import pytest
from predict_synthetic import Usage, synthetic_usage


@pytest.fixture(scope="session")
def usage() -> Usage:
    return synthetic_usage()
