"""The tests' own pyVmomi side of the vCenter simulator: connect as the administrator, arrange VMs
and read back what a driver, executor or playbook did. Shared by the vsphere and Ansible tests,
which put this folder on ``sys.path`` to reach :mod:`vcsim_harness`."""

from __future__ import annotations

import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim
from vcsim_harness import VCSim

#: how long an arranging task may take before the test fails
TASK_TIMEOUT = 30.0


def vsphere_overrides(sim: VCSim) -> dict[str, Any]:
    """``[vsphere]`` options that point the driver at ``sim``, verifying TLS against its
    certificate, with short timeouts and polls fit for a simulator."""
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


@contextmanager
def admin_connection(sim: VCSim) -> Iterator[vim.ServiceInstanceContent]:
    """A connection of the tests' own (TLS verified against the simulator's certificate)."""
    context = ssl.create_default_context(cafile=str(sim.ca_file))
    si = SmartConnect(host=sim.host, port=sim.port, user=sim.username, pwd=sim.password, sslContext=context)
    try:
        yield si.RetrieveContent()
    finally:
        Disconnect(si)


def objects(admin: vim.ServiceInstanceContent, kind: type) -> list[Any]:
    view = admin.viewManager.CreateContainerView(admin.rootFolder, [kind], True)
    try:
        return list(view.view)
    finally:
        view.DestroyView()


def wait_task(task: vim.Task) -> Any:
    deadline = time.monotonic() + TASK_TIMEOUT
    while task.info.state not in ("success", "error"):
        assert time.monotonic() < deadline, f"admin task {task} did not finish"
        time.sleep(0.05)
    assert task.info.state == "success", task.info.error
    return task.info.result


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll vCenter (through the admin connection, not the code under test) until ``condition``
    holds; a test that waits longer fails. What it waits for takes under a second here; the
    deadline is long because in a fresh-clone run beside other jobs on this 2-core machine a
    scheduled task once had not run and failed within 15 s."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() <= deadline, f"timed out waiting until {what}"
        time.sleep(0.1)


def cluster_hosts(admin: vim.ServiceInstanceContent, index: int) -> list[vim.HostSystem]:
    """The hosts of the ``index``-th cluster (by name), sorted by name."""
    clusters = sorted(objects(admin, vim.ClusterComputeResource), key=lambda c: c.name)
    return sorted(clusters[index].host, key=lambda h: h.name)


def create_vm(
    admin: vim.ServiceInstanceContent,
    host: vim.HostSystem,
    prefix: str,
    *,
    cpus: int = 1,
    memory_mb: int = 256,
    **config: Any,
) -> vim.VirtualMachine:
    """A powered-on VM on ``host`` named ``<prefix>-<random>`` (tests never depend on each other's
    VMs); ``config`` adds ``vim.vm.ConfigSpec`` fields such as ``cpuHotAddEnabled``."""
    datacenter = objects(admin, vim.Datacenter)[0]
    spec = vim.vm.ConfigSpec(
        name=f"{prefix}-{uuid.uuid4().hex[:8]}",
        numCPUs=cpus,
        memoryMB=memory_mb,
        guestId="otherGuest",
        files=vim.vm.FileInfo(vmPathName=f"[{host.datastore[0].name}]"),
        **config,
    )
    vm = wait_task(datacenter.vmFolder.CreateVM_Task(config=spec, pool=host.parent.resourcePool, host=host))
    wait_task(vm.PowerOnVM_Task())
    return vm


def remove_vm(vm: vim.VirtualMachine) -> None:
    """Powers off and destroys ``vm``; one the test deleted itself is gone already."""
    try:
        if vm.runtime.powerState == "poweredOn":
            wait_task(vm.PowerOffVM_Task())
        wait_task(vm.Destroy_Task())
    except vim.fault.NotFound:
        pass
    except Exception as exc:
        if "ManagedObjectNotFound" not in type(exc).__name__:
            raise


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
