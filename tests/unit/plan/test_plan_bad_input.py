"""Inventories and forecasts the planner must not take at face value.

A host that reports 0 of a resource other hosts report has none of it: no VM that needs it goes
there, and VMs that need it are moved off. (A resource *no* host reports stays "not sized", see
``test_plan_unreported_resources.py``.) An empty cloud gets an empty plan; a host whose capacity
is not a finite amount is refused by name; an infinite forecast is planned as no forecast, and a
negative one as no demand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from plan_safety import check_plan_safe

from cotenancy.exceptions import MalformedInputError
from cotenancy.model import VM, ActionKind, ActionPlan, Allocation, Host, Inventory, Resource, Resources
from cotenancy.plan.candidates import build_candidate_model
from cotenancy.plan.planner import Planner
from cotenancy.plan.problem import DemandForecast, PlannerSettings, build_problem


def _host(name: str, cpu: float = 4000.0, memory: float = 4096.0, **kw) -> Host:
    return Host(name, name, Resources(cpu=cpu, memory=memory, **kw), power_model="g4")


def _vm(name: str, on: str | None, cpu: float = 1000.0, reserved: float = 0.0, **kw) -> VM:
    return VM(
        name,
        name,
        on,
        Resources(cpu=cpu, memory=1024.0, **kw),
        allocation=Allocation(Resources(cpu=reserved)),
    )


def _cpu_forecast(inventory: Inventory, share: dict[str, float], default: float) -> DemandForecast:
    """CPU demand as a share of each VM's size; the median at 80 % of it."""
    cpu = np.array([share.get(v.id, default) * v.size.cpu for v in inventory.vms.values()])
    return DemandForecast({Resource.CPU: cpu}, {Resource.CPU: cpu * 0.8}, "forecast p95")


def _targets(plan: ActionPlan) -> dict[str, str]:
    return {step.vm_id: step.target_host_id for step in plan.migrations}


# -- a host with none of a resource other hosts report ------------------------------------------------


def _cloud_with_a_cpu_less_host() -> Inventory:
    """Host a is predicted past its trigger; z reports 0 MHz (and plenty of memory) and holds a
    small VM that does use CPU."""
    hosts = {"a": _host("a"), "b": _host("b"), "z": _host("z", cpu=0.0, memory=16384.0)}
    vms = {f"v{i}": _vm(f"v{i}", "a" if i < 4 else "b") for i in range(6)}
    vms["idle"] = _vm("idle", "z", cpu=100.0)
    return Inventory(hosts=hosts, vms=vms)


def _busy_a(inventory: Inventory) -> DemandForecast:
    return _cpu_forecast(inventory, {f"v{i}": 1.0 for i in range(4)}, 0.5)


@pytest.mark.parametrize("manage_allocations", [True, False])
def test_no_vm_that_needs_cpu_is_moved_onto_a_host_reporting_0_mhz(manage_allocations: bool) -> None:
    inventory = _cloud_with_a_cpu_less_host()
    settings = PlannerSettings(manage_allocations=manage_allocations, time_limit=2.0)
    plan = Planner(settings).plan(inventory, _busy_a(inventory), strategy="test")
    assert "z" not in _targets(plan).values()
    assert any(step.source_host_id == "a" for step in plan.migrations), "host a is still relieved"
    check_plan_safe(inventory, plan)


def test_a_vm_needing_cpu_on_a_host_reporting_0_mhz_is_a_candidate_to_leave() -> None:
    inventory = _cloud_with_a_cpu_less_host()
    problem = build_problem(inventory, PlannerSettings(), _busy_a(inventory))
    cm = build_candidate_model(problem)
    idle = problem.vm_index["idle"]
    assert idle in cm.candidates
    assert "host z has no cpu" in cm.reasons[idle]
    # moves may add no CPU demand to z: its trigger level is 0, not unlimited
    z = cm.host_pos[problem.host_index["z"]]
    cpu = list(Resource).index(Resource.CPU)
    assert math.isfinite(cm.ceiling[z, cpu])


def test_the_vm_is_moved_off_the_host_reporting_0_mhz_when_another_has_room() -> None:
    inventory = _cloud_with_a_cpu_less_host()
    plan = Planner(PlannerSettings(time_limit=2.0)).plan(inventory, _busy_a(inventory), strategy="test")
    assert _targets(plan).get("idle") in {"a", "b"}
    check_plan_safe(inventory, plan)


@pytest.mark.parametrize("manage_allocations", [True, False])
def test_a_vm_that_needs_disk_io_is_not_drained_to_a_host_reporting_none(manage_allocations: bool) -> None:
    """Disk I/O is reported by some hosts only: the one without it is no destination for a VM that
    needs disk I/O (whether or not it reserves any), but still is for a VM without disk I/O."""
    hosts = {
        "old": Host("old", "old", Resources(cpu=4000, memory=4096, disk_io=1000), maintenance=True),
        "nodisk": _host("nodisk", disk_io=0.0),
        "disk": _host("disk", disk_io=1000.0),
    }
    vms = {
        "io": _vm("io", "old", disk_io=400.0),
        "calc": _vm("calc", "old"),
        "quiet": _vm("quiet", "nodisk"),
        "busy": _vm("busy", "disk", cpu=2000.0, disk_io=400.0),
    }
    inventory = Inventory(hosts=hosts, vms=vms)
    # disk has CPU room for one of the two, nodisk for both
    forecast = _cpu_forecast(inventory, {"busy": 1.3}, 0.3)
    # io takes disk past its pack level (overload is a cost, not a limit): nodisk would be cheaper
    forecast.high[Resource.DISK_IO] = np.array([300.0, 0.0, 0.0, 560.0])
    forecast.mid[Resource.DISK_IO] = np.array([200.0, 0.0, 0.0, 450.0])
    settings = PlannerSettings(manage_allocations=manage_allocations, time_limit=2.0)
    plan = Planner(settings).plan(inventory, forecast, strategy="test")
    assert _targets(plan) == {"io": "disk", "calc": "nodisk"}
    check_plan_safe(inventory, plan)


# -- inputs that are wrong -----------------------------------------------------------------------------


def _three_hosts(**replace: Host) -> Inventory:
    hosts = {"a": _host("a"), "b": _host("b"), "c": _host("c")}
    hosts.update(replace)
    vms = {f"v{i}": _vm(f"v{i}", "abc"[i % 3], reserved=800.0) for i in range(6)}
    return Inventory(hosts=hosts, vms=vms)


def test_an_empty_cloud_gets_an_empty_plan() -> None:
    plan = Planner(PlannerSettings()).plan(Inventory(), None, strategy="test")
    assert plan.actions == []
    assert plan.stats["migrations"] == 0


def test_vms_of_a_cloud_without_hosts_are_left_as_they_are() -> None:
    inventory = Inventory(vms={"unplaced": _vm("unplaced", None), "lost": _vm("lost", "gone")})
    plan = Planner(PlannerSettings()).plan(inventory, _cpu_forecast(inventory, {}, 0.5), strategy="test")
    assert plan.actions == []


@pytest.mark.parametrize("cpu", [math.nan, math.inf, -1.0])
def test_a_host_whose_capacity_is_not_a_finite_amount_is_refused_by_name(cpu: float) -> None:
    inventory = _three_hosts(c=_host("c", cpu=cpu))
    with pytest.raises(MalformedInputError, match=r"host c cpu"):
        Planner(PlannerSettings()).plan(inventory, _cpu_forecast(inventory, {}, 0.5), strategy="test")


@pytest.mark.parametrize("value", [math.inf, -math.inf])
def test_an_infinite_forecast_is_planned_as_no_forecast_for_that_vm(value: float) -> None:
    inventory = _three_hosts()
    forecast = _cpu_forecast(inventory, {}, 0.5)
    forecast.high[Resource.CPU][0] = value
    plan = Planner(PlannerSettings(time_limit=2.0)).plan(inventory, forecast, strategy="test")
    allocations = {s.vm_id: s for s in plan.actions if s.kind is ActionKind.SET_ALLOCATION}
    assert "v0" not in allocations, "without a forecast v0 keeps its reservation"
    assert set(allocations) == {"v1", "v2", "v3", "v4", "v5"}, "the other VMs are planned as usual"
    check_plan_safe(inventory, plan)


def test_a_negative_forecast_is_planned_as_no_demand() -> None:
    inventory = _three_hosts()
    forecast = _cpu_forecast(inventory, {}, 0.5)
    forecast.high[Resource.CPU][0] = -500.0
    forecast.mid[Resource.CPU][0] = -400.0
    plan = Planner(PlannerSettings(time_limit=2.0)).plan(inventory, forecast, strategy="test")
    reserved = {
        s.vm_id: s.allocation.reservation.cpu for s in plan.actions if s.kind is ActionKind.SET_ALLOCATION
    }
    assert reserved["v0"] == 0.0
    assert min(reserved.values()) >= 0.0
    # v0 frees no capacity on its host beyond its own demand of 0
    problem = build_problem(inventory, PlannerSettings(), forecast)
    zero = _cpu_forecast(inventory, {"v0": 0.0}, 0.5)
    np.testing.assert_allclose(
        problem.host_demand(), build_problem(inventory, PlannerSettings(), zero).host_demand()
    )
    check_plan_safe(inventory, plan)
