"""The ``cloudsim`` reference setup: CloudSim 4.0's PlanetLab power experiments, quirks included.

800 hosts alternating HP ProLiant ML110 G4 (2 x 1860 MIPS) and G5 (2 x 2660 MIPS), 4096 MB RAM,
1 Gbit/s; VM ``i`` of ``n`` gets type ``i // ceil(n / 4)`` of four single-core types; 5-minute
scheduling over the workload's span. The initial placement is CloudSim's: VMs in order, each on
the host whose power grows least (power-aware best fit) among those with room for its full MIPS,
RAM and bandwidth. Accounting quirks are listed in :class:`cotenancy.sim.cloud.Setup` and
``docs/simulator.md``.
"""

from __future__ import annotations

import math

import numpy as np

from cotenancy.sim.cloud import HostFleet, Setup
from cotenancy.sim.power import power_at, power_table
from cotenancy.sim.workload import Workload

N_HOSTS = 800
HOST_TYPES = (
    # (power model, cores, MIPS per core, RAM MB, bandwidth Mbit/s)
    ("hp-proliant-ml110-g4", 2, 1860.0, 4096.0, 1000.0),
    ("hp-proliant-ml110-g5", 2, 2660.0, 4096.0, 1000.0),
)
#: (MIPS, RAM MB) of the four VM types; one core, 100 Mbit/s each
VM_TYPES = ((2500.0, 870.0), (2000.0, 1740.0), (1000.0, 1740.0), (500.0, 613.0))
VM_BANDWIDTH_MBIT = 100.0
#: CloudSim moves RAM over half the host's bandwidth: RAM_MB / (1000 Mbit/s / 16) = RAM_MB / 62.5 s
MIGRATION_MBIT = 500.0
#: CloudSim's clock: scheduling events fire at k x 300 + 0.1 s
TIME_OFFSET = 0.1


def make_hosts(n_hosts: int = N_HOSTS) -> HostFleet:
    kinds = [HOST_TYPES[i % 2] for i in range(n_hosts)]
    return HostFleet(
        ids=[f"host-{i:04d}" for i in range(n_hosts)],
        cpu=np.array([k[1] * k[2] for k in kinds]),
        cores=np.array([float(k[1]) for k in kinds]),
        memory=np.array([k[3] for k in kinds]),
        disk_io=np.full(n_hosts, np.inf),
        network=np.array([k[4] * 1000.0 / 8.0 for k in kinds]),
        power_models=[k[0] for k in kinds],
        power=np.vstack([power_table(k[0]) for k in kinds]),
        bandwidth_mbit=np.array([k[4] for k in kinds]),
    )


def vm_types(n_vms: int) -> np.ndarray:
    """CloudSim's ``i / ceil(n / 4)`` type assignment (integer division)."""
    per_type = math.ceil(n_vms / 4)
    return np.minimum(np.arange(n_vms) // per_type, 3)


def initial_placement(hosts: HostFleet, vm_cpu: np.ndarray, vm_memory: np.ndarray) -> np.ndarray:
    """CloudSim's first allocation: each VM, in order, where power grows least.

    While being instantiated a VM asks for its full MIPS, RAM and bandwidth; the host must have a
    core at least that fast and that much free capacity. Utilisation (hence power) of every host
    is still 0 when this runs, and a VM already placed asks for nothing more, so the static
    0.7 threshold never refuses.
    """
    n_hosts = hosts.n_hosts
    used = np.zeros(n_hosts)
    ram = np.zeros(n_hosts)
    slots = np.floor(hosts.bandwidth_mbit / VM_BANDWIDTH_MBIT)
    count = np.zeros(n_hosts)
    idle = power_at(hosts.power, np.zeros(n_hosts))
    pe = hosts.pe_mips
    placement = np.full(len(vm_cpu), -1, dtype=np.int64)
    for v, (mips, mem) in enumerate(zip(vm_cpu, vm_memory, strict=True)):
        ok = (pe >= mips) & (hosts.cpu - used >= mips) & (hosts.memory - ram >= mem) & (count < slots)
        cand = np.flatnonzero(ok)
        if cand.size == 0:
            continue
        after = power_at(hosts.power[cand], (used[cand] + mips) / hosts.cpu[cand])
        best = int(cand[int(np.argmin(after - idle[cand]))])
        placement[v] = best
        used[best] += mips
        ram[best] += mem
        count[best] += 1
    return placement


def cloudsim_setup(workload: Workload, n_hosts: int = N_HOSTS) -> Setup:
    """The reference setup for ``workload`` (PlanetLab CPU fractions; other resources ignored)."""
    hosts = make_hosts(n_hosts)
    kinds = vm_types(workload.n_vms)
    vm_cpu = np.array([VM_TYPES[k][0] for k in kinds])
    vm_memory = np.array([VM_TYPES[k][1] for k in kinds])
    placement = initial_placement(hosts, vm_cpu, vm_memory)
    return Setup(
        name="cloudsim",
        hosts=hosts,
        vm_cpu=vm_cpu,
        vm_memory=vm_memory,
        vm_disk_io=np.zeros(workload.n_vms),
        vm_network=np.full(workload.n_vms, VM_BANDWIDTH_MBIT * 1000.0 / 8.0),
        vm_cores=np.ones(workload.n_vms),
        placement=placement,
        cloudsim=True,
        time_offset=TIME_OFFSET,
        first_step=1,
        last_step=workload.n_steps - 1,
        migration_mbit=MIGRATION_MBIT,
        vm_flavors=[f"cloudsim-type-{k}" for k in kinds],
    )
