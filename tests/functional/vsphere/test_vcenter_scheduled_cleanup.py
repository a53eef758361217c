"""Finished scheduled tasks leave vCenter once their outcome is in the history store.

Every follow-up pass, every sync and every vSphere inventory read lists vCenter's scheduled tasks;
tasks the ``vcenter-scheduled`` executor left behind after they ran would make that list, and the
time to read it, grow with every plan, and fill the admins' Scheduled Tasks view. The executor
removes its own finished tasks after ``finished_task_retention`` hours (by vCenter's clock, since
the task ran), and only those whose outcome the history store holds.
"""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from pyVmomi import vim
from vcsim_admin import cluster_hosts, wait_for

from cotenancy.model import ActionKind, ActionPlan, Allocation, StepStatus
from cotenancy.plugins.vcenter.executor import ScheduledTaskExecutor, task_name

GROUP = "vcenter-scheduled"


def soon(seconds: float = 0.3) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)


def scheduled(admin) -> dict[str, vim.scheduler.ScheduledTask]:
    return {t.info.name: t for t in admin.scheduledTaskManager.scheduledTask}


def ran(admin, *names: str) -> None:
    def check() -> bool:
        tasks = scheduled(admin)
        return all(n in tasks and tasks[n].info.state in ("success", "error") for n in names)

    wait_for(check, f"{names} ran")


def written(admin, conf, driver, store, plan: ActionPlan) -> list[str]:
    """Write the plan's ready steps to run at once (as an earlier round did) and wait until they
    ran; the names of their tasks."""
    if store is not None:
        store.save_plan(plan)
    ScheduledTaskExecutor(conf, store=store, run_at=soon()).execute(plan, driver)
    names = [task_name(plan, a) for a in plan.actions if a.status is StepStatus.SCHEDULED]
    ran(admin, *names)
    return names


def one_move(admin, new_vm) -> ActionPlan:
    source, target = cluster_hosts(admin, 0)[:2]
    plan = ActionPlan(strategy="test")
    plan.add(ActionKind.LIVE_MIGRATE, vm_id=new_vm(host=source)._moId, target_host_id=target._moId)
    return plan


def test_a_finished_task_stays_for_the_retention_period_then_leaves_vcenter(
    vcsim, admin, driver, vsphere_conf, store, new_vm
):
    plan = one_move(admin, new_vm)
    [name] = written(admin, vsphere_conf, driver, store, plan)
    later = ScheduledTaskExecutor(vsphere_conf, store=store)  # a later round, or process

    later.follow_up(driver)

    recorded = store.get_plan(plan.id).actions[0]
    assert recorded.status is StepStatus.SUCCEEDED
    assert name in scheduled(admin)  # recent: admins still see it in the vSphere Client

    vcsim.set_clock_offset(25 * 3600)  # by vCenter's clock, the task ran a day and an hour ago
    later.follow_up(driver)

    assert name not in scheduled(admin)
    assert store.get_plan(plan.id).actions[0] == recorded


def test_without_retention_the_pass_that_records_the_outcomes_removes_their_tasks(
    admin, driver, vsphere_conf, store, moved_and_refused
):
    plan = moved_and_refused
    names = written(admin, vsphere_conf, driver, store, plan)
    vsphere_conf.set_override("finished_task_retention", 0.0, group=GROUP)
    vsphere_conf.set_override("start_delay", 3600.0, group=GROUP)
    later = ScheduledTaskExecutor(vsphere_conf, store=store)

    later.follow_up(driver)

    stored = store.get_plan(plan.id).actions
    assert [a.status for a in stored] == [StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SCHEDULED]
    assert "MigrationFault" in stored[1].message
    tasks = scheduled(admin)
    assert not set(names) & set(tasks)
    assert tasks[task_name(plan, plan.actions[2])].info.state == "queued"  # not run: kept
    later.cancel(store.get_plan(plan.id), driver)


def test_only_cotenancys_own_tasks_with_a_recorded_outcome_are_removed(
    vcsim, admin, driver, vsphere_conf, store, new_vm
):
    ours = one_move(admin, new_vm)
    [our_task] = written(admin, vsphere_conf, driver, store, ours)
    # an installation with another (or no) history store: its task has no outcome recorded here
    unknown = one_move(admin, new_vm)
    [unrecorded] = written(admin, vsphere_conf, driver, None, unknown)
    # an admin's own task that ran
    vm = new_vm()
    admins = admin.scheduledTaskManager.CreateScheduledTask(
        vm,
        vim.scheduler.ScheduledTaskSpec(
            name=f"nightly note {vm._moId}",
            description="an admin's task",
            enabled=True,
            scheduler=vim.scheduler.OnceTaskScheduler(runAt=soon()),
            action=vim.action.MethodAction(
                name=vim.VirtualMachine.Reconfigure,
                argument=[vim.action.MethodActionArgument(value=vim.vm.ConfigSpec(annotation="checked"))],
            ),
        ),
    )
    ran(admin, admins.info.name)
    vsphere_conf.set_override("finished_task_retention", 0.0, group=GROUP)
    vcsim.set_clock_offset(30 * 24 * 3600)

    ScheduledTaskExecutor(vsphere_conf, store=store).follow_up(driver)

    tasks = scheduled(admin)
    assert our_task not in tasks
    assert unrecorded in tasks
    assert admins.info.name in tasks
    admins.RemoveScheduledTask()
    tasks[unrecorded].RemoveScheduledTask()


def test_a_pass_removes_at_most_max_removals_per_pass_tasks_and_leaves_the_rest_to_later_passes(
    admin, driver, vsphere_conf, store, new_vm
):
    """The first pass after an upgrade may find thousands of old finished tasks: one removal call
    each would make that pass (and the round it belongs to) last minutes."""
    plan = ActionPlan(strategy="test")
    for _ in range(5):
        plan.add(ActionKind.SET_ALLOCATION, vm_id=new_vm()._moId, allocation=Allocation(shares=2000))
    names = written(admin, vsphere_conf, driver, store, plan)
    assert len(names) == 5
    vsphere_conf.set_override("finished_task_retention", 0.0, group=GROUP)
    vsphere_conf.set_override("max_removals_per_pass", 2, group=GROUP)
    later = ScheduledTaskExecutor(vsphere_conf, store=store)

    left = []
    for _ in range(3):
        later.follow_up(driver)
        left.append(len(set(names) & set(scheduled(admin))))

    assert left == [3, 1, 0]
    assert [a.status for a in store.get_plan(plan.id).actions] == [StepStatus.SUCCEEDED] * 5


def test_a_removal_vcenter_refuses_is_logged_and_done_in_the_next_pass(
    vcsim, admin, driver, vsphere_conf, store, new_vm, caplog
):
    plan = one_move(admin, new_vm)
    [name] = written(admin, vsphere_conf, driver, store, plan)
    task = scheduled(admin)[name]
    vsphere_conf.set_override("finished_task_retention", 0.0, group=GROUP)
    vcsim.arm_fault("RemoveScheduledTask", "NoPermission", this=task._moId)
    later = ScheduledTaskExecutor(vsphere_conf, store=store)

    with caplog.at_level(logging.WARNING):
        later.follow_up(driver)

    assert store.get_plan(plan.id).actions[0].status is StepStatus.SUCCEEDED
    assert name in scheduled(admin)
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert task._moId in warning.getMessage()
    assert "NoPermission" in warning.getMessage()
    assert "next pass" in warning.getMessage()

    later.follow_up(driver)

    assert name not in scheduled(admin)
    assert store.get_plan(plan.id).actions[0].status is StepStatus.SUCCEEDED


def test_a_task_removed_after_its_outcome_was_recorded_keeps_that_outcome(
    admin, driver, vsphere_conf, store, new_vm
):
    """A long-running service still holds the step as scheduled; meanwhile another process (the
    next ``cotenancy plan``) recorded its outcome and the task left vCenter (its cleanup, or an
    admin tidying the Scheduled Tasks view). The step ran: it must not become cancelled."""
    plan = one_move(admin, new_vm)
    store.save_plan(plan)
    service = ScheduledTaskExecutor(vsphere_conf, store=store, run_at=soon())
    service.execute(plan, driver)
    name = task_name(plan, plan.actions[0])
    ran(admin, name)
    ScheduledTaskExecutor(vsphere_conf, store=store).follow_up(driver)
    recorded = store.get_plan(plan.id).actions[0]
    assert recorded.status is StepStatus.SUCCEEDED
    scheduled(admin)[name].RemoveScheduledTask()

    service.follow_up(driver)

    assert plan.actions[0].status is StepStatus.SUCCEEDED
    assert plan.actions[0].message == recorded.message
    assert store.get_plan(plan.id).actions[0] == recorded


@pytest.mark.parametrize(
    ("fault", "status", "told"),
    [(None, StepStatus.SUCCEEDED, "succeeded"), ("MigrationFault", StepStatus.FAILED, "MigrationFault")],
    ids=["succeeded", "failed"],
)
def test_a_step_whose_task_an_admin_removed_while_it_ran_gets_the_outcome_of_the_task_it_ran_as(
    vcsim, admin, driver, vsphere_conf, store, new_vm, fault, status, told
):
    """The scheduled task is gone, and with it its outcome; the task it started (``activeTask``,
    read while it ran) still tells how the step ended. Before, the step stayed ``running`` in the
    history store for good: no pass of a later process looked at its plan again."""
    source, target = cluster_hosts(admin, 0)[:2]
    vm = new_vm(host=source)
    vcsim.arm_fault("RelocateVM_Task", fault, delay_ms=1500, this=vm._moId)  # a slow migration
    plan = ActionPlan(strategy="test")
    plan.add(ActionKind.LIVE_MIGRATE, vm_id=vm._moId, target_host_id=target._moId)
    store.save_plan(plan)
    service = ScheduledTaskExecutor(vsphere_conf, store=store, run_at=soon())
    service.execute(plan, driver)
    name = task_name(plan, plan.actions[0])
    wait_for(lambda: scheduled(admin)[name].info.state == "running", "the migration is running")
    service.follow_up(driver)
    assert store.get_plan(plan.id).actions[0].status is StepStatus.RUNNING
    started = scheduled(admin)[name].info.activeTask
    scheduled(admin)[name].RemoveScheduledTask()  # an admin tidying the Scheduled Tasks view
    wait_for(lambda: started.info.state in ("success", "error"), "the migration ended")

    ScheduledTaskExecutor(vsphere_conf, store=store).follow_up(driver)  # the next process

    step = store.get_plan(plan.id).actions[0]
    assert step.status is status
    assert "removed in vCenter while it ran" in step.message
    assert started._moId in step.message
    assert told in step.message
