"""Hosts, VMs, allocations, workload classes and the inventory that ties them together.

Modelled the way openstacksdk models cloud resources: plain declarative records; the verbs live on
the driver facade (:class:`cotenancy.drivers.base.Driver`).
"""

from __future__ import annotations

import enum
from collections import defaultdict
from dataclasses import dataclass, field

from cotenancy.model.policy import AffinityRule, CoTenancyPolicy
from cotenancy.model.resources import Resources


class VMState(enum.StrEnum):
    ACTIVE = "active"
    MIGRATING = "migrating"
    STOPPED = "stopped"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class WorkloadClass:
    """What a VM is for; policies and the risk model use it.

    ``priority``: 0 (best effort) .. 10 (most important). ``security_level``: free text such as
    ``public``, ``internal``, ``confidential``.
    """

    app_type: str = "general"
    priority: int = 5
    security_level: str = "internal"


@dataclass(frozen=True, slots=True)
class Allocation:
    """How the hypervisor shares a host among its VMs (vSphere shares/reservation/limit,
    Hyper-V weight/reserve/maximum, cgroup-style quotas).

    ``reservation``: guaranteed amount; ``limit``: cap (``None`` = unlimited);
    ``shares``: relative weight under contention (1000 = normal).
    """

    reservation: Resources = field(default_factory=Resources)
    limit: Resources | None = None
    shares: int = 1000


@dataclass(slots=True)
class Host:
    """A hypervisor host. ``capacity`` is what VMs may use (after the hypervisor's own overhead)."""

    id: str
    name: str
    capacity: Resources
    cluster: str | None = None
    maintenance: bool = False
    power_model: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class VM:
    """A virtual machine and what it has been given.

    ``size`` is the configured size the guest sees (vCPUs x MHz, memory, I/O caps): resize changes it.
    ``allocation`` is the hypervisor-side share of contended resources: set_allocation changes it.
    ``migration_target`` is the host a live migration in flight (state ``migrating``) is taking the
    VM to, where the driver knows it (``None`` otherwise): ``host_id`` stays the host it runs on
    until the move ends, and planners hold room for it on both. ``migration_waits`` is True while
    that move waits to start (a relocation held as a vCenter scheduled task until its window): it
    holds room and keeps the VM where it is, but takes no migration lane, since nothing moves yet.
    """

    id: str
    name: str
    host_id: str | None
    size: Resources
    allocation: Allocation = field(default_factory=Allocation)
    vcpus: int = 1
    tenant: str = "default"
    workload: WorkloadClass = field(default_factory=WorkloadClass)
    critical: bool = False
    state: VMState = VMState.ACTIVE
    flavor: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    migration_target: str | None = None
    migration_waits: bool = False


@dataclass(slots=True)
class Inventory:
    """A consistent snapshot of a cloud: hosts, VMs, where they run, and the rules they obey."""

    hosts: dict[str, Host] = field(default_factory=dict)
    vms: dict[str, VM] = field(default_factory=dict)
    policies: list[CoTenancyPolicy] = field(default_factory=list)
    rules: list[AffinityRule] = field(default_factory=list)

    def placement(self) -> dict[str, str | None]:
        """VM id -> host id."""
        return {vm.id: vm.host_id for vm in self.vms.values()}

    def vms_by_host(self) -> dict[str, list[VM]]:
        by_host: dict[str, list[VM]] = defaultdict(list)
        for vm in self.vms.values():
            if vm.host_id is not None:
                by_host[vm.host_id].append(vm)
        return {h: by_host.get(h, []) for h in self.hosts} | dict(by_host)

    def running_on(self) -> dict[str, list[VM]]:
        """Host id -> the running VMs that weigh on it: those placed there (a migrating VM until
        it has left) and those a live migration in flight is taking there
        (``migration_target``, when the inventory lists that host). Stopped VMs weigh on none."""
        on: dict[str, list[VM]] = {h: [] for h in self.hosts}
        for vm in self.vms.values():
            if vm.state is VMState.ACTIVE or vm.state is VMState.MIGRATING:
                if vm.host_id is not None:
                    on.setdefault(vm.host_id, []).append(vm)
                arriving = vm.migration_target if vm.state is VMState.MIGRATING else None
                if arriving in self.hosts and arriving != vm.host_id:
                    on.setdefault(arriving, []).append(vm)
        return on

    def allocated_on(self, host_id: str) -> Resources:
        """Sum of the sizes of the VMs placed on ``host_id``."""
        total = Resources()
        for vm in self.vms.values():
            if vm.host_id == host_id:
                total = total + vm.size
        return total
