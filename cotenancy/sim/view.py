"""A numeric view of a :class:`ClusterState` for strategies that reason over every host at once.

Building it costs one pass over the inventory; strategies then work on numpy arrays instead of
records. VM order follows the inventory's order, which drivers keep as each host's VM list order
(the order VMs arrived on their host), so tie-breaks match CloudSim's list scans.

A VM a live migration is taking elsewhere is on its source (``vm_host``) and names the host it is
arriving on (``vm_target``, where the driver knows it): strategies count it on both until it lands,
as CloudSim counts a VM migrating in on its target host.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cotenancy.model import ClusterState, VMState
from cotenancy.sim.power import POWER_TABLES


@dataclass(slots=True)
class ArrayView:
    host_ids: list[str]
    host_cpu: np.ndarray
    host_pe: np.ndarray
    host_power: np.ndarray
    host_maintenance: np.ndarray
    host_memory: np.ndarray
    host_memory_checked: np.ndarray
    vm_ids: list[str]
    vm_host: np.ndarray
    vm_cpu: np.ndarray
    vm_memory: np.ndarray
    vm_vcpus: np.ndarray
    vm_migrating: np.ndarray
    #: (V,) host a live migration in flight is taking the VM to, -1 when none or unknown
    vm_target: np.ndarray
    vm_request: np.ndarray
    vm_allocated: np.ndarray
    vm_history: np.ndarray

    @property
    def n_hosts(self) -> int:
        return len(self.host_ids)

    def host_used(self) -> np.ndarray:
        """MHz allocated on each host (the ``cpu`` metric summed)."""
        on = self.vm_host >= 0
        return np.bincount(self.vm_host[on], self.vm_allocated[on], self.n_hosts)

    def host_utilisation(self) -> np.ndarray:
        return self.host_used() / self.host_cpu

    def arriving(self) -> np.ndarray:
        """VMs in flight to a known host (indices into the VM arrays)."""
        return np.flatnonzero(self.vm_target >= 0)

    def host_sum(self, per_vm: np.ndarray) -> np.ndarray:
        """Sum per host of a per-VM amount, a VM in flight counted on its source and its target."""
        on = self.vm_host >= 0
        out = np.bincount(self.vm_host[on], per_vm[on], self.n_hosts)
        coming = self.arriving()
        return out + np.bincount(self.vm_target[coming], per_vm[coming], self.n_hosts)


def _linear_power(n: int) -> np.ndarray:
    return np.tile(np.linspace(0.5, 1.0, 11), (n, 1))


def array_view(state: ClusterState, history: int = 30) -> ArrayView:
    """Arrays of hosts and running VMs. A host with attribute ``memory_admission=none`` admits VMs
    whatever their memory (CloudSim: a running VM requests no RAM). ``vm_history`` holds the last
    ``history`` CPU demand samples as fractions of the VM's size (oldest first, NaN where missing)."""
    inv = state.inventory
    hosts = list(inv.hosts.values())
    host_ids = [h.id for h in hosts]
    index = {h: i for i, h in enumerate(host_ids)}
    host_cpu = np.array([h.capacity.cpu for h in hosts], dtype=float)
    cores = np.array([float(h.attributes.get("cores", 1) or 1) for h in hosts])
    power = (
        np.vstack(
            [
                np.asarray(POWER_TABLES[h.power_model], dtype=float)
                if h.power_model in POWER_TABLES
                else np.linspace(0.5, 1.0, 11)
                for h in hosts
            ]
        )
        if hosts
        else _linear_power(0)
    )
    vms = [v for v in inv.vms.values() if v.host_id is not None and v.state is not VMState.STOPPED]
    vm_ids = [v.id for v in vms]
    vm_host = np.array([index.get(v.host_id, -1) for v in vms], dtype=np.int64)
    vm_cpu = np.array([v.size.cpu for v in vms], dtype=float)
    vm_memory = np.array([v.size.memory for v in vms], dtype=float)
    migrating = np.array([v.id in state.migrating or v.state is VMState.MIGRATING for v in vms], dtype=bool)
    target = np.array([index.get(v.migration_target or "", -1) for v in vms], dtype=np.int64)
    target[~migrating | (target == vm_host) | (vm_host < 0)] = -1
    tel = state.telemetry
    n = len(vms)
    request = np.zeros(n)
    allocated = np.zeros(n)
    hist = np.full((n, history), np.nan)
    if tel.vm_ids:
        rows_of = {vm: i for i, vm in enumerate(tel.vm_ids)}
        rows = np.array([rows_of.get(v, -1) for v in vm_ids], dtype=np.int64)
        have = rows >= 0
        demand = tel.values.get("cpu_demand")
        used = tel.values.get("cpu")
        if demand is None:
            demand = used
        if demand is not None and demand.shape[1]:
            d = demand[rows[have]]
            request[have] = np.nan_to_num(d[:, -1], nan=0.0)
            width = min(history, d.shape[1])
            with np.errstate(divide="ignore", invalid="ignore"):
                hist[have, history - width :] = d[:, -width:] / vm_cpu[have, None]
        if used is not None and used.shape[1]:
            allocated[have] = np.nan_to_num(used[rows[have], -1], nan=0.0)
    return ArrayView(
        host_ids=host_ids,
        host_cpu=host_cpu,
        host_pe=host_cpu / cores,
        host_power=power,
        host_maintenance=np.array([h.maintenance for h in hosts], dtype=bool),
        host_memory=np.array([h.capacity.memory if h.capacity.memory > 0 else np.inf for h in hosts]),
        host_memory_checked=np.array(
            [h.attributes.get("memory_admission", "checked") != "none" for h in hosts], dtype=bool
        ),
        vm_ids=vm_ids,
        vm_host=vm_host,
        vm_cpu=vm_cpu,
        vm_memory=vm_memory,
        vm_vcpus=np.array([max(1, v.vcpus) for v in vms], dtype=float),
        vm_migrating=migrating,
        vm_target=target,
        vm_request=request,
        vm_allocated=allocated,
        vm_history=hist,
    )
