"""Property: carrying out any plan's steps in its order never exceeds a capacity and never breaks a
policy or rule, whatever the planner was asked (swaps, maintenance, allocation changes)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plan_builders import clouds, clouds_in_flight, forecasts, noisy_pair_risk
from plan_safety import check_plan_safe

from cotenancy.model import VMState
from cotenancy.plan.ordering import VMChange, order_changes
from cotenancy.plan.planner import Planner
from cotenancy.plan.problem import PlannerSettings, build_problem

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def wishes(draw, in_flight: bool = False):
    """A cloud (with live migrations in flight if ``in_flight``) and arbitrary wanted end states:
    any host, any reservation, bigger sizes."""
    inventory = draw((clouds_in_flight if in_flight else clouds)(max_hosts=4, max_vms=6))
    plan_settings = PlannerSettings(
        max_migrations=draw(st.integers(1, 6)),
        max_parallel_migrations=draw(st.integers(1, 3)),
        max_parallel_migrations_per_host=draw(st.integers(1, 2)),
    )
    problem = build_problem(inventory, plan_settings)
    changes = []
    for v, vm in enumerate(inventory.vms.values()):
        # the planner never changes a VM in flight (it is pinned until it lands)
        if vm.host_id is None or vm.state is VMState.MIGRATING or not draw(st.booleans()):
            continue
        target = draw(st.integers(0, len(problem.host_ids) - 1))
        size = problem.size[v].copy()
        if draw(st.booleans()):
            size[1] += draw(st.sampled_from([256.0, 512.0]))
        reservation = problem.reservation[v].copy()
        reservation[0] = draw(st.sampled_from([0.0, 0.25, 0.75, 1.0])) * size[0]
        changes.append(VMChange(v, target, size, reservation, "wish", 1.0, "wish", 1.0))
    return inventory, plan_settings, problem, changes


@SETTINGS
@given(wishes())
def test_ordering_any_wish_is_carried_out_safely(case):
    check_ordering(*case)


@SETTINGS
@given(wishes(in_flight=True))
def test_ordering_leaves_the_lanes_of_migrations_in_flight_to_them(case):
    """A move in flight holds a migration lane on its source, its target and in the cloud until
    it lands, at a moment no step can wait for: the plan runs in the lanes left."""
    check_ordering(*case)


def check_ordering(inventory, plan_settings, problem, changes):
    result = order_changes(problem, changes, "test")
    check_plan_safe(
        inventory,
        result.plan,
        max_parallel_per_host=plan_settings.max_parallel_migrations_per_host,
        max_parallel=plan_settings.max_parallel_migrations,
    )
    assert len(result.plan.migrations) <= plan_settings.max_migrations


@SETTINGS
@given(st.data())
def test_planner_plans_are_safe_and_within_budget(data):
    check_planner_plan(data, data.draw(clouds(max_hosts=4, max_vms=6)))


@SETTINGS
@given(st.data())
def test_planner_plans_are_safe_while_migrations_are_in_flight(data):
    """A VM being live-migrated is on its source and its target until it lands, at a moment no
    step waits for: no step may count on the room it is about to take."""
    check_planner_plan(data, data.draw(clouds_in_flight(max_hosts=4, max_vms=6)))


def check_planner_plan(data, inventory):
    forecast = data.draw(forecasts(inventory))
    plan_settings = PlannerSettings(
        time_limit=1.0,
        max_migrations=data.draw(st.integers(0, 4)),
        max_migrations_per_host=data.draw(st.integers(1, 3)),
        underloaded_hosts=data.draw(st.integers(0, 2)),
        risk_threshold=0.5,
    )
    migrating = {v.id for v in inventory.vms.values() if v.state is VMState.MIGRATING}
    plan = Planner(plan_settings).plan(
        inventory, forecast, noisy_pair_risk(inventory), migrating=migrating, strategy="test"
    )
    check_plan_safe(
        inventory,
        plan,
        max_parallel_per_host=plan_settings.max_parallel_migrations_per_host,
        max_parallel=plan_settings.max_parallel_migrations,
    )
    assert len(plan.migrations) <= plan_settings.max_migrations
    touches: dict[str, int] = {}
    for step in plan.migrations:
        for host in (step.source_host_id, step.target_host_id):
            touches[host] = touches.get(host, 0) + 1
    # a staging leg may add one touch per host beyond what the solver was allowed
    assert all(n <= plan_settings.max_migrations_per_host + 1 for n in touches.values())
    for step in plan.actions:
        assert step.reason, f"step {step.index} has no reason"
        assert np.isfinite(step.expected_benefit)
    assert plan.stats["solver"] in {"cp-sat", "greedy", "none"}
