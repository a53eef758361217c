"""Plans as vCenter scheduled tasks, so that vSphere admins see, approve or cancel them in vCenter.

Each step becomes one ``ScheduledTask`` with a ``MethodAction`` (``RelocateVM_Task``,
``ReconfigVM_Task``, ``EnterMaintenanceMode_Task``/``ExitMaintenanceMode_Task``) that runs once at
the next maintenance window. vCenter knows nothing of step dependencies, so a step is scheduled
only once the steps it depends on have finished as the failure policy requires: every
:meth:`ScheduledTaskExecutor.execute` reads the outcome of the tasks already written, then schedules
the steps that became ready. Task names carry the plan id and step index, so a step is never
written twice, even after a crash.

The control loop hands each round's plan to :meth:`ScheduledTaskExecutor.execute` once, and every
``cotenancy plan`` is a new process; so each call (and :meth:`ScheduledTaskExecutor.follow_up` in
rounds without steps) first follows up the plans that earlier rounds, or earlier processes through
the history store, left open in vCenter, and a newer plan writes no task for a VM or host that an
open earlier plan still has a step for, nor a relocation into a host an earlier relocation is still
to fill. (The driver's inventory shows a VM whose relocation waits as migrating, so planners leave
it alone; the room it will take on its target host only this executor knows to keep.)

Admins approve by leaving a task enabled (or enabling it), and cancel by removing it: a removed
task reads back as ``cancelled``. Withdrawing tasks ourselves (``cancel``, or ``abort`` after a
failure) always reads their outcome first, so a step that already ran is never called cancelled.

A task that ran stays in vCenter for ``finished_task_retention`` hours once its outcome is in the
history store; then a follow-up pass removes it, at most ``max_removals_per_pass`` of them. Every
pass (once, whatever it follows up and writes), and every inventory of the driver, lists all
scheduled tasks: kept forever, cotenancy's old tasks would make each read longer.

Whatever stops a call early (a rejected login, vCenter unreachable, a bug), no step is left pending
with nothing to carry it on: see :meth:`ScheduledTaskExecutor.execute`.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from typing import TYPE_CHECKING, Any

from oslo_config import cfg
from pyVmomi import vim

from cotenancy.drivers.vsphere import convert
from cotenancy.drivers.vsphere.driver import VSphereDriver, faults
from cotenancy.engine.executor import FINISHED, Executor, check_action, required, topological_order
from cotenancy.exceptions import ConfigurationError, DriverError, NotFound, Unsupported
from cotenancy.model import Action, ActionKind, ActionPlan, StepStatus
from cotenancy.text import escape_controls

if TYPE_CHECKING:
    from cotenancy.drivers.base import Driver
    from cotenancy.store import HistoryStore

LOG = logging.getLogger(__name__)

NAME_PREFIX = "cotenancy"
#: the plan id in a task name written by :func:`task_name`
_PLAN_IN_NAME = re.compile(rf"^{NAME_PREFIX} (\S+) step \d+:")
#: the outcome a finished task's ``info.state`` stands for
_RAN = {"success": StepStatus.SUCCEEDED, "error": StepStatus.FAILED}
#: the vCenter task a running step's scheduled task started, as its message names it
_RAN_AS = re.compile(r"running as vCenter task (\S+)")

OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        "window_start",
        default="",
        help="Start of the daily maintenance window as HH:MM (UTC); steps are scheduled at its "
        "next occurrence by vCenter's clock. Empty: start_delay seconds from now.",
    ),
    cfg.FloatOpt(
        "start_delay",
        default=60.0,
        min=0.0,
        help="Seconds from now (vCenter's clock) to schedule steps at when no window_start is set.",
    ),
    cfg.BoolOpt(
        "enabled",
        default=True,
        help="Create the tasks enabled. Off: they wait until an admin enables them in vCenter.",
    ),
    cfg.BoolOpt(
        "wait",
        default=False,
        help="Keep polling until every step finished (or wait_timeout passed) instead of "
        "returning once the ready steps are scheduled.",
    ),
    cfg.FloatOpt(
        "wait_timeout",
        default=3600.0,
        min=0.0,
        help="Seconds execute() waits for the scheduled steps when wait is on.",
    ),
    cfg.FloatOpt("poll_interval", default=1.0, min=0.01, help="Seconds between outcome polls."),
    cfg.FloatOpt(
        "finished_task_retention",
        default=24.0,
        min=0.0,
        help="Hours (by vCenter's clock, since it ran) a task of this executor stays in vCenter "
        "after it ran and its outcome is in the history store, so admins still see recent outcomes "
        "in the vSphere Client; then a follow-up pass removes it. 0: the pass that records the "
        "outcome removes it. Without a history store nothing is removed. Tasks of others, and "
        "tasks whose outcome is not recorded, are never removed.",
    ),
    cfg.IntOpt(
        "max_removals_per_pass",
        default=100,
        min=1,
        help="Most finished tasks one follow-up pass removes from vCenter (one call each), oldest "
        "first; the rest wait for later passes. Keeps a pass short when thousands are due at once, "
        "as in the first pass after an upgrade or after retention was lowered.",
    ),
]

_STATE_TO_STATUS = {
    "queued": StepStatus.SCHEDULED,
    "running": StepStatus.RUNNING,
    "success": StepStatus.SUCCEEDED,
    "error": StepStatus.FAILED,
}


def task_name(plan: ActionPlan, action: Action) -> str:
    """Unique per plan step; admins read it in the vSphere Client's scheduled-task list."""
    target = action.vm_id or action.host_id or ""
    return f"{NAME_PREFIX} {plan.id} step {action.index}: {action.kind} {target}".strip()


def next_window(now: dt.datetime, window_start: str) -> dt.datetime:
    """The next occurrence (UTC) of a daily ``HH:MM`` window start, strictly after ``now``."""
    try:
        hour, minute = (int(part) for part in window_start.split(":"))
        start = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    except ValueError as exc:
        raise ConfigurationError(
            f"[vcenter-scheduled] window_start must be HH:MM, got {window_start!r}"
        ) from exc
    return start if start > now else start + dt.timedelta(days=1)


class ScheduledTaskExecutor(Executor):
    """Writes plan steps as vCenter scheduled tasks and reads their outcome back."""

    name = "vcenter-scheduled"

    @classmethod
    def list_opts(cls) -> list[cfg.Opt]:
        return list(OPTS)

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        store: HistoryStore | None = None,
        run_at: dt.datetime | None = None,
    ) -> None:
        super().__init__(conf, store)
        self.run_at = run_at
        #: plans this executor wrote tasks for that still have steps open, by id
        self._open: dict[str, ActionPlan] = {}

    @property
    def options(self) -> Any:
        return getattr(self.conf, self.name)

    def when(self, driver: VSphereDriver) -> dt.datetime:
        """When newly ready steps run, by vCenter's clock: vCenter runs them by its own, so this
        host's clock, if off, would put them in vCenter's past or hours late."""
        if self.run_at is not None:
            return self.run_at
        now = dt.datetime.fromtimestamp(driver.now(), dt.UTC)
        if self.options.window_start:
            return next_window(now, self.options.window_start)
        return now + dt.timedelta(seconds=self.options.start_delay)

    # -- Executor ------------------------------------------------------------------------------

    def execute(self, plan: ActionPlan, driver: Driver) -> ActionPlan:
        """Follow up the earlier plans, then write the plan's ready steps (and with ``wait`` on,
        keep doing so until it finished), all from one listing of vCenter's tasks per pass.

        Whatever ends the call early, no step is left pending with nothing to carry it on: the
        step being written fails (:meth:`sync`), the steps not written are cancelled, and the
        error is raised, so rejected credentials (:class:`AuthenticationFailed`) stop the loop.
        Steps already in vCenter run there and are read back by a later pass."""
        vsphere = self._vsphere(driver)
        try:
            self._pass(plan, vsphere)
            if self.options.wait:
                deadline = time.monotonic() + self.options.wait_timeout
                while not all(a.status in FINISHED for a in plan.actions) and time.monotonic() < deadline:
                    time.sleep(self.options.poll_interval)
                    self._pass(plan, vsphere)
        except Exception as exc:
            self._abandon(plan, exc)
            raise
        return plan

    def _pass(self, plan: ActionPlan, driver: VSphereDriver) -> None:
        scheduled, held = self._follow_up(driver, exclude=plan.id)
        self.sync(plan, driver, held=held, scheduled=scheduled)
        self._keep_if_open(plan)

    def _abandon(self, plan: ActionPlan, exc: Exception) -> None:
        """Cancel the steps of a plan that were not written to vCenter when ``exc`` stopped the
        call: no later pass would write them, nor read them back."""
        why = f"not scheduled: the plan stopped at {type(exc).__name__}: {exc}"
        for action in plan.actions:
            if action.status is StepStatus.PENDING:
                self.record(plan, action, StepStatus.CANCELLED, why)
        self._keep_if_open(plan)

    def follow_up(self, driver: Driver) -> None:
        """Read back the outcome of earlier plans' tasks, write their steps that became ready, and
        remove the tasks that ran and whose retention passed (:meth:`_remove_finished`)."""
        self._follow_up(self._vsphere(driver))

    def _follow_up(
        self, driver: VSphereDriver, exclude: str | None = None
    ) -> tuple[list[tuple[Any, Any]], dict[str, str]]:
        """Sync every open earlier plan; return vCenter's listing of scheduled tasks and what
        their unfinished steps hold (:func:`_holds`), each with the name of the task that holds it.

        One listing serves the whole pass and the plan ``exclude`` that the caller syncs next: each
        plan's sync only writes and removes tasks of its own plan, and this pass removes none of
        ``exclude``'s."""
        held: dict[str, str] = {}
        scheduled = self._scheduled(driver)
        for plan in self._open_plans(scheduled, exclude):
            try:
                self.sync(plan, driver, scheduled=scheduled)
            except Exception as exc:
                self._abandon(plan, exc)
                raise
            self._keep_if_open(plan)
            for action in plan.actions:
                if action.status not in FINISHED:
                    for what in _holds(action):
                        held.setdefault(what, task_name(plan, action))
        # after the syncs, so that the outcomes read in this pass are in the store
        self._remove_finished(driver, scheduled, exclude)
        return scheduled, held

    def _remove_finished(
        self, driver: VSphereDriver, scheduled: list[tuple[Any, Any]], exclude: str | None
    ) -> None:
        """Remove this executor's tasks that ran at least ``finished_task_retention`` hours ago
        (vCenter's clock) and whose outcome the history store holds, as vCenter reports it.

        Only a task named after a stored plan's step is ours. The plan ``exclude`` (the one
        :meth:`execute` reads back next) keeps its tasks until a later pass. At most
        ``max_removals_per_pass`` go, those that ran first; the rest wait for later passes, so that
        thousands due at once (the first pass after an upgrade) do not hold up one round. A removal
        vCenter refuses is logged and tried again by the next pass: the task stays, and the
        outcome is recorded already.
        """
        if self.store is None:
            return
        ran = [
            (task, info, match.group(1))
            for task, info in scheduled
            if str(info.state) in _RAN
            and (match := _PLAN_IN_NAME.match(info.name)) is not None
            and match.group(1) != exclude
        ]
        retention = self.options.finished_task_retention * 3600.0
        if ran and retention > 0:
            try:
                now = driver.now()
            except DriverError as exc:
                LOG.warning("finished scheduled tasks are not removed in this pass: %s", exc)
                return
            ran = [(t, i, p) for t, i, p in ran if (at := _ran_at(i)) is not None and at + retention <= now]
        if not ran:
            return
        recorded = {
            task_name(plan, action): action.status
            for plan in self.store.plans_with_steps(set(_RAN.values()), plan_ids={p for _t, _i, p in ran})
            for action in plan.actions
        }
        due = sorted(
            ((task, info) for task, info, _p in ran if recorded.get(info.name) is _RAN[str(info.state)]),
            key=lambda pair: _ran_at(pair[1]) or 0.0,
        )
        limit = self.options.max_removals_per_pass
        if len(due) > limit:
            LOG.info(
                "%d finished scheduled tasks of cotenancy are due for removal; this pass removes the "
                "%d oldest ([vcenter-scheduled] max_removals_per_pass), later passes the rest",
                len(due),
                limit,
            )
        refused: list[str] = []
        for task, _info in due[:limit]:
            try:
                with faults(f"removing finished scheduled task {task._moId}"):
                    task.RemoveScheduledTask()
            except NotFound:
                LOG.debug("finished scheduled task %s was removed already", task._moId)
            except DriverError as exc:
                refused.append(f"{task._moId} ({exc})")
        if refused:
            LOG.warning(
                "%d finished scheduled task(s) of cotenancy, their outcome recorded, could not be "
                "removed from vCenter; the next pass tries again: %s",
                len(refused),
                "; ".join(refused[:5]) + (" ..." if len(refused) > 5 else ""),
            )

    def _open_plans(self, scheduled: list[tuple[Any, Any]], exclude: str | None) -> list[ActionPlan]:
        """The plans still open: those this executor wrote tasks for, and with a history store the
        stored ones with a step scheduled or running (a running step's task may be gone from
        vCenter: :func:`_late_outcome`), or with tasks in vCenter (``scheduled``) and steps not yet
        finished."""
        plans = dict(self._open)
        if self.store is not None:
            in_vcenter = {m.group(1) for _task, info in scheduled if (m := _PLAN_IN_NAME.match(info.name))}
            stored = self.store.plans_with_steps(
                [StepStatus.SCHEDULED, StepStatus.RUNNING]
            ) + self.store.plans_with_steps([StepStatus.PENDING], plan_ids=in_vcenter)
            for plan in stored:
                plans.setdefault(plan.id, plan)
        plans.pop(exclude or "", None)
        return sorted(plans.values(), key=lambda p: (p.created_at, p.id))

    def _keep_if_open(self, plan: ActionPlan) -> None:
        if all(a.status in FINISHED for a in plan.actions):
            self._open.pop(plan.id, None)
        else:
            self._open[plan.id] = plan

    def sync(
        self,
        plan: ActionPlan,
        driver: VSphereDriver,
        held: dict[str, str] | None = None,
        scheduled: list[tuple[Any, Any]] | None = None,
    ) -> ActionPlan:
        """One pass: read the outcome of written steps, then write the steps that became ready.

        ``scheduled`` is vCenter's listing of scheduled tasks when the caller has just read it
        (:meth:`_scheduled`); otherwise it is read once here, for both.

        A step that needs something in ``held`` (a task of an earlier plan still waits for it) is
        skipped: two tasks for one VM would run one after the other, on a stale plan, and two
        relocations into one host, each planned without the other, could fill it twice.

        The failure policy (``[DEFAULT] on_step_failure``) applies as far as tasks that vCenter runs
        on its own allow: ``skip_dependents`` skips the steps that depend on a failed one;
        ``continue`` writes them once their dependencies finished, whatever the outcome; ``abort``
        writes nothing more after a failure and withdraws the tasks that have not run yet (a task
        already running cannot be stopped: its outcome is read back as usual).
        """
        scheduled = self._scheduled(driver) if scheduled is None else scheduled
        self._read_back(plan, driver, {info.name: info for _task, info in scheduled})
        policy = self.conf.on_step_failure
        failed = _first_failure(plan)
        if policy == "abort" and failed is not None:
            return self._withdraw(plan, driver, f"plan aborted after step {failed} failed")
        existing = {info.name: task for task, info in scheduled}
        status = {a.index: a.status for a in plan.actions}
        run_at = None
        for action in topological_order(plan.actions):
            if action.status is not StepStatus.PENDING:
                continue
            deps = [status[d] for d in action.depends_on]
            broken = [d for d in action.depends_on if status[d] in FINISHED - {StepStatus.SUCCEEDED}]
            if broken and policy != "continue":
                self.record(
                    plan, action, StepStatus.SKIPPED, f"depends on steps {broken} that did not succeed"
                )
                status[action.index] = action.status
                continue
            if any(s not in FINISHED for s in deps):
                continue
            name = task_name(plan, action)
            if name in existing:
                self.record(plan, action, StepStatus.SCHEDULED, f"vCenter task {existing[name]._moId}")
                status[action.index] = action.status
                continue
            taken = [(what, held[what]) for what in _holds(action) if what in (held or {})]
            if taken:
                what, holder = taken[0]
                self.record(
                    plan, action, StepStatus.SKIPPED, f"an earlier step waits in vCenter ({what}): {holder}"
                )
                status[action.index] = action.status
                continue
            run_at = run_at or self.when(driver)
            try:
                check_action(action)
                task = self._create(driver, plan, action, name, run_at)
            except DriverError as exc:
                LOG.warning("plan %s: a step was not scheduled: %s", plan.id, exc)
                self.record(plan, action, StepStatus.FAILED, f"{type(exc).__name__}: {exc}")
                status[action.index] = action.status
                if policy == "abort":
                    return self._withdraw(plan, driver, f"plan aborted after step {action.index} failed")
                continue
            except ConfigurationError as exc:
                # credentials rejected or a certificate untrusted (AuthenticationFailed): every
                # later call would be refused alike, so the caller stops once this is on record
                self.record(plan, action, StepStatus.FAILED, f"{type(exc).__name__}: {exc}")
                raise
            except Exception as exc:
                # a fault in this code or the driver, not a refusal by vCenter: as with the driver
                # executor, the step fails, the rest of the plan is cancelled and the error raised
                why = f"unexpected error, plan aborted: {type(exc).__name__}: {exc}"
                self.record(plan, action, StepStatus.FAILED, why)
                raise
            if task is None:
                self.record(plan, action, StepStatus.SUCCEEDED, "nothing to do")
            else:
                self.record(
                    plan,
                    action,
                    StepStatus.SCHEDULED,
                    f"vCenter task {task._moId} at {run_at.isoformat()}",
                )
            status[action.index] = action.status
        return plan

    def cancel(self, plan: ActionPlan, driver: Driver) -> ActionPlan:
        """Remove the plan's tasks that have not run yet; their steps become cancelled.

        The tasks' outcomes are read first: a step whose task already ran keeps what it did, and
        one whose task is running is left to finish, since vCenter cannot stop it.
        """
        return self._withdraw(plan, self._vsphere(driver), "cancelled before it ran")

    def _withdraw(self, plan: ActionPlan, driver: VSphereDriver, why: str) -> ActionPlan:
        """Cancel every step that has not started, removing its task, after reading back the
        outcome of the others (in the same read, so that no outcome is removed unread)."""
        if all(a.status in FINISHED for a in plan.actions):
            return plan
        scheduled = self._scheduled(driver)
        self._read_back(plan, driver, {info.name: info for _task, info in scheduled})
        tasks = {info.name: task for task, info in scheduled}
        for action in plan.actions:
            if action.status in FINISHED:
                continue
            if action.status is StepStatus.RUNNING:
                message = f"too late to withdraw ({why}); its outcome is read back"
                if message not in action.message:
                    LOG.warning(
                        "step %s (%s) is running in vCenter: not withdrawn", action.index, action.kind
                    )
                    self.record(plan, action, StepStatus.RUNNING, _joined(action.message, message))
                continue
            task = tasks.get(task_name(plan, action))
            if task is not None:
                with faults(f"removing scheduled task {task._moId}"):
                    task.RemoveScheduledTask()
            self.record(plan, action, StepStatus.CANCELLED, why)
        return plan

    def _read_back(self, plan: ActionPlan, driver: VSphereDriver, infos: dict[str, Any]) -> None:
        """Record the state vCenter reports for each written step still open in the plan."""
        for action in plan.actions:
            if action.status not in (StepStatus.SCHEDULED, StepStatus.RUNNING):
                continue
            info = infos.get(task_name(plan, action))
            if info is None:
                if (outcome := self._stored_outcome(plan, action)) is not None:
                    # recorded by another pass or process, which then removed the task (or an
                    # admin did): the step ran
                    action.status, action.message = outcome
                elif action.status is StepStatus.RUNNING:
                    if (outcome := _late_outcome(driver, action)) is not None:
                        self.record(plan, action, *outcome)
                else:
                    self.record(
                        plan, action, StepStatus.CANCELLED, "the scheduled task was removed in vCenter"
                    )
                continue
            status = _STATE_TO_STATUS.get(str(info.state), StepStatus.SCHEDULED)
            if status is StepStatus.SCHEDULED and not info.enabled:
                message = "disabled in vCenter: waiting for an admin to enable it"
            elif status is StepStatus.FAILED:
                message = _failure_message(info)
            elif status is StepStatus.SUCCEEDED:
                message = f"ran at {info.prevRunTime.isoformat() if info.prevRunTime else '?'}"
            elif status is StepStatus.RUNNING and info.activeTask is not None:
                # named, so that the outcome can be read from that task if the scheduled task goes
                ran_as = f"running as vCenter task {info.activeTask._moId}"
                message = action.message if ran_as in action.message else _joined(action.message, ran_as)
            else:
                message = action.message
            if status is not action.status or message != action.message:
                self.record(plan, action, status, message)

    def _stored_outcome(self, plan: ActionPlan, action: Action) -> tuple[StepStatus, str] | None:
        """The finished status and message the history store holds for a step, if any."""
        if self.store is None:
            return None
        try:
            stored = self.store.get_plan(plan.id).actions
        except NotFound:
            return None
        step = next((a for a in stored if a.index == action.index), None)
        if step is None or step.status not in FINISHED:
            return None
        return step.status, step.message

    # -- vCenter -------------------------------------------------------------------------------

    @staticmethod
    def _vsphere(driver: Driver) -> VSphereDriver:
        if not isinstance(driver, VSphereDriver):
            raise ConfigurationError(
                f"the vcenter-scheduled executor needs the vsphere driver, not {type(driver).__name__}"
            )
        return driver

    def _scheduled(self, driver: VSphereDriver) -> list[tuple[Any, Any]]:
        """(task, info) of every scheduled task, in one property-collector call."""
        with faults("listing vCenter scheduled tasks"):
            return driver.scheduled_tasks()

    def _create(
        self, driver: VSphereDriver, plan: ActionPlan, action: Action, name: str, run_at: dt.datetime
    ) -> Any:
        """The new scheduled task; None when the step has nothing to change."""
        planned = self._method_action(driver, action)
        if planned is None:
            return None
        entity, method, arguments = planned
        spec = vim.scheduler.ScheduledTaskSpec(
            name=name,
            description=_description(action),
            enabled=self.options.enabled,
            scheduler=vim.scheduler.OnceTaskScheduler(runAt=run_at),
            action=vim.action.MethodAction(
                name=method,
                argument=[vim.action.MethodActionArgument(value=a) for a in arguments],
            ),
        )
        with faults(f"scheduling step {action.index} ({action.kind})"):
            return driver.session.content.scheduledTaskManager.CreateScheduledTask(entity, spec)

    def _method_action(self, driver: VSphereDriver, action: Action) -> tuple[Any, Any, list[Any]] | None:
        """Entity, managed method and arguments that carry out one step (None: nothing to do).

        Resizes are scheduled only where hot-add allows them: a scheduled task never power-cycles.
        """
        stub = driver.session.stub
        if action.kind is ActionKind.LIVE_MIGRATE:
            vm_id = required(action.vm_id, action)
            relocate = driver.relocate_spec(vm_id, required(action.target_host_id, action))
            if relocate is None:
                return None
            return vim.VirtualMachine(vm_id, stub), vim.VirtualMachine.Relocate, [relocate]
        if action.kind is ActionKind.SET_ALLOCATION:
            vm_id = required(action.vm_id, action)
            spec = driver.allocation_spec(vm_id, required(action.allocation, action))
            return vim.VirtualMachine(vm_id, stub), vim.VirtualMachine.Reconfigure, [spec]
        if action.kind is ActionKind.RESIZE:
            vm_id = required(action.vm_id, action)
            resize = driver.resize_spec(vm_id, required(action.size, action), allow_power_cycle=False)
            if resize is None:
                return None
            return vim.VirtualMachine(vm_id, stub), vim.VirtualMachine.Reconfigure, [resize[0]]
        if action.kind is ActionKind.SET_MAINTENANCE:
            host = vim.HostSystem(required(action.host_id, action), stub)
            if action.maintenance:
                return host, vim.HostSystem.EnterMaintenanceMode, [0]
            return host, vim.HostSystem.ExitMaintenanceMode, [0]
        raise Unsupported(f"cannot schedule a {action.kind} step")


def _holds(action: Action) -> list[str]:
    """What a step keeps to itself until it has run: the VM it changes, or the host of a
    maintenance step; and the room on the host a relocation fills (or a maintenance step empties),
    which the plan that wrote it counted on."""
    if action.kind is ActionKind.SET_MAINTENANCE:
        return [f"host {action.host_id}", f"room on host {action.host_id}"]
    if action.kind is ActionKind.LIVE_MIGRATE:
        return [f"VM {action.vm_id}", f"room on host {action.target_host_id}"]
    return [f"VM {action.vm_id}"]


def _late_outcome(driver: VSphereDriver, action: Action) -> tuple[StepStatus, str] | None:
    """The outcome of a running step whose scheduled task was removed before its outcome was
    read, from the vCenter task it started (None: that task still runs, or cannot be read now).

    vCenter keeps a finished task for a while only; once it has dropped it, the outcome is unknown.
    """
    removed = "the scheduled task was removed in vCenter while it ran"
    match = _RAN_AS.search(action.message)
    if match is None:
        return StepStatus.FAILED, f"{removed}: its outcome is unknown"
    task_id = match.group(1)
    try:
        with faults(f"reading vCenter task {task_id}"):
            info = vim.Task(task_id, driver.session.stub).info
    except NotFound:
        return StepStatus.FAILED, f"{removed}; vCenter no longer has task {task_id}: its outcome is unknown"
    except DriverError as exc:
        LOG.warning(
            "step %s: the outcome of vCenter task %s is read again later: %s", action.index, task_id, exc
        )
        return None
    state = str(info.state)
    if state == "success":
        at = info.completeTime.isoformat() if info.completeTime else "?"
        return StepStatus.SUCCEEDED, f"{removed}; the task it started, {task_id}, succeeded at {at}"
    if state == "error":
        error = convert.error_from_fault(info.error, f"task {task_id}")
        return (
            StepStatus.FAILED,
            f"{removed}; the task it started, {task_id}, failed: {type(error).__name__}: {error}",
        )
    return None


def _joined(message: str, addition: str) -> str:
    return f"{message}; {addition}" if message else addition


def _ran_at(info: Any) -> float | None:
    """When (vCenter's clock, epoch seconds) a finished task last ran."""
    at = info.prevRunTime or info.lastModifiedTime
    return at.timestamp() if at is not None else None


def _first_failure(plan: ActionPlan) -> int | None:
    """Index of the first failed step, if any."""
    return next((a.index for a in plan.actions if a.status is StepStatus.FAILED), None)


def _description(action: Action) -> str:
    """What an admin reads in the vSphere Client. The reason names hosts, VMs and rules the cloud
    named: its control characters are written as escapes, since XML 1.0 cannot carry them and
    vCenter would refuse the task."""
    parts = [f"cotenancy step {action.index}: {action.kind}"]
    if action.reason:
        parts.append(f"why: {action.reason}")
    if action.expected_benefit:
        parts.append(f"expected benefit: {action.expected_benefit:g}")
    return escape_controls("; ".join(parts))


def _failure_message(info: Any) -> str:
    fault = info.error
    if fault is None:
        return "the scheduled task failed"
    error = convert.error_from_fault(fault, "scheduled task")
    return f"{type(error).__name__}: {error}"
