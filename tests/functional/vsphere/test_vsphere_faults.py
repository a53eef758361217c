"""Faults while acting: each gives the typed error and a recorded step status; no step is lost or
run twice. Faults come from the simulator's hooks (failing or slow tasks, method delays)."""

from __future__ import annotations

import _thread
import logging
import re
import threading
import time

import pytest
from pyVmomi import vim
from vcsim_admin import cluster_hosts, migrations_of, wait_for, wait_task

from cotenancy.drivers.vsphere.driver import VSphereDriver
from cotenancy.engine.executor import DriverExecutor
from cotenancy.exceptions import ActionFailed, TimedOut
from cotenancy.model import ActionKind, ActionPlan, Allocation, Resources, StepStatus, VMState


def migrate_plan(vm: vim.VirtualMachine, target: vim.HostSystem, other: vim.VirtualMachine) -> ActionPlan:
    """Step 0 moves ``vm``; step 1 (independent) changes ``other``'s shares; step 2 needs step 0."""
    plan = ActionPlan(strategy="test")
    plan.add(ActionKind.LIVE_MIGRATE, vm_id=vm._moId, target_host_id=target._moId)
    plan.add(ActionKind.SET_ALLOCATION, vm_id=other._moId, allocation=Allocation(shares=2000))
    plan.add(
        ActionKind.SET_ALLOCATION,
        vm_id=vm._moId,
        allocation=Allocation(shares=500),
        depends_on=(0,),
    )
    return plan


def statuses(plan: ActionPlan) -> list[StepStatus]:
    return [a.status for a in plan.actions]


def run(plan, conf, store, driver):
    store.save_plan(plan)
    DriverExecutor(conf, store=store).execute(plan, driver)
    stored = store.get_plan(plan.id)
    assert [(a.status, a.message) for a in stored.actions] == [(a.status, a.message) for a in plan.actions]
    return plan


def test_failing_task_fails_its_step_and_skips_its_dependents(
    vcsim, admin, driver, vsphere_conf, store, new_vm
):
    source, target = cluster_hosts(admin, 0)[:2]
    vm, other = new_vm(host=source), new_vm(host=source)
    vcsim.arm_fault("RelocateVM_Task", "MigrationFault", this=vm._moId)

    plan = run(migrate_plan(vm, target, other), vsphere_conf, store, driver)

    assert statuses(plan) == [StepStatus.FAILED, StepStatus.SUCCEEDED, StepStatus.SKIPPED]
    assert "ActionFailed" in plan.actions[0].message
    assert "MigrationFault" in plan.actions[0].message
    assert vm.runtime.host._moId == source._moId
    assert other.config.cpuAllocation.shares.level == "high"
    assert vm.config.cpuAllocation.shares.level == "normal"
    assert migrations_of(admin, vm) == 0


def test_failing_task_raises_action_failed(vcsim, admin, driver, new_vm):
    source, target = cluster_hosts(admin, 0)[:2]
    vm = new_vm(host=source)
    vcsim.arm_fault("RelocateVM_Task", "InvalidState", this=vm._moId)

    with pytest.raises(ActionFailed, match="InvalidState"):
        driver.live_migrate(vm._moId, target._moId)


def test_task_that_outlives_its_timeout_is_recorded_once(vcsim, admin, driver, vsphere_conf, store, new_vm):
    source, target = cluster_hosts(admin, 0)[:2]
    vm, other = new_vm(host=source), new_vm(host=source)
    vsphere_conf.set_override("step_timeout", 1.0)
    vcsim.arm_fault("RelocateVM_Task", delay_ms=4000, this=vm._moId)

    started = time.monotonic()
    plan = run(migrate_plan(vm, target, other), vsphere_conf, store, driver)

    assert time.monotonic() - started < 4.0, "the executor waited for the slow task"
    assert vm.runtime.host._moId == source._moId
    assert statuses(plan) == [StepStatus.FAILED, StepStatus.SUCCEEDED, StepStatus.SKIPPED]
    assert plan.actions[0].message.startswith("TimedOut")
    assert "outcome is unknown" in plan.actions[0].message
    # the slow task finishes on its own; running the plan again must not move the VM again
    deadline = time.monotonic() + 10
    while vm.runtime.host._moId != target._moId and time.monotonic() < deadline:
        time.sleep(0.1)
    DriverExecutor(vsphere_conf, store=store).execute(plan, driver)
    assert vm.runtime.host._moId == target._moId
    assert migrations_of(admin, vm) == 1
    assert statuses(store.get_plan(plan.id))[0] is StepStatus.FAILED


def test_task_timeout_bounds_a_task_also_under_the_executors_longer_step_timeout(
    vcsim, admin, driver, vsphere_conf, store, new_vm
):
    """``[vsphere] task_timeout`` is what an operator sets for vCenter tasks; the control loop's
    executor always passes ``[DEFAULT] step_timeout`` (600 s by default), which must not lift it."""
    source, target = cluster_hosts(admin, 0)[:2]
    vm, other = new_vm(host=source), new_vm(host=source)
    vsphere_conf.set_override("task_timeout", 1.0, group="vsphere")
    vcsim.arm_fault("RelocateVM_Task", delay_ms=4000, this=vm._moId)

    plan = run(migrate_plan(vm, target, other), vsphere_conf, store, driver)

    assert statuses(plan) == [StepStatus.FAILED, StepStatus.SUCCEEDED, StepStatus.SKIPPED]
    assert plan.actions[0].message.startswith("TimedOut")
    assert "after 1 s" in plan.actions[0].message


def test_step_interrupted_while_its_task_runs_is_recorded_with_an_unknown_outcome(
    vcsim, admin, driver, vsphere_conf, store, new_vm
):
    """Ctrl-C (or a stopped service) while a relocation runs: vCenter carries on, so the step must
    not stay ``running`` in the history store for ever after the process has gone."""
    source, target = cluster_hosts(admin, 0)[:2]
    vm, other = new_vm(host=source), new_vm(host=source)
    vcsim.arm_fault("RelocateVM_Task", delay_ms=4000, this=vm._moId)
    plan = migrate_plan(vm, target, other)
    store.save_plan(plan)

    def interrupt_once_step_0_runs() -> None:
        while plan.actions[0].status is not StepStatus.RUNNING:
            time.sleep(0.05)
        _thread.interrupt_main()

    threading.Thread(target=interrupt_once_step_0_runs, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        DriverExecutor(vsphere_conf, store=store).execute(plan, driver)

    stored = store.get_plan(plan.id).actions
    assert [a.status for a in stored] == [StepStatus.FAILED, StepStatus.PENDING, StepStatus.PENDING]
    assert "interrupted" in stored[0].message
    assert "outcome is unknown" in stored[0].message


def test_slow_api_call_times_out_and_the_driver_recovers(vcsim, admin, vsphere_conf, new_vm):
    source, target = cluster_hosts(admin, 0)[:2]
    vm = new_vm(host=source, memory_mb=256)
    vsphere_conf.set_override("call_timeout", 2.0, group="vsphere")
    drv = VSphereDriver(vsphere_conf)
    drv.get_inventory()
    vcsim.set_delay("ReconfigVM_Task", 5000)

    with pytest.raises(TimedOut, match="outcome is unknown"):
        drv.set_allocation(vm._moId, Allocation(shares=2000))

    vcsim.set_delay("ReconfigVM_Task", 0)
    drv.live_migrate(vm._moId, target._moId)
    assert vm.runtime.host._moId == target._moId
    drv.close()


def test_vm_deleted_between_planning_and_acting(admin, driver, vsphere_conf, store, new_vm):
    source, target = cluster_hosts(admin, 0)[:2]
    vm, other = new_vm(host=source), new_vm(host=source)
    plan = migrate_plan(vm, target, other)
    wait_task(vm.PowerOffVM_Task())
    wait_task(vm.Destroy_Task())

    plan = run(plan, vsphere_conf, store, driver)

    assert statuses(plan) == [StepStatus.FAILED, StepStatus.SUCCEEDED, StepStatus.SKIPPED]
    assert plan.actions[0].message.startswith("not found")
    assert vm._moId in plan.actions[0].message


def test_lost_session_is_reestablished_and_each_step_runs_once(admin, driver, vsphere_conf, store, new_vm):
    source, target = cluster_hosts(admin, 0)[:2]
    vm, other = new_vm(host=source), new_vm(host=source)
    driver.get_inventory()
    session_key = driver.session.content.sessionManager.currentSession.key
    admin.sessionManager.TerminateSession([session_key])

    plan = run(migrate_plan(vm, target, other), vsphere_conf, store, driver)

    assert statuses(plan) == [StepStatus.SUCCEEDED] * 3
    assert driver.session.relogins == 1
    assert vm.runtime.host._moId == target._moId
    assert migrations_of(admin, vm) == 1
    assert vm.config.cpuAllocation.shares.level == "low"


def test_finished_plan_is_not_run_again(admin, driver, vsphere_conf, store, new_vm):
    source, target = cluster_hosts(admin, 0)[:2]
    vm, other = new_vm(host=source), new_vm(host=source)
    plan = run(migrate_plan(vm, target, other), vsphere_conf, store, driver)
    driver.live_migrate(vm._moId, source._moId)

    run(plan, vsphere_conf, store, driver)

    assert vm.runtime.host._moId == source._moId
    assert migrations_of(admin, vm) == 2


def test_resize_refusal_is_a_recorded_failed_step(admin, driver, vsphere_conf, store, new_vm):
    vm = new_vm(cpus=1)
    plan = ActionPlan(strategy="test")
    mhz = vm.runtime.host.summary.hardware.cpuMhz
    plan.add(ActionKind.RESIZE, vm_id=vm._moId, size=Resources(cpu=4 * mhz, memory=256))

    run(plan, vsphere_conf, store, driver)

    assert statuses(plan) == [StepStatus.FAILED]
    assert "Unsupported" in plan.actions[0].message
    assert vm.config.hardware.numCPU == 1


def relocation_that_times_out(vcsim, admin, driver, vsphere_conf, vm, target, fault=None, delay_ms=4000):
    """Start a relocation of ``vm`` that outlives the driver's 1 s task timeout; the vCenter task
    its TimedOut names, seen through the tests' own connection."""
    vsphere_conf.set_override("task_timeout", 1.0, group="vsphere")
    vcsim.arm_fault("RelocateVM_Task", fault, delay_ms=delay_ms, this=vm._moId)
    with pytest.raises(TimedOut) as timed_out:
        driver.live_migrate(vm._moId, target._moId)
    task_id = re.search(r"task (task-\d+)", str(timed_out.value))
    assert task_id, timed_out.value
    return vim.Task(task_id.group(1), admin.sessionManager._stub)


def inventory_and_words_on(driver, caplog, task):
    """The driver's next inventory, and what it logged about ``task`` while reading it."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="cotenancy.drivers.vsphere.driver"):
        inventory = driver.get_inventory()
    return inventory, [r for r in caplog.records if task._moId in r.getMessage()]


def test_vm_whose_relocation_outlived_its_timeout_stays_migrating_until_it_ends_and_its_outcome_is_logged(
    vcsim, admin, driver, vsphere_conf, new_vm, caplog
):
    """vCenter carries on with a relocation the driver stopped waiting for: until it ends, the VM is
    moving and no plan may move it again; its eventual outcome explains the step that timed out."""
    source, target = cluster_hosts(admin, 0)[:2]
    vm = new_vm(host=source)
    task = relocation_that_times_out(vcsim, admin, driver, vsphere_conf, vm, target)

    moving = driver.get_inventory().vms[vm._moId]

    assert moving.state is VMState.MIGRATING
    assert moving.host_id == source._moId
    assert task._moId in moving.attributes["migration"]
    wait_for(lambda: task.info.state == "success", "the slow relocation ended")
    inventory, [record] = inventory_and_words_on(driver, caplog, task)
    assert inventory.vms[vm._moId].state is VMState.ACTIVE
    assert inventory.vms[vm._moId].host_id == target._moId
    assert "timed out" in record.getMessage()
    assert "succeeded" in record.getMessage()
    assert inventory_and_words_on(driver, caplog, task)[1] == [], "the outcome is told once"


def test_vm_whose_relocation_outlived_its_timeout_names_the_host_it_is_going_to_until_it_lands(
    vcsim, admin, driver, vsphere_conf, new_vm
):
    """The planner holds room for the VM on the host the relocation is filling (docs/planner.md)."""
    source, target = cluster_hosts(admin, 0)[:2]
    vm = new_vm(host=source)
    task = relocation_that_times_out(vcsim, admin, driver, vsphere_conf, vm, target)

    moving = driver.get_inventory().vms[vm._moId]

    assert (moving.host_id, moving.migration_target) == (source._moId, target._moId)
    wait_for(lambda: task.info.state == "success", "the slow relocation ended")
    landed = driver.get_inventory().vms[vm._moId]
    assert (landed.host_id, landed.migration_target) == (target._moId, None)


def test_relocation_that_fails_after_its_timeout_is_logged_as_a_warning_with_its_fault(
    vcsim, admin, driver, vsphere_conf, new_vm, caplog
):
    source, target = cluster_hosts(admin, 0)[:2]
    vm = new_vm(host=source)
    task = relocation_that_times_out(vcsim, admin, driver, vsphere_conf, vm, target, "MigrationFault", 2500)
    wait_for(lambda: task.info.state == "error", "the slow relocation failed")

    inventory, [record] = inventory_and_words_on(driver, caplog, task)

    assert inventory.vms[vm._moId].state is VMState.ACTIVE
    assert inventory.vms[vm._moId].host_id == source._moId
    assert record.levelno == logging.WARNING
    assert "MigrationFault" in record.getMessage()


def test_relocation_someone_else_started_shows_the_vm_as_migrating(vcsim, admin, driver, new_vm):
    """An admin's (or DRS's) vMotion in progress, found among vCenter's recent tasks."""
    source, target = cluster_hosts(admin, 0)[:2]
    vm, bystander = new_vm(host=source), new_vm(host=source)
    vcsim.arm_fault("RelocateVM_Task", delay_ms=3000, this=vm._moId)
    task = vm.RelocateVM_Task(vim.vm.RelocateSpec(host=target))

    inventory = driver.get_inventory()

    assert inventory.vms[vm._moId].state is VMState.MIGRATING
    assert task._moId in inventory.vms[vm._moId].attributes["migration"]
    # a task's info does not carry its RelocateSpec: the target is unknown, the source holds it
    assert inventory.vms[vm._moId].migration_target is None
    assert inventory.vms[bystander._moId].state is VMState.ACTIVE
    wait_task(task)
    assert driver.get_inventory().vms[vm._moId].state is VMState.ACTIVE


@pytest.mark.parametrize(
    ("fault", "ended"),
    [(None, "succeeded"), ("MigrationFault", "failed: ActionFailed")],
    ids=["succeeded", "failed"],
)
def test_a_step_whose_relocation_outlived_its_timeout_has_its_eventual_outcome_recorded_by_a_later_process(
    vcsim, admin, driver, vsphere_conf, store, new_vm, fault, ended
):
    """The step stays failed (it did not end within its timeout, and its dependents were skipped
    for that); its message, read in ``cotenancy plan`` and the API, tells what vCenter did in the
    end, also when the process that timed out has ended (the next ``cotenancy plan``)."""
    source, target = cluster_hosts(admin, 0)[:2]
    vm, other = new_vm(host=source), new_vm(host=source)
    vsphere_conf.set_override("step_timeout", 1.0)
    vcsim.arm_fault("RelocateVM_Task", fault, delay_ms=2500, this=vm._moId)
    plan = run(migrate_plan(vm, target, other), vsphere_conf, store, driver)
    timed_out = plan.actions[0].message
    task = re.search(r"task (task-\d+)", timed_out).group(1)
    wait_for(lambda: vim.Task(task, admin.sessionManager._stub).info.state != "running", "the move ended")
    later = VSphereDriver(vsphere_conf)  # a new process: nothing in memory about the task
    try:
        DriverExecutor(vsphere_conf, store=store).follow_up(later)
    finally:
        later.close()

    step = store.get_plan(plan.id).actions[0]
    assert step.status is StepStatus.FAILED
    assert step.message.startswith(timed_out)
    assert f"in the end, vCenter task {task} {ended}" in step.message
    assert statuses(store.get_plan(plan.id))[1:] == [StepStatus.SUCCEEDED, StepStatus.SKIPPED]


def test_a_step_whose_relocation_still_runs_is_left_unknown_until_it_ends(
    vcsim, admin, driver, vsphere_conf, store, new_vm
):
    source, target = cluster_hosts(admin, 0)[:2]
    vm, other = new_vm(host=source), new_vm(host=source)
    vsphere_conf.set_override("step_timeout", 1.0)
    vcsim.arm_fault("RelocateVM_Task", delay_ms=4000, this=vm._moId)
    plan = run(migrate_plan(vm, target, other), vsphere_conf, store, driver)
    executor = DriverExecutor(vsphere_conf, store=store)

    executor.follow_up(driver)

    assert store.get_plan(plan.id).actions[0].message == plan.actions[0].message
    wait_for(lambda: vm.runtime.host._moId == target._moId, "the move ended")
    executor.follow_up(driver)
    assert "in the end" in store.get_plan(plan.id).actions[0].message
