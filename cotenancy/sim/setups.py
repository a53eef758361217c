"""Turning a trace or the synthetic workload into a :class:`Setup`, and trace format detection."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from cotenancy.exceptions import ConfigurationError, MalformedInputError
from cotenancy.sim.cloud import HostFleet, Setup
from cotenancy.sim.cloudsim import VM_TYPES, cloudsim_setup, vm_types
from cotenancy.sim.power import power_table
from cotenancy.sim.traces import trace_files
from cotenancy.sim.workload import Workload

SETUPS = ("default", "cloudsim")

#: default setup host: 2 x 16-core 2.6 GHz, 256 GiB, 500 MB/s disk, 10 Gbit/s network
DEFAULT_HOST = {
    "cores": 32,
    "mhz_per_core": 2600.0,
    "memory": 256 * 1024.0,
    "disk_io": 500 * 1024.0,
    "network": 10_000_000.0 / 8.0 / 1.024,
    "power_model": "generic-2u",
    "bandwidth_mbit": 10_000.0,
}


def detect_trace_format(path: str | Path) -> str:
    """``planetlab`` (a folder of plain per-VM files) or ``bitbrains`` (``.csv``/``.csv.gz`` files)."""
    root = Path(path)
    if not root.exists():
        raise MalformedInputError(str(root), None, "no such file or folder")
    if not root.is_dir():
        raise MalformedInputError(str(root), None, "a trace is a folder (PlanetLab day or Bitbrains month)")
    names = [p.name for p in trace_files(root)]
    if not names:
        raise MalformedInputError(str(root), None, "empty trace folder")
    csv = [n for n in names if n.endswith((".csv", ".csv.gz"))]
    if csv and len(csv) == len(names):
        return "bitbrains"
    if not csv:
        return "planetlab"
    raise MalformedInputError(str(root), None, "mixes CSV files with other files; cannot tell the format")


def load_trace(path: str | Path, limit: int | None = None) -> Workload:
    from cotenancy.sim.traces import load_bitbrains, load_planetlab

    kind = detect_trace_format(path)
    return load_planetlab(path, limit=limit) if kind == "planetlab" else load_bitbrains(path, limit=limit)


def _default_fleet(n_hosts: int, memory: float, cores: int) -> HostFleet:
    spec = DEFAULT_HOST
    return HostFleet(
        ids=[f"host-{i:04d}" for i in range(n_hosts)],
        cpu=np.full(n_hosts, cores * spec["mhz_per_core"]),
        cores=np.full(n_hosts, float(cores)),
        memory=np.full(n_hosts, memory),
        disk_io=np.full(n_hosts, spec["disk_io"]),
        network=np.full(n_hosts, spec["network"]),
        power_models=[str(spec["power_model"])] * n_hosts,
        power=np.tile(power_table(str(spec["power_model"])), (n_hosts, 1)),
        bandwidth_mbit=np.full(n_hosts, spec["bandwidth_mbit"]),
    )


def default_setup(workload: Workload, headroom: float = 1.25) -> Setup:
    """Modern hosts, enough of them for every VM's size times ``headroom``; VMs spread by free
    memory (a Nova-style spread scheduler). PlanetLab VMs get CloudSim's four types."""
    n = workload.n_vms
    if workload.sizes is not None:
        cpu = np.array([s.cpu for s in workload.sizes], dtype=float)
        memory = np.array([s.memory for s in workload.sizes], dtype=float)
        disk = np.array([s.disk_io for s in workload.sizes], dtype=float)
        net = np.array([s.network for s in workload.sizes], dtype=float)
        flavors = workload.attributes.get("flavor", [""] * n)
    else:
        kinds = vm_types(n)
        cpu = np.array([VM_TYPES[k][0] for k in kinds])
        memory = np.array([VM_TYPES[k][1] for k in kinds])
        disk = np.zeros(n)
        net = np.zeros(n)
        flavors = [f"cloudsim-type-{k}" for k in kinds]
    vcpus = workload.attributes.get("vcpus")
    if vcpus is not None:
        cores = np.array([max(1.0, float(c)) for c in vcpus])
    else:
        cores = np.maximum(1.0, np.ceil(cpu / DEFAULT_HOST["mhz_per_core"]))
    # hosts grow (in powers of two) when one VM is bigger than the standard host
    host_memory = float(DEFAULT_HOST["memory"])
    while memory.size and host_memory < memory.max():
        host_memory *= 2
    host_cores = int(DEFAULT_HOST["cores"])
    while cores.size and host_cores < cores.max():
        host_cores *= 2
    host_cpu = host_cores * DEFAULT_HOST["mhz_per_core"]
    need = max(cpu.sum() / host_cpu, memory.sum() / host_memory, 1.0)
    n_hosts = max(2, math.ceil(need * headroom))
    fleet = _default_fleet(n_hosts, host_memory, host_cores)
    free_mem = fleet.memory.copy()
    free_cpu = fleet.cpu.copy()
    placement = np.full(n, -1, dtype=np.int64)
    for v in np.argsort(-memory, kind="stable"):
        fits = (free_mem >= memory[v]) & (free_cpu >= cpu[v])
        if not fits.any():
            fits = free_mem >= memory[v]
        if not fits.any():
            raise ConfigurationError(f"VM {workload.vm_names[v]} ({memory[v]:.0f} MiB) fits on no host")
        host = int(np.argmax(np.where(fits, free_mem, -np.inf)))
        placement[v] = host
        free_mem[host] -= memory[v]
        free_cpu[host] -= cpu[v]
    return Setup(
        name="default",
        hosts=fleet,
        vm_cpu=cpu,
        vm_memory=memory,
        vm_disk_io=disk,
        vm_network=net,
        vm_cores=cores,
        placement=placement,
        cloudsim=False,
        time_offset=0.0,
        first_step=0,
        last_step=workload.n_steps - 1,
        migration_mbit=5000.0,
        vm_flavors=list(flavors),
    )


def build_setup(workload: Workload, name: str, headroom: float = 1.25) -> Setup:
    if name == "cloudsim":
        return cloudsim_setup(workload)
    if name == "default":
        return default_setup(workload, headroom)
    raise ConfigurationError(f"unknown setup {name!r}; known: {', '.join(SETUPS)}")
