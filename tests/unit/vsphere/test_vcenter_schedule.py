"""When and under which names plan steps become vCenter scheduled tasks."""

from __future__ import annotations

import datetime as dt

import pytest

from cotenancy.exceptions import ConfigurationError
from cotenancy.model import ActionKind, ActionPlan
from cotenancy.plugins.vcenter.executor import next_window, task_name


def test_next_window_later_today():
    now = dt.datetime(2026, 3, 1, 10, 30, tzinfo=dt.UTC)
    assert next_window(now, "22:00") == dt.datetime(2026, 3, 1, 22, 0, tzinfo=dt.UTC)


def test_next_window_tomorrow_once_today_has_started():
    now = dt.datetime(2026, 3, 1, 22, 0, tzinfo=dt.UTC)
    assert next_window(now, "22:00") == dt.datetime(2026, 3, 2, 22, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize("bad", ["22", "25:00", "ten:30", ""])
def test_bad_window_is_a_configuration_error(bad):
    with pytest.raises(ConfigurationError, match="HH:MM"):
        next_window(dt.datetime(2026, 3, 1, tzinfo=dt.UTC), bad)


def test_task_names_are_unique_per_plan_step_and_readable():
    plan = ActionPlan(strategy="predictive")
    first = plan.add(ActionKind.LIVE_MIGRATE, vm_id="vm-1", target_host_id="host-2")
    second = plan.add(ActionKind.SET_MAINTENANCE, host_id="host-2", maintenance=True)
    other_plan = ActionPlan(strategy="predictive", actions=[first])

    names = {task_name(plan, first), task_name(plan, second), task_name(other_plan, first)}

    assert len(names) == 3
    assert task_name(plan, first) == f"cotenancy {plan.id} step 0: live_migrate vm-1"
    assert task_name(plan, second).endswith("set_maintenance host-2")
