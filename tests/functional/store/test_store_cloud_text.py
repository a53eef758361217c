"""Text from the cloud is recorded whatever it holds: a NUL in a VM name, an event message or a
step's outcome is kept, shown as its escape, on SQLite and on PostgreSQL (whose text columns
cannot hold NUL at all), so no round of the control loop fails over what a tenant named a VM."""

from __future__ import annotations

from cotenancy.model import VM, Event, EventKind, Host, Inventory, Resources, WorkloadClass
from cotenancy.model.plan import Action, ActionKind, ActionPlan, StepStatus

T0 = 1_700_000_000.0


def test_a_nul_in_names_and_messages_from_the_cloud_is_stored_as_its_escape(history_store):
    inventory = Inventory(
        hosts={"h1": Host("h1", "rack\x00one", Resources(cpu=8000, memory=16384), cluster="c\x001")},
        vms={
            "vm-1": VM(
                "vm-1",
                "web\x00evil",
                "h1",
                Resources(cpu=1000, memory=1024),
                tenant="acme\x00",
                workload=WorkloadClass(app_type="web\x00", security_level="public\x00"),
                flavor="m1\x00small",
                attributes={"note": "a\x00b"},
            )
        },
    )
    history_store.upsert_inventory(inventory, T0)
    event = Event(
        timestamp=T0,
        kind=EventKind.DEGRADATION,
        vm_ids=("vm-1",),
        host_id="h1",
        message="guest said \x00 then stopped",
        source="driver\x00",
        details={"fault": "x\x00y"},
    )
    assert history_store.add_events([event]) == 1
    plan = ActionPlan(
        id="p1",
        strategy="predictive",
        created_at=T0,
        actions=[Action(0, ActionKind.LIVE_MIGRATE, vm_id="vm-1", target_host_id="h1", reason="to \x00 h1")],
    )
    history_store.save_plan(plan)
    history_store.update_step("p1", 0, StepStatus.FAILED, "vCenter: fault \x00 text")

    vm = history_store.vms()["vm-1"]
    assert (vm.name, vm.tenant, vm.workload.app_type, vm.workload.security_level, vm.flavor) == (
        "web\\x00evil",
        "acme\\x00",
        "web\\x00",
        "public\\x00",
        "m1\\x00small",
    )
    host = history_store.hosts()["h1"]
    assert (host.name, host.cluster) == ("rack\\x00one", "c\\x001")
    [stored] = history_store.events(T0 - 1, T0 + 1)
    assert (stored.message, stored.source) == ("guest said \\x00 then stopped", "driver\\x00")
    [step] = history_store.get_plan("p1").actions
    assert (step.reason, step.status, step.message) == (
        "to \\x00 h1",
        StepStatus.FAILED,
        "vCenter: fault \\x00 text",
    )
