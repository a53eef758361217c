"""Plans written as vCenter scheduled tasks (simulated ScheduledTaskManager), and read back."""

from __future__ import annotations

import datetime as dt
import math
import time

import pytest
from pyVmomi import vim
from vcsim_admin import cluster_hosts, migrations_of, wait_for

from cotenancy.exceptions import ConfigurationError
from cotenancy.loading import EXECUTORS, load_plugin
from cotenancy.model import ActionKind, ActionPlan, Allocation, Resources, StepStatus
from cotenancy.plugins.vcenter.executor import ScheduledTaskExecutor, task_name

OPEN = (StepStatus.PENDING, StepStatus.SCHEDULED, StepStatus.RUNNING)


def soon(seconds: float = 0.5) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)


def scheduled(admin) -> dict[str, vim.scheduler.ScheduledTask]:
    return {t.info.name: t for t in admin.scheduledTaskManager.scheduledTask}


def approve_now(task: vim.scheduler.ScheduledTask) -> None:
    """What an admin does in the vSphere Client: enable a task and make it run right away."""
    spec = task.info
    task.ReconfigureScheduledTask(
        vim.scheduler.ScheduledTaskSpec(
            name=spec.name,
            description=spec.description,
            enabled=True,
            scheduler=vim.scheduler.OnceTaskScheduler(runAt=soon(0.2)),
            action=spec.action,
        )
    )


def plan_for(vm, target, other) -> ActionPlan:
    plan = ActionPlan(strategy="test")
    plan.add(
        ActionKind.LIVE_MIGRATE,
        vm_id=vm._moId,
        target_host_id=target._moId,
        reason="pair risk 0.8 with a noisy neighbour",
        expected_benefit=0.6,
    )
    plan.add(
        ActionKind.SET_ALLOCATION,
        vm_id=other._moId,
        allocation=Allocation(reservation=Resources(cpu=500, memory=64), shares=2000),
    )
    plan.add(
        ActionKind.SET_ALLOCATION,
        vm_id=vm._moId,
        allocation=Allocation(shares=500),
        depends_on=(0,),
    )
    return plan


def run_until_done(executor, plan, driver, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        executor.sync(plan, driver)
        if all(
            a.status not in (StepStatus.PENDING, StepStatus.SCHEDULED, StepStatus.RUNNING)
            for a in plan.actions
        ):
            return plan
        time.sleep(0.2)
    pytest.fail(f"plan did not finish: {[(a.status, a.message) for a in plan.actions]}")


def test_executor_is_registered(vsphere_conf):
    executor = load_plugin(EXECUTORS, "vcenter-scheduled", vsphere_conf)
    assert isinstance(executor, ScheduledTaskExecutor)


def test_steps_appear_as_scheduled_tasks_run_and_are_read_back(admin, driver, vsphere_conf, store, new_vm):
    source, target = cluster_hosts(admin, 0)[:2]
    vm, other = new_vm(host=source), new_vm(host=source, memory_mb=256)
    plan = plan_for(vm, target, other)
    store.save_plan(plan)
    run_at = soon(2.5)
    executor = ScheduledTaskExecutor(vsphere_conf, store=store, run_at=run_at)

    executor.execute(plan, driver)

    # ready steps are written; the dependent one waits for its dependency
    assert [a.status for a in plan.actions] == [
        StepStatus.SCHEDULED,
        StepStatus.SCHEDULED,
        StepStatus.PENDING,
    ]
    tasks = scheduled(admin)
    first = tasks[task_name(plan, plan.actions[0])]
    assert first.info.entity._moId == vm._moId
    assert first.info.action.name is vim.VirtualMachine.Relocate
    assert abs((first.info.scheduler.runAt - run_at).total_seconds()) < 0.001
    assert "pair risk 0.8" in first.info.description
    assert task_name(plan, plan.actions[2]) not in tasks
    assert vm.runtime.host._moId == source._moId  # nothing ran before its time

    run_until_done(executor, plan, driver)

    assert [a.status for a in plan.actions] == [StepStatus.SUCCEEDED] * 3
    assert [a.status for a in store.get_plan(plan.id).actions] == [StepStatus.SUCCEEDED] * 3
    assert vm.runtime.host._moId == target._moId
    assert migrations_of(admin, vm) == 1
    assert other.config.cpuAllocation.reservation == 500
    assert other.config.cpuAllocation.shares.level == "high"
    assert vm.config.cpuAllocation.shares.level == "low"
    assert scheduled(admin)[task_name(plan, plan.actions[0])].info.state == "success"


def test_sync_never_writes_a_step_twice(admin, driver, vsphere_conf, new_vm):
    source, target = cluster_hosts(admin, 0)[:2]
    vm, other = new_vm(host=source), new_vm(host=source, memory_mb=256)
    plan = plan_for(vm, target, other)
    executor = ScheduledTaskExecutor(vsphere_conf, run_at=soon(3600))
    executor.execute(plan, driver)
    # a crash loses the in-memory statuses; the task names still identify the written steps
    for action in plan.actions:
        action.status = StepStatus.PENDING

    executor.execute(plan, driver)

    names = [t.info.name for t in admin.scheduledTaskManager.scheduledTask]
    assert sum(name.startswith(f"cotenancy {plan.id} ") for name in names) == 2
    executor.cancel(plan, driver)
    assert all(a.status is StepStatus.CANCELLED for a in plan.actions)
    assert not any(name.startswith(f"cotenancy {plan.id} ") for name in scheduled(admin))


def test_failed_scheduled_step_skips_its_dependents(vcsim, admin, driver, vsphere_conf, store, new_vm):
    source, target = cluster_hosts(admin, 0)[:2]
    vm, other = new_vm(host=source), new_vm(host=source, memory_mb=256)
    plan = plan_for(vm, target, other)
    store.save_plan(plan)
    vcsim.arm_fault("RelocateVM_Task", "MigrationFault", this=vm._moId)
    executor = ScheduledTaskExecutor(vsphere_conf, store=store, run_at=soon())

    run_until_done(executor, plan, driver)

    assert [a.status for a in plan.actions] == [
        StepStatus.FAILED,
        StepStatus.SUCCEEDED,
        StepStatus.SKIPPED,
    ]
    assert "MigrationFault" in plan.actions[0].message
    assert [a.status for a in store.get_plan(plan.id).actions] == [a.status for a in plan.actions]
    assert vm.runtime.host._moId == source._moId


def test_task_removed_by_an_admin_is_cancelled(admin, driver, vsphere_conf, store, new_vm):
    source, target = cluster_hosts(admin, 0)[:2]
    vm, other = new_vm(host=source), new_vm(host=source, memory_mb=256)
    plan = plan_for(vm, target, other)
    store.save_plan(plan)
    executor = ScheduledTaskExecutor(vsphere_conf, store=store, run_at=soon(3600))
    executor.execute(plan, driver)

    scheduled(admin)[task_name(plan, plan.actions[0])].RemoveScheduledTask()
    executor.execute(plan, driver)

    assert plan.actions[0].status is StepStatus.CANCELLED
    assert plan.actions[2].status is StepStatus.SKIPPED
    assert store.get_plan(plan.id).actions[0].status is StepStatus.CANCELLED
    executor.cancel(plan, driver)


def test_disabled_tasks_wait_for_approval_and_run_once_enabled(admin, driver, vsphere_conf, new_vm):
    source, target = cluster_hosts(admin, 0)[:2]
    vm, other = new_vm(host=source), new_vm(host=source, memory_mb=256)
    vsphere_conf.set_override("enabled", False, group="vcenter-scheduled")
    plan = plan_for(vm, target, other)
    executor = ScheduledTaskExecutor(vsphere_conf, run_at=soon(0.2))
    executor.execute(plan, driver)
    time.sleep(0.5)

    executor.execute(plan, driver)

    assert plan.actions[0].status is StepStatus.SCHEDULED
    assert "waiting for an admin" in plan.actions[0].message
    assert vm.runtime.host._moId == source._moId

    approve_now(scheduled(admin)[task_name(plan, plan.actions[0])])
    deadline = time.monotonic() + 10
    while plan.actions[0].status is not StepStatus.SUCCEEDED and time.monotonic() < deadline:
        time.sleep(0.2)
        executor.sync(plan, driver)

    assert plan.actions[0].status is StepStatus.SUCCEEDED
    assert vm.runtime.host._moId == target._moId
    assert plan.actions[1].status is StepStatus.SCHEDULED  # still waiting for its approval
    executor.cancel(plan, driver)
    assert plan.actions[1].status is StepStatus.CANCELLED


def test_waiting_mode_returns_a_finished_plan(admin, driver, vsphere_conf, new_vm):
    source, target = cluster_hosts(admin, 0)[:2]
    vm, other = new_vm(host=source), new_vm(host=source, memory_mb=256)
    vsphere_conf.set_override("wait", True, group="vcenter-scheduled")
    vsphere_conf.set_override("poll_interval", 0.1, group="vcenter-scheduled")
    vsphere_conf.set_override("start_delay", 0.2, group="vcenter-scheduled")

    plan = ScheduledTaskExecutor(vsphere_conf).execute(plan_for(vm, target, other), driver)

    assert [a.status for a in plan.actions] == [StepStatus.SUCCEEDED] * 3
    assert vm.runtime.host._moId == target._moId


def test_needs_the_vsphere_driver(vsphere_conf):
    from cotenancy.drivers.base import Driver

    class Other(Driver):
        name = "other"
        get_inventory = get_metrics = get_events = live_migrate = resize = None  # type: ignore
        set_host_maintenance = None  # type: ignore

    Other.__abstractmethods__ = frozenset()
    with pytest.raises(ConfigurationError, match="vsphere driver"):
        ScheduledTaskExecutor(vsphere_conf).execute(ActionPlan(strategy="x"), Other(vsphere_conf))


def test_cancel_after_the_tasks_ran_records_what_they_did_and_keeps_their_outcome(
    admin, driver, vsphere_conf, store, moved_and_refused
):
    plan = moved_and_refused
    store.save_plan(plan)
    ScheduledTaskExecutor(vsphere_conf, store=store, run_at=soon()).execute(plan, driver)
    names = [task_name(plan, a) for a in plan.actions[:2]]
    wait_for(
        lambda: all(scheduled(admin)[n].info.state in ("success", "error") for n in names),
        "both scheduled tasks ran",
    )

    # the operator cancels from another process, holding only what the store knew before the runs
    stored = store.get_plan(plan.id)
    ScheduledTaskExecutor(vsphere_conf, store=store).cancel(stored, driver)

    recorded = store.get_plan(plan.id).actions
    assert [a.status for a in recorded] == [StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.CANCELLED]
    assert "MigrationFault" in recorded[1].message
    assert recorded[2].message == "cancelled before it ran"
    moved = vim.VirtualMachine(plan.actions[0].vm_id, admin.sessionManager._stub)
    assert moved.runtime.host._moId == plan.actions[0].target_host_id
    assert set(names) <= set(scheduled(admin))  # the outcomes stay readable in vCenter


def test_cancel_leaves_a_running_task_to_finish_and_reads_its_outcome_later(
    vcsim, admin, driver, vsphere_conf, store, new_vm
):
    source, target = cluster_hosts(admin, 0)[:2]
    vm = new_vm(host=source)
    vcsim.arm_fault("RelocateVM_Task", delay_ms=3000, this=vm._moId)  # a slow migration
    plan = ActionPlan(strategy="test")
    plan.add(ActionKind.LIVE_MIGRATE, vm_id=vm._moId, target_host_id=target._moId)
    store.save_plan(plan)
    executor = ScheduledTaskExecutor(vsphere_conf, store=store, run_at=soon(0.2))
    executor.execute(plan, driver)
    name = task_name(plan, plan.actions[0])
    wait_for(lambda: scheduled(admin)[name].info.state == "running", "the migration is running")

    executor.cancel(plan, driver)

    step = store.get_plan(plan.id).actions[0]
    assert step.status is StepStatus.RUNNING
    assert "too late to withdraw" in step.message
    assert name in scheduled(admin)
    run_until_done(executor, plan, driver)
    assert plan.actions[0].status is StepStatus.SUCCEEDED
    assert vm.runtime.host._moId == target._moId


def test_abort_policy_withdraws_the_steps_not_yet_run_after_a_failure(
    vcsim, admin, driver, vsphere_conf, store, new_vm
):
    source, target = cluster_hosts(admin, 0)[:2]
    vm1, vm2 = new_vm(host=source), new_vm(host=source)
    vsphere_conf.set_override("on_step_failure", "abort")
    vsphere_conf.set_override("enabled", False, group="vcenter-scheduled")
    vcsim.arm_fault("RelocateVM_Task", "MigrationFault", this=vm1._moId)
    plan = ActionPlan(strategy="test")
    plan.add(ActionKind.LIVE_MIGRATE, vm_id=vm1._moId, target_host_id=target._moId)
    plan.add(ActionKind.SET_ALLOCATION, vm_id=vm2._moId, allocation=Allocation(shares=500))
    plan.add(ActionKind.LIVE_MIGRATE, vm_id=vm2._moId, target_host_id=target._moId, depends_on=(1,))
    store.save_plan(plan)
    executor = ScheduledTaskExecutor(vsphere_conf, store=store, run_at=soon(3600))
    executor.execute(plan, driver)
    # the admin approves step 0 only; step 1 still waits for approval when step 0 fails
    approve_now(scheduled(admin)[task_name(plan, plan.actions[0])])
    wait_for(
        lambda: scheduled(admin)[task_name(plan, plan.actions[0])].info.state == "error",
        "step 0 failed in vCenter",
    )

    executor.execute(plan, driver)

    assert [a.status for a in plan.actions] == [
        StepStatus.FAILED,
        StepStatus.CANCELLED,
        StepStatus.CANCELLED,
    ]
    assert plan.actions[1].message == plan.actions[2].message == "plan aborted after step 0 failed"
    assert [a.status for a in store.get_plan(plan.id).actions] == [a.status for a in plan.actions]
    assert task_name(plan, plan.actions[1]) not in scheduled(admin)
    assert task_name(plan, plan.actions[2]) not in scheduled(admin)
    assert vm2.config.cpuAllocation.shares.level == "normal"
    assert vm2.runtime.host._moId == source._moId


def test_continue_policy_schedules_the_dependents_of_a_failed_step(
    vcsim, admin, driver, vsphere_conf, new_vm
):
    source, target = cluster_hosts(admin, 0)[:2]
    vm, other = new_vm(host=source), new_vm(host=source, memory_mb=256)
    vsphere_conf.set_override("on_step_failure", "continue")
    vcsim.arm_fault("RelocateVM_Task", "MigrationFault", this=vm._moId)
    plan = plan_for(vm, target, other)
    executor = ScheduledTaskExecutor(vsphere_conf, run_at=soon())

    run_until_done(executor, plan, driver)

    assert [a.status for a in plan.actions] == [
        StepStatus.FAILED,
        StepStatus.SUCCEEDED,
        StepStatus.SUCCEEDED,
    ]
    assert vm.runtime.host._moId == source._moId
    assert vm.config.cpuAllocation.shares.level == "low"


@pytest.mark.parametrize(
    ("kind", "fields", "refusal"),
    [
        (
            ActionKind.SET_ALLOCATION,
            {"allocation": Allocation(reservation=Resources(cpu=math.inf))},
            "asks for a reservation with cpu inf",
        ),
        (
            ActionKind.SET_ALLOCATION,
            {"allocation": Allocation(reservation=Resources(memory=-64.0))},
            "asks for a reservation with memory -64.0",
        ),
        (
            ActionKind.RESIZE,
            {"size": Resources(cpu=2000.0, memory=512.0, network=-1.0)},
            "asks for a size with network -1.0",
        ),
        (ActionKind.LIVE_MIGRATE, {}, "is missing a field it needs"),
    ],
    ids=["infinite-reservation", "negative-reservation", "negative-size", "no-target-host"],
)
def test_a_malformed_step_fails_without_a_task_and_its_dependents_are_skipped(
    admin, driver, vsphere_conf, store, new_vm, kind, fields, refusal
):
    source, target = cluster_hosts(admin, 0)[:2]
    vm, other = new_vm(host=source), new_vm(host=source)
    plan = ActionPlan(strategy="test")
    plan.add(kind, vm_id=vm._moId, **fields)
    plan.add(ActionKind.SET_ALLOCATION, vm_id=vm._moId, allocation=Allocation(shares=500), depends_on=(0,))
    plan.add(ActionKind.LIVE_MIGRATE, vm_id=other._moId, target_host_id=target._moId)
    store.save_plan(plan)
    executor = ScheduledTaskExecutor(vsphere_conf, store=store, run_at=soon(3600))

    executor.execute(plan, driver)

    assert [a.status for a in plan.actions] == [
        StepStatus.FAILED,
        StepStatus.SKIPPED,
        StepStatus.SCHEDULED,
    ]
    assert plan.actions[0].message == f"ActionFailed: step 0 ({kind}) {refusal}"
    assert [(a.status, a.message) for a in store.get_plan(plan.id).actions] == [
        (a.status, a.message) for a in plan.actions
    ]
    assert task_name(plan, plan.actions[0]) not in scheduled(admin)
    executor.cancel(plan, driver)


def test_under_abort_a_step_refused_before_scheduling_withdraws_the_steps_already_written(
    admin, driver, vsphere_conf, store, new_vm
):
    source, target = cluster_hosts(admin, 0)[:2]
    vm = new_vm(host=source)
    vsphere_conf.set_override("on_step_failure", "abort")
    plan = ActionPlan(strategy="test")
    plan.add(ActionKind.LIVE_MIGRATE, vm_id=vm._moId, target_host_id=target._moId)
    plan.add(ActionKind.RESIZE, vm_id=vm._moId, size=Resources(cpu=float("nan"), memory=512))
    store.save_plan(plan)
    executor = ScheduledTaskExecutor(vsphere_conf, store=store, run_at=soon(3600))

    executor.execute(plan, driver)

    assert [a.status for a in plan.actions] == [StepStatus.CANCELLED, StepStatus.FAILED]
    assert plan.actions[0].message == "plan aborted after step 1 failed"
    assert plan.actions[1].message.startswith("ActionFailed: step 1 (resize) asks for a size with cpu nan")
    assert [a.status for a in store.get_plan(plan.id).actions] == [a.status for a in plan.actions]
    assert not any(name.startswith(f"cotenancy {plan.id} ") for name in scheduled(admin))


def vcenter_now(admin) -> dt.datetime:
    return vim.ServiceInstance("ServiceInstance", admin.sessionManager._stub).CurrentTime()


def one_migration(admin, new_vm) -> ActionPlan:
    source, target = cluster_hosts(admin, 0)[:2]
    plan = ActionPlan(strategy="test")
    plan.add(ActionKind.LIVE_MIGRATE, vm_id=new_vm(host=source)._moId, target_host_id=target._moId)
    return plan


@pytest.mark.parametrize("skew_hours", [-2.0, 3.0])
def test_start_delay_counts_from_vcenters_clock_not_this_hosts(
    vcsim, admin, driver, vsphere_conf, new_vm, skew_hours
):
    """vCenter runs the task by its own clock: with this host's clock off by hours, a task written
    for "start_delay seconds from now" would otherwise run hours late or at once."""
    vcsim.set_clock_offset(skew_hours * 3600)
    vsphere_conf.set_override("start_delay", 600.0, group="vcenter-scheduled")
    plan = one_migration(admin, new_vm)
    executor = ScheduledTaskExecutor(vsphere_conf)
    before = vcenter_now(admin)

    executor.execute(plan, driver)

    after = vcenter_now(admin)
    run_at = scheduled(admin)[task_name(plan, plan.actions[0])].info.scheduler.runAt
    executor.cancel(plan, driver)
    assert before + dt.timedelta(seconds=600) <= run_at <= after + dt.timedelta(seconds=600)


def test_maintenance_window_is_the_next_one_on_vcenters_clock(vcsim, admin, driver, vsphere_conf, new_vm):
    """With vCenter 3 hours ahead, a window that starts in 1 hour by this host's clock has already
    begun by vCenter's: the task goes to tomorrow's window, not into vCenter's past."""
    vcsim.set_clock_offset(3 * 3600)
    local_in_an_hour = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    vsphere_conf.set_override("window_start", local_in_an_hour.strftime("%H:%M"), group="vcenter-scheduled")
    plan = one_migration(admin, new_vm)
    executor = ScheduledTaskExecutor(vsphere_conf)
    now = vcenter_now(admin)

    executor.execute(plan, driver)

    run_at = scheduled(admin)[task_name(plan, plan.actions[0])].info.scheduler.runAt
    executor.cancel(plan, driver)
    assert now < run_at <= now + dt.timedelta(days=1)
    assert run_at.strftime("%H:%M") == local_in_an_hour.strftime("%H:%M")
