"""Executors carry out action plans. With drivers, they are the only code with side effects.

Every step's status is recorded (in the plan object and, when a history store is given, in the
store) before and after it runs, so a crash or a failure halfway leaves a truthful record: no step
is lost and none is run twice.
"""

from __future__ import annotations

import abc
import logging
import math
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, TypeVar

from oslo_config import cfg

from cotenancy.exceptions import ActionFailed, ConfigurationError, DriverError, NotFound
from cotenancy.model import Action, ActionKind, ActionPlan, Resources, StepStatus
from cotenancy.plugin import ConfigurablePlugin

if TYPE_CHECKING:
    from cotenancy.drivers.base import Driver
    from cotenancy.store import HistoryStore

LOG = logging.getLogger(__name__)
T = TypeVar("T")

#: what a step's message says when the cloud may still have carried it out (a timeout)
UNKNOWN_OUTCOME = "outcome is unknown"
#: what precedes the outcome the cloud told later in such a step's message
LATER = "; in the end, "
#: how long after such a step failed its outcome is looked for
LATE_OUTCOME_WINDOW = 24 * 3600.0

FINISHED = frozenset({StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.CANCELLED})


class Executor(ConfigurablePlugin, abc.ABC):
    """Carries out a plan against a driver and records each step's status."""

    def __init__(self, conf: cfg.ConfigOpts, store: HistoryStore | None = None) -> None:
        super().__init__(conf)
        self.store = store

    @abc.abstractmethod
    def execute(self, plan: ActionPlan, driver: Driver) -> ActionPlan:
        """Run the plan's steps (or hand them to another system) and return the plan with
        updated statuses."""

    def follow_up(self, driver: Driver) -> None:
        """Carry on what plans of earlier rounds left open in the cloud; the control loop calls it
        in rounds that have nothing new to execute. Executors whose steps all finish within
        :meth:`execute` have nothing to follow up."""

    def record(self, plan: ActionPlan, action: Action, status: StepStatus, message: str = "") -> None:
        """Set a step's status in the plan and in the history store."""
        action.status = status
        action.message = message
        if self.store is not None:
            self.store.update_step(plan.id, action.index, status, message)


def topological_order(actions: Iterable[Action]) -> list[Action]:
    """Steps in an order that respects ``depends_on`` (stable for independent steps).

    A dependency cycle or a dependency on a missing step is a planner bug: refuse the plan.
    """
    by_index = {a.index: a for a in actions}
    for action in by_index.values():
        missing = [d for d in action.depends_on if d not in by_index]
        if missing:
            raise ValueError(f"step {action.index} depends on missing steps {missing}")
    ordered: list[Action] = []
    state: dict[int, int] = {}

    def visit(index: int, path: tuple[int, ...]) -> None:
        if state.get(index) == 2:
            return
        if state.get(index) == 1:
            raise ValueError(f"dependency cycle through steps {path + (index,)}")
        state[index] = 1
        for dep in sorted(by_index[index].depends_on):
            visit(dep, path + (index,))
        state[index] = 2
        ordered.append(by_index[index])

    for index in sorted(by_index):
        visit(index, ())
    return ordered


class StepwiseExecutor(Executor):
    """Runs steps one at a time in dependency order, following the failure policy.

    Failure policy (``[DEFAULT] on_step_failure``): ``skip_dependents`` skips only the steps that
    depend (transitively) on a failed one; ``abort`` cancels everything after the first failure;
    ``continue`` runs every step. A step already finished (from an earlier, interrupted run) is not
    run again.
    """

    @abc.abstractmethod
    def run_step(self, plan: ActionPlan, action: Action, driver: Driver, timeout: float) -> None:
        """Carry out one step; raise a :class:`DriverError` subclass when it fails."""

    def follow_up(self, driver: Driver) -> None:
        self.tell_late_outcomes(driver)

    def tell_late_outcomes(self, driver: Driver) -> None:
        """Add what the cloud did in the end to the record of each recent step that failed with
        its outcome unknown (a task that outlived its timeout), once the driver can tell.

        The step stays failed: it did not end in time, and its dependents went by that. Its
        message gets "in the end, ..." (:data:`LATER`), so ``cotenancy plan`` and the API say
        whether the VM moved after all, also when the process that timed out has ended. A driver
        that cannot look an operation up later (it keeps the base :meth:`Driver.outcome_later`)
        costs the round no query."""
        from cotenancy.drivers.base import Driver

        if self.store is None or getattr(type(driver), "outcome_later", None) is Driver.outcome_later:
            return
        since = time.time() - LATE_OUTCOME_WINDOW
        for plan_id, index, message in self.store.failed_steps_since(since, UNKNOWN_OUTCOME, LATER):
            told = driver.outcome_later(message)
            if told is not None:
                LOG.info("plan %s step %s, whose outcome was unknown: %s", plan_id, index, told)
                self.store.update_step(plan_id, index, StepStatus.FAILED, f"{message}{LATER}{told}")

    def execute(self, plan: ActionPlan, driver: Driver) -> ActionPlan:
        policy = self.conf.on_step_failure
        timeout = self.conf.step_timeout
        failed: set[int] = set()
        aborted = False
        stopping: ConfigurationError | None = None
        for action in topological_order(plan.actions):
            if action.status in FINISHED:
                if action.status is not StepStatus.SUCCEEDED:
                    failed.add(action.index)
                continue
            if aborted:
                self.record(plan, action, StepStatus.CANCELLED, "plan aborted after a failed step")
                continue
            blocked = [d for d in action.depends_on if d in failed]
            if blocked and policy != "continue":
                failed.add(action.index)
                self.record(plan, action, StepStatus.SKIPPED, f"depends on failed steps {blocked}")
                continue
            self.record(plan, action, StepStatus.RUNNING)
            try:
                self.run_step(plan, action, driver, timeout)
            except DriverError as exc:
                failed.add(action.index)
                kind = "not found" if isinstance(exc, NotFound) else type(exc).__name__
                LOG.warning("step %s (%s %s) failed: %s", action.index, action.kind, action.vm_id, exc)
                self.record(plan, action, StepStatus.FAILED, f"{kind}: {exc}")
                aborted = policy == "abort"
                continue
            except ConfigurationError as exc:
                # credentials rejected or a certificate untrusted (AuthenticationFailed): every step
                # after it would be refused alike; once the plan is on record, it stops the caller
                failed.add(action.index)
                self.record(plan, action, StepStatus.FAILED, f"{type(exc).__name__}: {exc}")
                stopping, aborted = exc, True
                continue
            except Exception as exc:
                # a fault in a driver or executor, not a refusal by the cloud: what the step did is
                # unknown, so it is recorded as failed and nothing after it runs, whatever the policy
                failed.add(action.index)
                LOG.exception(
                    "step %s (%s %s) raised an unexpected error", action.index, action.kind, action.vm_id
                )
                self.record(
                    plan,
                    action,
                    StepStatus.FAILED,
                    f"unexpected error, plan aborted: {type(exc).__name__}: {exc}",
                )
                aborted = True
                continue
            except BaseException:
                # Ctrl-C or a stopped service: the cloud may carry the step on, and no process is
                # left to say so; the steps not started stay pending
                self.record(
                    plan, action, StepStatus.FAILED, "interrupted while it ran: its outcome is unknown"
                )
                raise
            self.record(plan, action, StepStatus.SUCCEEDED)
        if stopping is not None:
            raise stopping
        # after the plan is on record: a cloud that refuses to answer leaves no step pending
        self.tell_late_outcomes(driver)
        return plan


class DriverExecutor(StepwiseExecutor):
    """Runs each step through the driver's native API. A VM that vanished between planning and
    acting fails its step with the driver's ``NotFound`` message."""

    name = "driver"

    def run_step(self, plan: ActionPlan, action: Action, driver: Driver, timeout: float) -> None:
        apply_action(driver, action, timeout)


def check_action(action: Action) -> None:
    """Refuse a step no executor should carry out: a field its kind needs is missing, or an amount
    is negative, NaN or (but for a limit, where it means none) infinite.

    Every executor calls this before touching the cloud, whichever way it carries the step out."""
    if action.kind is ActionKind.LIVE_MIGRATE:
        required(action.vm_id, action)
        required(action.target_host_id, action)
    elif action.kind is ActionKind.RESIZE:
        required(action.vm_id, action)
        _require_amounts(action, "size", required(action.size, action), allow_infinite=False)
    elif action.kind is ActionKind.SET_ALLOCATION:
        required(action.vm_id, action)
        allocation = required(action.allocation, action)
        _require_amounts(action, "reservation", allocation.reservation, allow_infinite=False)
        if allocation.limit is not None:
            _require_amounts(action, "limit", allocation.limit, allow_infinite=True)
    elif action.kind is ActionKind.SET_MAINTENANCE:
        required(action.host_id, action)
        required(action.maintenance, action)
    else:  # pragma: no cover - the enum is closed
        raise ValueError(f"unknown action kind {action.kind}")


def apply_action(driver: Driver, action: Action, timeout: float | None) -> None:
    """Call the driver verb for one step."""
    check_action(action)
    if action.kind is ActionKind.LIVE_MIGRATE:
        driver.live_migrate(action.vm_id, action.target_host_id, timeout)
    elif action.kind is ActionKind.RESIZE:
        driver.resize(action.vm_id, action.size, timeout)
    elif action.kind is ActionKind.SET_ALLOCATION:
        driver.set_allocation(action.vm_id, action.allocation, timeout)
    else:
        driver.set_host_maintenance(action.host_id, bool(action.maintenance), timeout)


def required(value: T | None, action: Action) -> T:
    """``value``, or :class:`ActionFailed` when the step lacks it (executors use it to read the
    fields :func:`check_action` has already required)."""
    if value is None:
        raise ActionFailed(f"step {action.index} ({action.kind}) is missing a field it needs")
    return value


def _require_amounts(action: Action, what: str, amounts: Resources, allow_infinite: bool) -> None:
    """No driver is handed a negative or NaN amount (nor an infinite one but for a limit, where it
    means none): each would turn it into a different nonsense, or a crash halfway."""
    for name, value in amounts.as_dict().items():
        if math.isnan(value) or value < 0 or (math.isinf(value) and not allow_infinite):
            raise ActionFailed(f"step {action.index} ({action.kind}) asks for a {what} with {name} {value!r}")
