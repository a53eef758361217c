"""Text from the cloud in what the vcenter-scheduled executor writes to vCenter: a step's reason
names hosts, VMs and rules, and reaches the scheduled task's description as one line of printable
text. A control character there is not even valid in vCenter's XML, so it would leave the step
unscheduled."""

from __future__ import annotations

import datetime as dt

from vcsim_admin import cluster_hosts

from cotenancy.model import ActionKind, ActionPlan, StepStatus
from cotenancy.plugins.vcenter.executor import ScheduledTaskExecutor, task_name
from cotenancy.text import CONTROL_CHARACTERS

REASON = "pair risk 0.8 with web\n2026-12-07 23:59:59 FORGED\x1b[2J\u2028 on rule 'a'; $(id) `id`"


def test_a_reason_holding_control_characters_is_scheduled_with_them_escaped(
    admin, driver, vsphere_conf, store, new_vm
):
    source, target = cluster_hosts(admin, 0)[:2]
    vm = new_vm(host=source)
    plan = ActionPlan(strategy="test")
    plan.add(ActionKind.LIVE_MIGRATE, vm_id=vm._moId, target_host_id=target._moId, reason=REASON)
    store.save_plan(plan)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)

    ScheduledTaskExecutor(vsphere_conf, store=store, run_at=later).execute(plan, driver)

    (step,) = plan.actions
    assert step.status is StepStatus.SCHEDULED, step.message
    (task,) = [t for t in admin.scheduledTaskManager.scheduledTask if t.info.name == task_name(plan, step)]
    description = task.info.description
    assert "web\\n2026-12-07 23:59:59 FORGED\\x1b[2J\\u2028 on rule 'a'; $(id) `id`" in description
    assert not CONTROL_CHARACTERS.search(description)
    task.RemoveScheduledTask()
