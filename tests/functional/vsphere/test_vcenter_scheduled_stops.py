"""What the ``vcenter-scheduled`` executor leaves on record when vCenter stops answering mid-plan.

A plan's steps are in the history store before it is handed to the executor; whatever ends the call
early, no step may stay ``pending`` (or ``running``) there with nothing left to carry it on: the
next ``cotenancy plan`` and the API would show it waiting forever. A rejected login (a password
changed while ``cotenancy run`` runs) stops the loop, as with the ``driver`` executor: the step that
met it fails, the steps not written are cancelled, the tasks already in vCenter are read back later.
"""

from __future__ import annotations

import datetime as dt

import pytest
from vcsim_admin import cluster_hosts

from cotenancy.drivers.vsphere.driver import VSphereDriver
from cotenancy.exceptions import AuthenticationFailed, DriverError
from cotenancy.model import ActionKind, ActionPlan, Allocation, StepStatus
from cotenancy.plugins.vcenter.executor import ScheduledTaskExecutor, task_name


def later() -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)


def scheduled_names(admin) -> set[str]:
    return {t.info.name for t in admin.scheduledTaskManager.scheduledTask}


@pytest.fixture
def three_steps(admin, new_vm) -> ActionPlan:
    """A relocation, an allocation change of another VM, and one of the moved VM after its move."""
    source, target = cluster_hosts(admin, 0)[:2]
    moved, other = new_vm(host=source), new_vm(host=source)
    plan = ActionPlan(strategy="test")
    plan.add(ActionKind.LIVE_MIGRATE, vm_id=moved._moId, target_host_id=target._moId)
    plan.add(ActionKind.SET_ALLOCATION, vm_id=other._moId, allocation=Allocation(shares=2000))
    plan.add(ActionKind.SET_ALLOCATION, vm_id=moved._moId, allocation=Allocation(shares=500), depends_on=(0,))
    return plan


def password_changed(vcsim, method: str) -> None:
    """vCenter forgets the driver's session at its next ``method`` call and refuses the login
    that follows, as after the password was changed."""
    vcsim.arm_fault(method, "NotAuthenticated")
    vcsim.arm_fault("Login", "InvalidLogin")


def test_a_login_rejected_while_writing_fails_that_step_cancels_the_unwritten_ones_and_stops(
    vcsim, admin, driver, vsphere_conf, store, three_steps
):
    plan = three_steps
    store.save_plan(plan)
    executor = ScheduledTaskExecutor(vsphere_conf, store=store, run_at=later())
    driver.scheduled_tasks()  # logged in
    password_changed(vcsim, "CreateScheduledTask")

    with pytest.raises(AuthenticationFailed):
        executor.execute(plan, driver)

    stored = store.get_plan(plan.id).actions
    assert [a.status for a in stored] == [StepStatus.FAILED, StepStatus.CANCELLED, StepStatus.CANCELLED]
    assert stored[0].message.startswith("AuthenticationFailed: ")
    assert "AuthenticationFailed" in stored[1].message
    assert [a.status for a in plan.actions] == [a.status for a in stored]
    assert not {task_name(plan, a) for a in plan.actions} & scheduled_names(admin)


def test_a_login_rejected_before_anything_was_written_cancels_every_step_and_stops(
    vcsim, admin, driver, vsphere_conf, store, three_steps
):
    plan = three_steps
    store.save_plan(plan)
    executor = ScheduledTaskExecutor(vsphere_conf, store=store, run_at=later())
    driver.scheduled_tasks()
    password_changed(vcsim, "RetrievePropertiesEx")

    with pytest.raises(AuthenticationFailed):
        executor.execute(plan, driver)

    stored = store.get_plan(plan.id).actions
    assert [a.status for a in stored] == [StepStatus.CANCELLED] * 3
    assert all("not scheduled" in a.message and "AuthenticationFailed" in a.message for a in stored)


def test_steps_already_in_vcenter_stay_scheduled_when_a_later_pass_meets_a_rejected_login(
    vcsim, admin, driver, vsphere_conf, store, three_steps
):
    """Their tasks run in vCenter whatever this process meets; the next pass reads them back, and
    writes the step that waits for one of them."""
    plan = three_steps
    store.save_plan(plan)
    ScheduledTaskExecutor(vsphere_conf, store=store, run_at=later()).execute(plan, driver)
    password_changed(vcsim, "RetrievePropertiesEx")

    with pytest.raises(AuthenticationFailed):
        ScheduledTaskExecutor(vsphere_conf, store=store).follow_up(driver)

    stored = store.get_plan(plan.id).actions
    assert [a.status for a in stored] == [StepStatus.SCHEDULED, StepStatus.SCHEDULED, StepStatus.PENDING]
    assert {task_name(plan, a) for a in plan.actions[:2]} <= scheduled_names(admin)
    restarted = VSphereDriver(vsphere_conf)  # with the password corrected
    try:
        ScheduledTaskExecutor(vsphere_conf, store=store).cancel(store.get_plan(plan.id), restarted)
    finally:
        restarted.close()


def test_vcenter_unreachable_while_listing_cancels_the_steps_it_could_not_write(
    vcsim, admin, driver, vsphere_conf, store, three_steps
):
    plan = three_steps
    store.save_plan(plan)
    executor = ScheduledTaskExecutor(vsphere_conf, store=store, run_at=later())
    vcsim.arm_fault("RetrievePropertiesEx", "HostCommunication")

    with pytest.raises(DriverError):
        executor.execute(plan, driver)

    stored = store.get_plan(plan.id).actions
    assert [a.status for a in stored] == [StepStatus.CANCELLED] * 3
    assert all("HostCommunication" in a.message for a in stored)
    assert not {task_name(plan, a) for a in plan.actions} & scheduled_names(admin)
