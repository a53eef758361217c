"""How long a ``vcenter-scheduled`` follow-up pass and a vSphere inventory take with N old tasks.

Starts the vCenter simulator (tests/harness/vcsim; build it with scripts/setup.d/30-vcsim.sh),
writes ``--plans`` plans of ``--steps`` allocation changes each (one task per step, each on its own
VM) that run at once, and records their outcomes in a temporary history store. Then it times a
follow-up pass and ``get_inventory()`` while the finished tasks stay in vCenter (retention not yet
passed), removes them in one pass (``finished_task_retention = 0``,
``max_removals_per_pass`` = all), and times both again. Prints medians.

    .venv/bin/python benchmarks/bench_vcenter_cleanup.py [--plans 50] [--steps 4] [--runs 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path

from pyVmomi import vim

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "harness" / "vcsim"))

import vcsim_harness  # noqa: E402
from vcsim_admin import admin_connection, objects, vsphere_overrides, wait_for  # noqa: E402

from cotenancy.conf import make_conf  # noqa: E402
from cotenancy.drivers.vsphere.driver import VSphereDriver  # noqa: E402
from cotenancy.model import ActionKind, ActionPlan, Allocation  # noqa: E402
from cotenancy.plugins.vcenter.executor import ScheduledTaskExecutor  # noqa: E402
from cotenancy.store import HistoryStore  # noqa: E402

GROUP = "vcenter-scheduled"


def median_seconds(call: Callable[[], object], runs: int) -> float:
    return statistics.median(timeit.repeat(call, number=1, repeat=runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=50)
    parser.add_argument("--steps", type=int, default=4, help="steps (tasks) per plan")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    tasks = args.plans * args.steps

    sim = vcsim_harness.VCSim.start(clusters=2, hosts_per_cluster=3, vms_per_pool=(tasks + 1) // 2)
    with sim, tempfile.TemporaryDirectory() as tmp, admin_connection(sim) as admin:
        conf = make_conf([], config_files=[])
        for name, value in vsphere_overrides(sim).items():
            conf.set_override(name, value, group="vsphere")
        store = HistoryStore(f"sqlite:///{tmp}/history.db")
        driver = VSphereDriver(conf)
        vms = iter(sorted(objects(admin, vim.VirtualMachine), key=lambda vm: vm._moId))
        for _ in range(args.plans):
            plan = ActionPlan(strategy="bench")
            for _ in range(args.steps):
                plan.add(ActionKind.SET_ALLOCATION, vm_id=next(vms)._moId, allocation=Allocation(shares=500))
            store.save_plan(plan)
            run_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.5)
            ScheduledTaskExecutor(conf, store=store, run_at=run_at).execute(plan, driver)
        wait_for(
            lambda: all(
                t.info.state in ("success", "error") for t in admin.scheduledTaskManager.scheduledTask
            ),
            f"{tasks} tasks ran",
            timeout=600,
        )
        executor = ScheduledTaskExecutor(conf, store=store)
        executor.follow_up(driver)  # records the outcomes; the tasks are recent, so they stay

        def listed() -> int:
            return len(admin.scheduledTaskManager.scheduledTask)

        before = (listed(), median_seconds(lambda: executor.follow_up(driver), args.runs))
        inventory_before = median_seconds(driver.get_inventory, args.runs)
        conf.set_override("finished_task_retention", 0.0, group=GROUP)
        conf.set_override("max_removals_per_pass", tasks, group=GROUP)  # all in one timed pass
        cleanup = median_seconds(lambda: executor.follow_up(driver), 1)
        after = (listed(), median_seconds(lambda: executor.follow_up(driver), args.runs))
        inventory_after = median_seconds(driver.get_inventory, args.runs)
        driver.close()
        store.close()

    print(f"{tasks} finished cotenancy tasks ({args.plans} plans), median of {args.runs} runs:")
    print(
        f"  kept:    {before[0]:5d} tasks listed, follow-up pass {before[1] * 1000:7.1f} ms, "
        f"inventory {inventory_before * 1000:7.1f} ms"
    )
    print(f"  removal pass (retention 0): {cleanup * 1000:.1f} ms")
    print(
        f"  removed: {after[0]:5d} tasks listed, follow-up pass {after[1] * 1000:7.1f} ms, "
        f"inventory {inventory_after * 1000:7.1f} ms"
    )


if __name__ == "__main__":
    main()
