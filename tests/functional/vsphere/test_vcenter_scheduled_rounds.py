"""The ``vcenter-scheduled`` executor as ``cotenancy run`` and ``cotenancy plan`` use it: one plan per
round, each handed to the executor once, and a new process (a restarted service, the next
``cotenancy plan``) for every invocation.

A plan's tasks run in vCenter after the round that wrote them, so later rounds must read their
outcome back into the history store and write the steps that became ready; and a later plan must
not write a second task for a VM that already has one waiting (with a maintenance window hours
away, every round would otherwise add another relocation of the same VM).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from vcsim_admin import cluster_hosts, migrations_of, wait_for

from cotenancy.cli.plan import execution_summary
from cotenancy.engine.loop import ControlLoop
from cotenancy.model import ActionKind, ActionPlan, Allocation, ClusterState, Resources, StepStatus, VMState
from cotenancy.plugins.vcenter.executor import ScheduledTaskExecutor, task_name
from cotenancy.strategies.base import Strategy


class PlansInTurn(Strategy):
    """Hands out the given plans, one per round: the executor is under test, not the planner."""

    name = "plans-in-turn"

    def __init__(self, conf, plans: list[ActionPlan]) -> None:
        super().__init__(conf)
        self.plans = list(plans)
        #: the states it was asked to plan for, to check what a planner would have seen
        self.seen: list[ClusterState] = []

    def plan(self, state):
        self.seen.append(state)
        return self.plans.pop(0)


def migrate_then_allocate(vm, target, other) -> ActionPlan:
    """Move ``vm``, change ``other``'s allocation, then ``vm``'s once it has moved."""
    plan = ActionPlan(strategy=PlansInTurn.name)
    plan.add(ActionKind.LIVE_MIGRATE, vm_id=vm._moId, target_host_id=target._moId, reason="noisy neighbour")
    plan.add(ActionKind.SET_ALLOCATION, vm_id=other._moId, allocation=Allocation(shares=2000))
    plan.add(ActionKind.SET_ALLOCATION, vm_id=vm._moId, allocation=Allocation(shares=500), depends_on=(0,))
    return plan


def task_ran(admin, name: str) -> Callable[[], bool]:
    def check() -> bool:
        tasks = {t.info.name: t.info for t in admin.scheduledTaskManager.scheduledTask}
        return name in tasks and tasks[name].state in ("success", "error")

    return check


@pytest.fixture
def remove_tasks(admin) -> Iterator[None]:
    """The tasks a test wrote do not wait in vCenter for the next test."""
    yield
    for task in admin.scheduledTaskManager.scheduledTask:
        task.RemoveScheduledTask()


def one_round(conf, driver, store, plan: ActionPlan, start_delay: float) -> ControlLoop:
    """One round of a fresh loop and executor, as each ``cotenancy plan`` (or a restarted
    ``cotenancy run``) builds them; only the history store and vCenter remember earlier rounds."""
    conf.set_override("start_delay", start_delay, group="vcenter-scheduled")
    executor = ScheduledTaskExecutor(conf, store=store)
    strategy = PlansInTurn(conf, [plan])
    loop = ControlLoop(conf, driver=driver, strategy=strategy, store=store, executor=executor)
    loop.run_once()
    return loop


def test_later_rounds_read_back_earlier_tasks_and_write_their_ready_steps(
    admin, driver, vsphere_conf, store, new_vm, remove_tasks
):
    source, target = cluster_hosts(admin, 0)[:2]
    vm, other = new_vm(host=source), new_vm(host=source)
    first = migrate_then_allocate(vm, target, other)

    one_round(vsphere_conf, driver, store, first, start_delay=0.3)

    assert [a.status for a in store.get_plan(first.id).actions] == [
        StepStatus.SCHEDULED,
        StepStatus.SCHEDULED,
        StepStatus.PENDING,
    ]
    wait_for(task_ran(admin, task_name(first, first.actions[0])), "the relocation ran")
    wait_for(task_ran(admin, task_name(first, first.actions[1])), "the allocation change ran")

    # the next round has nothing new to do: it still reads the outcome back and writes step 2
    one_round(vsphere_conf, driver, store, ActionPlan(strategy=PlansInTurn.name), start_delay=0.3)

    stored = store.get_plan(first.id).actions
    assert [a.status for a in stored] == [StepStatus.SUCCEEDED, StepStatus.SUCCEEDED, StepStatus.SCHEDULED]
    wait_for(task_ran(admin, task_name(first, first.actions[2])), "the dependent step ran")

    one_round(vsphere_conf, driver, store, ActionPlan(strategy=PlansInTurn.name), start_delay=0.3)

    assert [a.status for a in store.get_plan(first.id).actions] == [StepStatus.SUCCEEDED] * 3
    assert vm.runtime.host._moId == target._moId
    assert vm.config.cpuAllocation.shares.level == "low"
    assert other.config.cpuAllocation.shares.level == "high"


def test_a_later_plan_writes_no_second_task_for_a_vm_whose_task_still_waits(
    admin, driver, vsphere_conf, store, new_vm, remove_tasks
):
    source, target, third = cluster_hosts(admin, 0)[:3]
    vm, other = new_vm(host=source), new_vm(host=source)
    first = ActionPlan(strategy=PlansInTurn.name)
    first.add(ActionKind.LIVE_MIGRATE, vm_id=vm._moId, target_host_id=target._moId)
    second = ActionPlan(strategy=PlansInTurn.name)
    second.add(ActionKind.LIVE_MIGRATE, vm_id=vm._moId, target_host_id=third._moId)
    second.add(
        ActionKind.SET_ALLOCATION,
        vm_id=other._moId,
        allocation=Allocation(reservation=Resources(cpu=100, memory=0)),
    )

    one_round(vsphere_conf, driver, store, first, start_delay=3600)
    one_round(vsphere_conf, driver, store, second, start_delay=3600)

    waiting = [t.info for t in admin.scheduledTaskManager.scheduledTask if t.info.entity._moId == vm._moId]
    assert [info.name for info in waiting] == [task_name(first, first.actions[0])]
    [moved_again, allocation] = store.get_plan(second.id).actions
    assert moved_again.status is StepStatus.SKIPPED
    assert task_name(first, first.actions[0]) in moved_again.message
    assert allocation.status is StepStatus.SCHEDULED
    assert store.get_plan(first.id).actions[0].status is StepStatus.SCHEDULED
    assert migrations_of(admin, vm) == 0


def test_plan_command_summary_tells_scheduled_steps_from_finished_ones(
    admin, driver, vsphere_conf, store, new_vm, remove_tasks
):
    source, target = cluster_hosts(admin, 0)[:2]
    vm, other = new_vm(host=source), new_vm(host=source)
    plan = migrate_then_allocate(vm, target, other)
    store.save_plan(plan)

    ScheduledTaskExecutor(vsphere_conf, store=store).execute(plan, driver)

    summary = execution_summary(plan)
    assert "0 succeeded" in summary
    assert "2 scheduled to run later" in summary
    assert "1 pending" in summary
    assert "0 failed" in summary


def test_a_vm_whose_relocation_waits_in_vcenter_is_migrating_for_later_rounds_until_it_ran(
    admin, driver, vsphere_conf, store, new_vm, remove_tasks
):
    """The next round's planner must not plan another move for a VM whose move is already written:
    it sees the VM as migrating (pinned where it runs) until the task has run or was removed."""
    source, target = cluster_hosts(admin, 0)[:2]
    vm, bystander = new_vm(host=source), new_vm(host=source)
    first = ActionPlan(strategy=PlansInTurn.name)
    first.add(ActionKind.LIVE_MIGRATE, vm_id=vm._moId, target_host_id=target._moId)
    vsphere_conf.set_override("enabled", False, group="vcenter-scheduled")  # waits for an admin
    one_round(vsphere_conf, driver, store, first, start_delay=3600)
    [task] = [t for t in admin.scheduledTaskManager.scheduledTask if t.info.entity._moId == vm._moId]

    [state] = one_round(
        vsphere_conf, driver, store, ActionPlan(strategy=PlansInTurn.name), 3600
    ).strategy.seen

    assert vm._moId in state.migrating
    assert bystander._moId not in state.migrating
    waiting = state.inventory.vms[vm._moId]
    assert waiting.state is VMState.MIGRATING
    assert waiting.host_id == source._moId
    assert task._moId in waiting.attributes["migration"]
    assert target._moId in waiting.attributes["migration"]
    task.RemoveScheduledTask()  # an admin cancels it: the VM is free again
    assert driver.get_inventory().vms[vm._moId].state is VMState.ACTIVE


def test_a_vm_whose_relocation_waits_in_vcenter_names_the_host_it_will_go_to(
    admin, driver, vsphere_conf, store, new_vm, remove_tasks
):
    """The planner holds room on that host for the VM until the task ran (docs/planner.md)."""
    source, target = cluster_hosts(admin, 0)[:2]
    vm = new_vm(host=source)
    first = ActionPlan(strategy=PlansInTurn.name)
    first.add(ActionKind.LIVE_MIGRATE, vm_id=vm._moId, target_host_id=target._moId)
    vsphere_conf.set_override("enabled", False, group="vcenter-scheduled")  # waits for an admin
    one_round(vsphere_conf, driver, store, first, start_delay=3600)

    waiting = driver.get_inventory().vms[vm._moId]

    assert (waiting.state, waiting.host_id) == (VMState.MIGRATING, source._moId)
    assert waiting.migration_target == target._moId
    assert waiting.migration_waits, "a task waiting for its window takes no migration lane yet"
    for task in admin.scheduledTaskManager.scheduledTask:
        task.RemoveScheduledTask()  # an admin cancels it: the VM goes nowhere
    assert driver.get_inventory().vms[vm._moId].migration_target is None


def test_a_later_plan_moves_no_vm_into_a_host_an_earlier_relocation_still_waits_to_fill(
    admin, driver, vsphere_conf, store, new_vm, remove_tasks
):
    """Two rounds before the window must not each send a VM to the same host: the second would land
    on a host whose room the first already counted on."""
    source, target, third = cluster_hosts(admin, 0)[:3]
    vm, other, elsewhere = new_vm(host=source), new_vm(host=third), new_vm(host=third)
    first = ActionPlan(strategy=PlansInTurn.name)
    first.add(ActionKind.LIVE_MIGRATE, vm_id=vm._moId, target_host_id=target._moId)
    second = ActionPlan(strategy=PlansInTurn.name)
    second.add(ActionKind.LIVE_MIGRATE, vm_id=other._moId, target_host_id=target._moId)
    second.add(ActionKind.LIVE_MIGRATE, vm_id=elsewhere._moId, target_host_id=source._moId)

    one_round(vsphere_conf, driver, store, first, start_delay=3600)
    one_round(vsphere_conf, driver, store, second, start_delay=3600)

    [into_target, into_source] = store.get_plan(second.id).actions
    assert into_target.status is StepStatus.SKIPPED
    assert task_name(first, first.actions[0]) in into_target.message
    assert target._moId in into_target.message
    assert into_source.status is StepStatus.SCHEDULED
    waiting = {t.info.entity._moId for t in admin.scheduledTaskManager.scheduledTask}
    assert other._moId not in waiting
    assert {vm._moId, elsewhere._moId} <= waiting


def test_a_round_with_an_earlier_plan_open_lists_vcenters_scheduled_tasks_once(
    admin, driver, vsphere_conf, store, new_vm, remove_tasks, monkeypatch
):
    """The listing is the longest read of a pass (every scheduled task, everyone's): the follow-up
    of earlier plans and the current plan's writing share one."""
    source, target = cluster_hosts(admin, 0)[:2]
    vm, other = new_vm(host=source), new_vm(host=source)
    first = ActionPlan(strategy=PlansInTurn.name)
    first.add(ActionKind.LIVE_MIGRATE, vm_id=vm._moId, target_host_id=target._moId)
    second = ActionPlan(strategy=PlansInTurn.name)
    second.add(ActionKind.SET_ALLOCATION, vm_id=other._moId, allocation=Allocation(shares=2000))
    one_round(vsphere_conf, driver, store, first, start_delay=3600)
    listings: list[int] = []
    listing = driver.scheduled_tasks
    monkeypatch.setattr(driver, "scheduled_tasks", lambda: listings.append(1) or listing())
    store.save_plan(second)

    ScheduledTaskExecutor(vsphere_conf, store=store).execute(second, driver)

    assert len(listings) == 1
    assert store.get_plan(first.id).actions[0].status is StepStatus.SCHEDULED
    assert store.get_plan(second.id).actions[0].status is StepStatus.SCHEDULED
