"""The driver executor runs steps in dependency order and follows the failure policy."""

from __future__ import annotations

import math

import pytest

from cotenancy.drivers.base import Driver
from cotenancy.engine.executor import DriverExecutor, topological_order
from cotenancy.exceptions import ActionFailed, AuthenticationFailed, NotFound, TimedOut
from cotenancy.model import ActionKind, ActionPlan, Allocation, Inventory, Resources, StepStatus


class ScriptedDriver(Driver):
    """A driver double: records calls and fails the VMs it is told to."""

    name = "scripted"

    def __init__(self, conf, failures: dict[str, Exception] | None = None) -> None:
        super().__init__(conf)
        self.calls: list[tuple[str, str]] = []
        self.failures = failures or {}

    def _do(self, verb: str, vm_id: str) -> None:
        self.calls.append((verb, vm_id))
        if vm_id in self.failures:
            raise self.failures[vm_id]

    def get_inventory(self) -> Inventory:
        return Inventory()

    def get_metrics(self, start, end, vm_ids=None):
        return []

    def get_events(self, start, end):
        return []

    def live_migrate(self, vm_id, target_host_id, timeout=None):
        self._do("migrate", vm_id)

    def resize(self, vm_id, size, timeout=None):
        self._do("resize", vm_id)

    def set_host_maintenance(self, host_id, enabled, timeout=None):
        self._do("maintenance", host_id)


class AllocatingDriver(ScriptedDriver):
    def set_allocation(self, vm_id, allocation, timeout=None):
        self._do("allocate", vm_id)


def chain_plan() -> ActionPlan:
    """a -> b (b depends on a), c independent, d depends on b."""
    plan = ActionPlan(strategy="test")
    plan.add(ActionKind.LIVE_MIGRATE, vm_id="a", target_host_id="h2")
    plan.add(ActionKind.LIVE_MIGRATE, vm_id="b", target_host_id="h1", depends_on=(0,))
    plan.add(ActionKind.RESIZE, vm_id="c", size=Resources(cpu=1000, memory=512))
    plan.add(ActionKind.RESIZE, vm_id="d", size=Resources(cpu=1000, memory=512), depends_on=(1,))
    return plan


def test_steps_run_after_their_dependencies():
    plan = ActionPlan(strategy="test")
    plan.add(ActionKind.LIVE_MIGRATE, vm_id="second", target_host_id="h1", depends_on=(1,))
    plan.add(ActionKind.LIVE_MIGRATE, vm_id="first", target_host_id="h2")
    assert [a.vm_id for a in topological_order(plan.actions)] == ["first", "second"]


def test_dependency_cycle_is_refused():
    plan = ActionPlan(strategy="test")
    plan.add(ActionKind.LIVE_MIGRATE, vm_id="a", target_host_id="h1", depends_on=(1,))
    plan.add(ActionKind.LIVE_MIGRATE, vm_id="b", target_host_id="h2", depends_on=(0,))
    with pytest.raises(ValueError, match="cycle"):
        topological_order(plan.actions)


def test_all_steps_succeed_in_order(conf):
    driver = ScriptedDriver(conf)
    plan = DriverExecutor(conf).execute(chain_plan(), driver)
    assert [a.status for a in plan.actions] == [StepStatus.SUCCEEDED] * 4
    assert driver.calls == [("migrate", "a"), ("migrate", "b"), ("resize", "c"), ("resize", "d")]


def test_failure_skips_only_dependents_by_default(conf):
    driver = ScriptedDriver(conf, failures={"a": ActionFailed("migration refused")})
    plan = DriverExecutor(conf).execute(chain_plan(), driver)
    statuses = {a.vm_id: a.status for a in plan.actions}
    assert statuses == {
        "a": StepStatus.FAILED,
        "b": StepStatus.SKIPPED,
        "c": StepStatus.SUCCEEDED,
        "d": StepStatus.SKIPPED,
    }
    assert "migration refused" in plan.actions[0].message
    assert ("migrate", "b") not in driver.calls


def test_abort_policy_cancels_the_rest(conf):
    conf.set_override("on_step_failure", "abort")
    driver = ScriptedDriver(conf, failures={"a": TimedOut("task did not finish in 600 s")})
    plan = DriverExecutor(conf).execute(chain_plan(), driver)
    assert plan.actions[0].status is StepStatus.FAILED
    assert {a.status for a in plan.actions[1:]} == {StepStatus.CANCELLED}
    assert driver.calls == [("migrate", "a")]


def test_an_unexpected_error_fails_its_step_and_cancels_the_rest_whatever_the_policy(conf):
    driver = ScriptedDriver(conf, failures={"a": OverflowError("cannot convert float infinity to integer")})
    plan = DriverExecutor(conf).execute(chain_plan(), driver)
    assert plan.actions[0].status is StepStatus.FAILED
    assert plan.actions[0].message.startswith("unexpected error, plan aborted: OverflowError")
    assert {a.status for a in plan.actions[1:]} == {StepStatus.CANCELLED}
    assert driver.calls == [("migrate", "a")]


@pytest.mark.parametrize("policy", ["skip_dependents", "continue"])
def test_rejected_credentials_fail_the_step_cancel_the_rest_and_stop_the_caller(conf, policy):
    """A password changed while a plan runs: every later step would be refused alike, so the plan
    is put on record and the error reaches the loop, which stops on it."""
    conf.set_override("on_step_failure", policy)
    rejected = AuthenticationFailed("[vsphere] vCenter vc.example:443 rejected the login of 'ops'")
    driver = ScriptedDriver(conf, failures={"a": rejected})
    plan = chain_plan()
    with pytest.raises(AuthenticationFailed):
        DriverExecutor(conf).execute(plan, driver)
    assert plan.actions[0].status is StepStatus.FAILED
    assert plan.actions[0].message == f"AuthenticationFailed: {rejected}"
    assert {a.status for a in plan.actions[1:]} == {StepStatus.CANCELLED}
    assert driver.calls == [("migrate", "a")]


def test_vanished_vm_fails_its_step_with_not_found(conf):
    driver = ScriptedDriver(conf, failures={"c": NotFound("VM c does not exist")})
    plan = DriverExecutor(conf).execute(chain_plan(), driver)
    assert plan.actions[2].status is StepStatus.FAILED
    assert plan.actions[2].message.startswith("not found")


def test_finished_steps_are_not_run_twice(conf):
    driver = ScriptedDriver(conf)
    plan = chain_plan()
    plan.actions[0].status = StepStatus.SUCCEEDED
    DriverExecutor(conf).execute(plan, driver)
    assert ("migrate", "a") not in driver.calls
    assert len(driver.calls) == 3


def test_set_allocation_is_unsupported_unless_the_driver_says_so(conf):
    from cotenancy.exceptions import Unsupported

    with pytest.raises(Unsupported):
        ScriptedDriver(conf).set_allocation("a", Allocation(shares=2000))


@pytest.mark.parametrize(
    "step",
    [
        {"kind": ActionKind.RESIZE, "size": Resources(cpu=1000, memory=-2048)},
        {"kind": ActionKind.RESIZE, "size": Resources(cpu=math.nan, memory=512)},
        {"kind": ActionKind.RESIZE, "size": Resources(cpu=math.inf, memory=512)},
        {"kind": ActionKind.SET_ALLOCATION, "allocation": Allocation(reservation=Resources(cpu=-1))},
        {"kind": ActionKind.SET_ALLOCATION, "allocation": Allocation(limit=Resources(cpu=math.nan))},
    ],
)
def test_a_step_asking_for_a_negative_or_unknown_amount_fails_before_reaching_the_driver(conf, step):
    plan = ActionPlan(strategy="test")
    plan.add(vm_id="a", **step)
    DriverExecutor(conf).execute(plan, driver := AllocatingDriver(conf))
    assert plan.actions[0].status is StepStatus.FAILED
    assert plan.actions[0].message.startswith("ActionFailed: step 0")
    assert driver.calls == []


def test_an_unlimited_cpu_limit_reaches_the_driver(conf):
    plan = ActionPlan(strategy="test")
    limit = Resources(cpu=math.inf, memory=4096)
    plan.add(
        ActionKind.SET_ALLOCATION,
        vm_id="a",
        allocation=Allocation(reservation=Resources(cpu=1000), limit=limit),
    )
    DriverExecutor(conf).execute(plan, driver := AllocatingDriver(conf))
    assert plan.actions[0].status is StepStatus.SUCCEEDED
    assert driver.calls == [("allocate", "a")]
