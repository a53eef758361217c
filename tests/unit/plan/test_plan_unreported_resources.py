"""Drivers that do not size a resource report 0 for it (Hyper-V has no disk or network figures
per host, most clouds no GPUs). Such a resource is not managed: the planner neither grows VMs to
its forecast nor looks for room in it, and still drains hosts and sets what it does manage."""

from __future__ import annotations

import numpy as np

from cotenancy.model import VM, ActionKind, Host, Inventory, Resource, Resources
from cotenancy.plan.planner import Planner
from cotenancy.plan.problem import DemandForecast, PlannerSettings


def _cloud() -> Inventory:
    """Two hosts that report only CPU and memory; HV01 goes into maintenance."""
    hosts = {
        "HV01": Host("HV01", "HV01", Resources(cpu=8000, memory=16384), maintenance=True),
        "HV02": Host("HV02", "HV02", Resources(cpu=8000, memory=16384)),
    }
    vms = {
        "api": VM("api", "api", "HV01", Resources(cpu=2000, memory=4096)),
        "etl": VM("etl", "etl", "HV01", Resources(cpu=2000, memory=4096)),
        "db": VM("db", "db", "HV02", Resources(cpu=2000, memory=4096)),
    }
    return Inventory(hosts=hosts, vms=vms)


def _forecast_with_io() -> DemandForecast:
    """The forecaster does predict disk and network use, as telemetry carries them."""
    high = {
        Resource.CPU: np.array([1500.0, 1000.0, 2600.0]),
        Resource.DISK_IO: np.array([300.0, 800.0, 120.0]),
        Resource.NETWORK: np.array([50.0, 90.0, 40.0]),
    }
    return DemandForecast(high, high, "forecast p95")


def test_a_resource_no_host_reports_does_not_stop_a_maintenance_drain():
    inventory = _cloud()
    plan = Planner(PlannerSettings()).plan(inventory, _forecast_with_io(), strategy="test")
    moved = {s.vm_id: s.target_host_id for s in plan.migrations}
    assert moved == {"api": "HV02", "etl": "HV02"}


def test_unreported_resources_are_never_resized_or_reserved():
    inventory = _cloud()
    plan = Planner(PlannerSettings()).plan(inventory, _forecast_with_io(), strategy="test")
    for step in plan.actions:
        if step.kind is ActionKind.RESIZE:
            assert step.size.disk_io == 0 and step.size.network == 0 and step.size.gpu == 0
        if step.kind is ActionKind.SET_ALLOCATION:
            reserved = step.allocation.reservation
            assert reserved.disk_io == 0 and reserved.network == 0 and reserved.gpu == 0
    # what it does manage still follows the forecast: db's CPU demand outgrows its size
    resize = [s for s in plan.actions if s.kind is ActionKind.RESIZE and s.vm_id == "db"]
    assert resize and resize[0].size.cpu > 2600


def test_a_vm_without_a_size_of_a_resource_is_not_grown_to_its_forecast():
    inventory = _cloud()
    inventory.hosts["HV02"].capacity = Resources(cpu=8000, memory=16384, disk_io=1000)
    inventory.vms["db"].size = Resources(cpu=2000, memory=4096, disk_io=400)
    plan = Planner(PlannerSettings()).plan(inventory, _forecast_with_io(), strategy="test")
    resized = {s.vm_id: s.size for s in plan.actions if s.kind is ActionKind.RESIZE}
    assert "api" not in resized and "etl" not in resized
    assert resized["db"].disk_io == 400
