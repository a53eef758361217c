"""Helpers shared by the vsphere functional tests (arranging and checking through pyVmomi)."""

from __future__ import annotations

import time
from typing import Any

from pyVmomi import vim


def vsphere_overrides(sim: Any) -> dict[str, Any]:
    return {
        "host": sim.host,
        "port": sim.port,
        "username": sim.username,
        "password": sim.password,
        "ca_file": str(sim.ca_file),
        "task_timeout": 30.0,
        "call_timeout": 30.0,
        "poll_interval": 0.05,
    }


def objects(admin: vim.ServiceInstanceContent, kind: type) -> list[Any]:
    view = admin.viewManager.CreateContainerView(admin.rootFolder, [kind], True)
    try:
        return list(view.view)
    finally:
        view.DestroyView()


def wait_task(task: vim.Task) -> Any:
    deadline = time.monotonic() + 30
    while task.info.state not in ("success", "error"):
        assert time.monotonic() < deadline, f"admin task {task} did not finish"
        time.sleep(0.05)
    assert task.info.state == "success", task.info.error
    return task.info.result


def cluster_hosts(admin: vim.ServiceInstanceContent, index: int) -> list[vim.HostSystem]:
    clusters = sorted(objects(admin, vim.ClusterComputeResource), key=lambda c: c.name)
    return sorted(clusters[index].host, key=lambda h: h.name)


def migrations_of(admin: vim.ServiceInstanceContent, vm: vim.VirtualMachine) -> int:
    """How many times vCenter recorded a migration of ``vm`` (counts runs: none lost, none twice)."""
    spec = vim.event.EventFilterSpec(
        eventTypeId=["VmMigratedEvent"],
        maxCount=1000,
        entity=vim.event.EventFilterSpec.ByEntity(entity=vm, recursion="self"),
    )
    collector = admin.eventManager.CreateCollectorForEvents(spec)
    try:
        events = []
        while page := collector.ReadNextEvents(100):
            events.extend(page)
    finally:
        collector.DestroyCollector()
    return sum(1 for e in events if e.vm is not None and e.vm.vm._moId == vm._moId)
