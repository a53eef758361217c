"""End to end against the vCenter simulator: the control loop with the ``vsphere`` driver discovers
the inventory, collects metrics into the history store, plans with the ``predictive`` strategy,
live-migrates and changes allocations; pyVmomi then reads the moves and allocations back. The same
kind of plan written as vCenter scheduled tasks appears in vCenter's list and runs.

The forecaster is the project's default, fed the metrics the loop collected. The risk model is a
stand-in that marks the two ``noisy`` VMs as a risky pair (as a trained model would after seeing
them conflict), so the test does not depend on training data.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import vcsim_harness
from pyVmomi import vim
from vcsim_admin import admin_connection, cluster_hosts, create_vm, remove_vm, vsphere_overrides

from cotenancy.conf import make_conf
from cotenancy.engine.loop import ControlLoop
from cotenancy.loading import DRIVERS, load_plugin
from cotenancy.model import ActionKind, StepStatus
from cotenancy.plugins.vcenter.executor import ScheduledTaskExecutor, task_name
from cotenancy.predict.base import RiskModel
from cotenancy.store import HistoryStore
from cotenancy.strategies.predictive import PredictiveStrategy


class NoisyPairRisk(RiskModel):
    """Stand-in risk model: the VMs whose names start with ``noisy-`` conflict with each other."""

    name = "noisy-pair"

    def __init__(self, names: dict[str, str]) -> None:
        super().__init__(None)
        self.names = names

    def score_pairs(self, state, pairs, hosts=None):
        ids = state.telemetry.vm_ids
        noisy = [
            self.names.get(ids[a], "").startswith("noisy-")
            and self.names.get(ids[b], "").startswith("noisy-")
            for a, b in pairs
        ]
        return np.where(noisy, 0.9, 0.01)

    def explain(self, state, pair, top=5, host=None):
        return [("noisy neighbours", 2.0)]


@pytest.fixture(scope="module")
def e2e_sim() -> Iterator[vcsim_harness.VCSim]:
    """A simulator of its own: one cluster of three empty hosts the tests fill."""
    with vcsim_harness.VCSim.start(clusters=1, hosts_per_cluster=3, vms_per_pool=0) as sim:
        yield sim


@pytest.fixture(scope="module")
def e2e_admin(e2e_sim):
    with admin_connection(e2e_sim) as content:
        yield content


@pytest.fixture
def workload(e2e_admin) -> Iterator[dict[str, vim.VirtualMachine]]:
    """Two noisy VMs on the first host and a quiet one on the second; removed afterwards."""
    h0, h1, _ = cluster_hosts(e2e_admin, 0)
    vms = {
        name: create_vm(e2e_admin, host, name, memory_mb=512)
        for name, host in (("noisy-a", h0), ("noisy-b", h0), ("quiet-c", h1))
    }
    yield vms
    for vm in vms.values():
        remove_vm(vm)


@pytest.fixture
def loop_conf(e2e_sim):
    """The project's whole configuration, as the ``cotenancy`` command builds it."""
    conf = make_conf([], config_files=[])
    for name, value in vsphere_overrides(e2e_sim).items():
        conf.set_override(name, value, group="vsphere")
    conf.set_override("underloaded_hosts", 0, group="planner")
    conf.set_override("weight_energy", 0.0, group="planner")
    return conf


def make_loop(conf, driver, workload, store, executor=None) -> ControlLoop:
    names = {vm._moId: vm.name for vm in workload.values()}
    strategy = PredictiveStrategy(conf, risk_model=NoisyPairRisk(names))
    return ControlLoop(conf, driver=driver, strategy=strategy, store=store, executor=executor)


def test_the_loop_discovers_collects_plans_migrates_and_changes_allocations(
    loop_conf, workload, e2e_admin, tmp_path
):
    driver = load_plugin(DRIVERS, "vsphere", loop_conf)
    store = HistoryStore(f"sqlite:///{tmp_path / 'history.sqlite'}")
    noisy_host = workload["noisy-a"].runtime.host._moId

    result = make_loop(loop_conf, driver, workload, store).run_once()

    plan = result.plan
    assert result.executed and result.samples > 0, plan.stats
    assert store.vms().keys() >= {vm._moId for vm in workload.values()}
    stored_samples = store.samples(0.0, result.now + 1, [workload["noisy-a"]._moId], ["cpu"])
    assert len(stored_samples) > 0
    assert all(a.status is StepStatus.SUCCEEDED for a in plan.actions), [
        (a.kind, a.vm_id, a.status, a.message) for a in plan.actions
    ]
    assert [a.status for a in store.get_plan(plan.id).actions] == [StepStatus.SUCCEEDED] * len(plan.actions)

    # the risky pair was split, and vCenter shows the VM on its new host
    [move] = plan.migrations
    moved = next(vm for vm in workload.values() if vm._moId == move.vm_id)
    assert moved.name.startswith("noisy-")
    assert "pair risk 0.90" in move.reason
    assert moved.runtime.host._moId == move.target_host_id != noisy_host
    assert workload["noisy-a"].runtime.host._moId != workload["noisy-b"].runtime.host._moId

    # allocations were changed ahead of forecast demand, and vCenter shows them
    allocations = [a for a in plan.actions if a.kind is ActionKind.SET_ALLOCATION]
    assert allocations
    for step in allocations:
        vm = next(v for v in workload.values() if v._moId == step.vm_id)
        assert vm.config.cpuAllocation.reservation == int(step.allocation.reservation.cpu)
        assert vm.config.memoryAllocation.reservation == int(step.allocation.reservation.memory)
    driver.close()
    store.close()


def test_the_same_plan_as_scheduled_tasks_appears_in_vcenter_and_runs(
    loop_conf, workload, e2e_admin, tmp_path
):
    loop_conf.set_override("wait", True, group="vcenter-scheduled")
    loop_conf.set_override("start_delay", 0.5, group="vcenter-scheduled")
    loop_conf.set_override("poll_interval", 0.1, group="vcenter-scheduled")
    loop_conf.set_override("wait_timeout", 60.0, group="vcenter-scheduled")
    driver = load_plugin(DRIVERS, "vsphere", loop_conf)
    store = HistoryStore(f"sqlite:///{tmp_path / 'history.sqlite'}")
    executor = ScheduledTaskExecutor(loop_conf, store=store)

    result = make_loop(loop_conf, driver, workload, store, executor).run_once()

    plan = result.plan
    assert plan.migrations and result.executed
    listed = {t.info.name: t.info for t in e2e_admin.scheduledTaskManager.scheduledTask}
    for action in plan.actions:
        info = listed[task_name(plan, action)]
        assert info.state == "success"
        assert info.prevRunTime is not None
        assert action.status is StepStatus.SUCCEEDED
    assert [a.status for a in store.get_plan(plan.id).actions] == [StepStatus.SUCCEEDED] * len(plan.actions)
    [move] = plan.migrations
    moved = next(vm for vm in workload.values() if vm._moId == move.vm_id)
    assert moved.runtime.host._moId == move.target_host_id
    assert workload["noisy-a"].runtime.host._moId != workload["noisy-b"].runtime.host._moId
    for task in e2e_admin.scheduledTaskManager.scheduledTask:
        task.RemoveScheduledTask()
    driver.close()
    store.close()
