"""The control loop with the hyperv driver, end to end through real pywinrm and the loopback
WS-Management server: it discovers, plans (CP-SAT planner), live-migrates and resizes, and the
Hyper-V responder's state shows the result.

The scenario: an operator puts HV01 into maintenance (through the driver), and db01 on HV02 is
short of memory (its dynamic-memory pressure shows demand above its maximum). One round drains
HV01 with Move-VM and grows db01 with Set-VMMemory."""

from __future__ import annotations

import numpy as np
import pytest

from cotenancy.conf import make_conf
from cotenancy.engine.loop import ControlLoop
from cotenancy.loading import DRIVERS, load_plugin
from cotenancy.model import ActionKind, ActionPlan, ClusterState, Resource, StepStatus
from cotenancy.plan.planner import Planner
from cotenancy.plan.problem import DemandForecast, PlannerSettings
from cotenancy.store import HistoryStore
from cotenancy.strategies.base import Strategy

MIB = 1024 * 1024


class PlanOnLatestTelemetry(Strategy):
    """The project's planner, fed the latest measured demand as its forecast (a reactive
    strategy), so the test depends on the driver's telemetry, not on a trained model.
    Consolidation (emptying under-used hosts) is off: a two-host site has nothing to consolidate
    into, and the test is about draining and growing."""

    name = "plan-on-latest"

    def plan(self, state: ClusterState) -> ActionPlan:
        vm_ids = list(state.inventory.vms)
        rows = [state.telemetry.row(v) for v in vm_ids]
        high = {
            Resource.CPU: state.telemetry.latest("cpu")[rows],
            Resource.MEMORY: state.telemetry.latest("memory")[rows],
        }
        forecast = DemandForecast(high=high, mid=high, description="latest sample")
        settings = PlannerSettings(underloaded_hosts=0)
        return Planner(settings).plan(state.inventory, forecast, strategy=self.name)


@pytest.fixture
def draining_site(site):
    """HV01 is about to go into maintenance with two VMs on it; db01 on HV02 wants 6000 MiB of
    its 4096 MiB dynamic-memory maximum."""
    site.vms.clear()
    site.add_vm("api", "HV01", processor_count=2, startup_bytes=4096 * MIB, cpu_demand_mhz=3000)
    site.add_vm("etl", "HV01", processor_count=2, startup_bytes=4096 * MIB, cpu_demand_mhz=2000)
    site.add_vm(
        "db01",
        "HV02",
        processor_count=2,
        startup_bytes=2048 * MIB,
        dynamic_memory=True,
        minimum_bytes=1024 * MIB,
        maximum_bytes=4096 * MIB,
        memory_demand_mb=6000,
        cpu_demand_mhz=1000,
    )
    return site


def loop_conf(wsman_server, certificates, password):
    """The project's whole configuration, its [hyperv] group pointing at the loopback server."""
    conf = make_conf([])
    for name, value in {
        "endpoint": wsman_server.endpoint,
        "username": "administrator",
        "password": password,
        "ca_file": str(certificates.ca_file),
        "hosts": ["HV01", "HV02"],
    }.items():
        conf.set_override(name, value, group="hyperv")
    return conf


def test_control_loop_discovers_plans_migrates_and_resizes(
    draining_site, wsman_server, certificates, password, tmp_path
):
    site = draining_site
    conf = loop_conf(wsman_server, certificates, password)
    driver = load_plugin(DRIVERS, "hyperv", conf)
    store = HistoryStore(f"sqlite:///{tmp_path / 'history.sqlite'}")
    loop = ControlLoop(conf, driver=driver, strategy=PlanOnLatestTelemetry(conf), store=store)
    before = {vm.id: vm.host for vm in site.vms.values()}
    try:
        driver.set_host_maintenance("HV01", True)
        result = loop.run_once()
        after = driver.get_inventory()
    finally:
        driver.close()

    plan = result.plan
    kinds = [a.kind for a in plan.actions]
    assert ActionKind.LIVE_MIGRATE in kinds and ActionKind.RESIZE in kinds, plan.actions
    assert all(a.status is StepStatus.SUCCEEDED for a in plan.actions), [
        (a.kind, a.status, a.message) for a in plan.actions
    ]

    for action in plan.migrations:
        assert before[action.vm_id] == "HV01"
        assert site.vms[action.vm_id].host == action.target_host_id == "HV02"
        assert after.vms[action.vm_id].host_id == "HV02"
    assert after.hosts["HV01"].maintenance
    assert not [v for v in site.vms.values() if v.host == "HV01"], "HV01 was drained"

    db = next(v for v in site.vms.values() if v.name == "db01")
    resize = next(a for a in plan.actions if a.kind is ActionKind.RESIZE and a.vm_id == db.id)
    assert resize.size is not None and resize.size.memory > 6000
    assert db.maximum_bytes == int(np.ceil(resize.size.memory / 2) * 2) * MIB
    assert after.vms[db.id].size.memory == db.maximum_bytes / MIB
    assert db.state == "Running" and db.processor_count == 2

    stored = store.get_plan(plan.id)
    assert [a.status for a in stored.actions] == [StepStatus.SUCCEEDED] * len(plan.actions)
    assert {"Move-VM", "Set-VMMemory", "Get-Counter", "Measure-VM"} <= set(site.calls)


class PlanNothing(Strategy):
    """Plans no steps: the test is about what each round collects."""

    name = "plan-nothing"

    def plan(self, state: ClusterState) -> ActionPlan:
        return ActionPlan(strategy=self.name)


def test_every_round_collects_a_fresh_reading_also_with_rounds_shorter_than_the_grace(
    site, wsman_server, certificates, password, tmp_path
):
    """Hyper-V keeps no counter history, so each round's window must take its own reading; a round
    every second is shorter than ``metrics_grace`` (30 s), which must not leave windows empty."""
    conf = loop_conf(wsman_server, certificates, password)
    conf.set_override("interval", 1)
    driver = load_plugin(DRIVERS, "hyperv", conf)
    store = HistoryStore(f"sqlite:///{tmp_path / 'history.sqlite'}")
    loop = ControlLoop(conf, driver=driver, strategy=PlanNothing(conf), store=store)
    try:
        results = loop.run(rounds=3)
    finally:
        driver.close()

    assert [r.samples > 0 for r in results] == [True, True, True]
    stamps = {s.timestamp for s in store.samples(0.0, results[-1].now + 1)}
    assert len(stamps) == 3
    store.close()
