"""Steady state means few steps: the predictive strategy does not ask again for reservations a
cloud accepted but does not show, lowers only after demand stayed low, and spends a bounded number
of allocation changes per round on the most useful ones."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_plan_predictive_strategy import LastValueForecaster

from cotenancy.model import (
    VM,
    ActionKind,
    Allocation,
    ClusterState,
    Host,
    Inventory,
    Resources,
    StepStatus,
    TelemetryWindow,
)
from cotenancy.strategies.predictive import PredictiveStrategy


def state(cpu: dict[str, float], reserved: dict[str, float] | None = None) -> ClusterState:
    """Four VMs on two hosts with the given CPU use (MHz); the cloud reports ``reserved``."""
    reserved = reserved or {}
    hosts = {h: Host(h, h, Resources(cpu=8000, memory=8192), power_model="g5") for h in ("h1", "h2")}
    vms = {
        name: VM(
            name,
            name,
            "h1" if name < "c" else "h2",
            Resources(cpu=2000, memory=1024),
            allocation=Allocation(reservation=Resources(cpu=reserved.get(name, 0.0))),
        )
        for name in ("a", "b", "c", "d")
    }
    ids = sorted(vms)
    values = np.tile(np.array([[cpu[v]] for v in ids]), (1, 12))
    window = TelemetryWindow(ids, np.arange(12) * 300.0, {"cpu": values}, 300.0)
    return ClusterState(now=3600.0, inventory=Inventory(hosts, vms), telemetry=window)


@pytest.fixture
def strategy(conf):
    conf.set_override("underloaded_hosts", 0, group="planner")
    return PredictiveStrategy(conf, risk_model=None, forecaster=LastValueForecaster(None))


def reservations(plan) -> dict[str, float]:
    steps = [a for a in plan.actions if a.kind is ActionKind.SET_ALLOCATION]
    return {a.vm_id: a.allocation.reservation.cpu for a in steps}


def carry_out(plan) -> None:
    for action in plan.actions:
        action.status = StepStatus.SUCCEEDED


BUSY = {"a": 1000.0, "b": 800.0, "c": 600.0, "d": 400.0}


def test_a_granted_reservation_the_cloud_does_not_report_is_not_asked_for_again(strategy):
    first = strategy.plan(state(BUSY))
    assert set(reservations(first)) == {"a", "b", "c", "d"}
    carry_out(first)
    # the cloud still reports no reservation (it does not keep them): nothing new to ask
    assert reservations(strategy.plan(state(BUSY))) == {}


def test_a_reservation_that_was_not_carried_out_is_asked_for_again(strategy):
    first = strategy.plan(state(BUSY))
    assert reservations(strategy.plan(state(BUSY))) == reservations(first)


def test_what_the_cloud_reports_after_someone_else_changed_it_is_believed(strategy):
    carry_out(strategy.plan(state(BUSY)))
    changed = reservations(strategy.plan(state(BUSY, reserved={"a": 1900.0})))
    assert set(changed) == {"a"} and changed["a"] < 1900


def test_a_reservation_is_lowered_only_after_demand_stayed_low(conf, strategy):
    conf.set_override("scale_down_rounds", 3, group="planner")
    strategy = PredictiveStrategy(conf, risk_model=None, forecaster=LastValueForecaster(None))
    carry_out(strategy.plan(state(BUSY)))
    quiet = dict(BUSY, a=100.0)
    assert reservations(strategy.plan(state(quiet))) == {}
    assert reservations(strategy.plan(state(quiet))) == {}
    lowered = reservations(strategy.plan(state(quiet)))
    assert set(lowered) == {"a"} and lowered["a"] == pytest.approx(np.ceil(100 * 1.2 * 1.1))


def test_a_burst_then_a_dip_does_not_flap_the_reservation(strategy):
    carry_out(strategy.plan(state(BUSY)))
    steps = 0
    for round_ in range(8):
        plan = strategy.plan(state(dict(BUSY, b=800.0 if round_ % 2 else 300.0)))
        steps += len(reservations(plan))
        carry_out(plan)
    assert steps == 0


def test_only_the_most_useful_allocation_changes_are_made_in_one_round(conf):
    conf.set_override("underloaded_hosts", 0, group="planner")
    conf.set_override("max_allocation_steps", 2, group="planner")
    strategy = PredictiveStrategy(conf, risk_model=None, forecaster=LastValueForecaster(None))
    # the biggest uncovered demands come first
    assert set(reservations(strategy.plan(state(BUSY)))) == {"a", "b"}


def test_the_strategy_never_changes_the_inventory_it_was_given(strategy):
    carry_out(strategy.plan(state(BUSY)))
    observed = state(BUSY)
    before = {v.id: dataclasses.replace(v.allocation) for v in observed.inventory.vms.values()}
    strategy.plan(observed)
    assert {v.id: v.allocation for v in observed.inventory.vms.values()} == before
