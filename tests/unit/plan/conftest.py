"""Fixtures of the planner tests."""

from __future__ import annotations

import pytest

from cotenancy.plan.problem import PlannerSettings


@pytest.fixture
def settings() -> PlannerSettings:
    """Small budgets so plans stay small enough for the exhaustive safety checker."""
    return PlannerSettings(time_limit=2.0, underloaded_hosts=2, max_migrations=6)
