"""Watcher's compute model of a cloud that cotenancy describes (the simulated cloud, a recorded
inventory), so Watcher's strategies can run on it.

Watcher identifies instances by UUID and hosts by hypervisor hostname, and counts CPU in vCPUs.
``WatcherView`` keeps the mapping both ways; ``mhz_per_vcpu`` sets the granularity of the vCPU
count (the reference PlanetLab hosts of 1860/2660 MHz cores only compare fairly when one vCPU
is a small, common unit of MHz).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from watcher.decision_engine.model import element, model_root

from cotenancy.model import Inventory, VMState

_NAMESPACE = uuid.UUID("6c3f1c62-5f55-4d0c-9f8e-2b1bb7a1c0de")
_CREATED = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def watcher_uuid(kind: str, name: str) -> str:
    """A stable UUID for a cotenancy id (Watcher's action schemas require UUIDs)."""
    try:
        return str(uuid.UUID(name))
    except ValueError:
        return str(uuid.uuid5(_NAMESPACE, f"{kind}:{name}"))


@dataclass(slots=True)
class WatcherView:
    """A Watcher compute model and the id mappings back to cotenancy."""

    model: model_root.ModelRoot
    vm_by_uuid: dict[str, str] = field(default_factory=dict)
    host_by_hostname: dict[str, str] = field(default_factory=dict)
    mhz_per_vcpu: float = 100.0

    def uuid_of_vm(self) -> dict[str, str]:
        return {v: u for u, v in self.vm_by_uuid.items()}


def compute_model_from_inventory(inventory: Inventory, mhz_per_vcpu: float = 100.0) -> WatcherView:
    """Hosts become compute nodes, VMs instances; CPU is counted in units of ``mhz_per_vcpu``."""
    if mhz_per_vcpu <= 0:
        raise ValueError("mhz_per_vcpu must be positive")
    model = model_root.ModelRoot()
    view = WatcherView(model=model, mhz_per_vcpu=mhz_per_vcpu)
    nodes = {}
    for number, host in enumerate(sorted(inventory.hosts.values(), key=lambda h: h.id)):
        hostname = host.name or host.id
        node = element.ComputeNode(
            id=number,
            uuid=watcher_uuid("host", host.id),
            hostname=hostname,
            status="disabled" if host.maintenance else "enabled",
            state="up",
            vcpus=max(1, int(round(host.capacity.cpu / mhz_per_vcpu))),
            vcpu_reserved=0,
            vcpu_ratio=1.0,
            memory=int(host.capacity.memory),
            memory_mb_reserved=0,
            memory_ratio=1.0,
            disk=1000,
            disk_gb_reserved=0,
            disk_ratio=1.0,
        )
        model.add_node(node)
        nodes[host.id] = node
        view.host_by_hostname[hostname] = host.id
    for vm in sorted(inventory.vms.values(), key=lambda v: v.id):
        if vm.host_id not in nodes:
            continue
        node = nodes[vm.host_id]
        instance = element.Instance(
            uuid=watcher_uuid("vm", vm.id),
            name=vm.name or vm.id,
            state="active" if vm.state in (VMState.ACTIVE, VMState.MIGRATING) else "stopped",
            memory=int(vm.size.memory),
            disk=10,
            vcpus=max(1, int(round(vm.size.cpu / mhz_per_vcpu))),
            metadata={
                "optimize": True,
                "cotenancy:app_type": vm.workload.app_type,
                "cotenancy:priority": str(vm.workload.priority),
                "cotenancy:security_level": vm.workload.security_level,
            },
            project_id=watcher_uuid("tenant", vm.tenant),
            created=_CREATED,
            hypervisor_hostname=node.hostname,
            host=node.hostname,
        )
        model.add_instance(instance)
        model.map_instance(instance, node)
        view.vm_by_uuid[instance.uuid] = vm.id
    return view


def migration_records(inventory: Inventory) -> list[dict[str, str]]:
    """Nova's migration records (``GET /os-migrations``) of the moves under way in ``inventory``,
    as the Watcher plugin reads them next to the compute model: the model shows a moving server
    ``active`` on its source (as Nova's collector does), the record says where it goes."""
    hostname = {h.id: h.name or h.id for h in inventory.hosts.values()}
    return [
        {
            "instance_uuid": watcher_uuid("vm", vm.id),
            "status": "running",
            "source_compute": hostname[vm.host_id],
            "dest_compute": hostname[vm.migration_target],
        }
        for vm in sorted(inventory.vms.values(), key=lambda v: v.id)
        if vm.state is VMState.MIGRATING and vm.host_id in hostname and vm.migration_target in hostname
    ]
