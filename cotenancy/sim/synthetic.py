"""A synthetic multi-resource workload: the embedded default when no trace is given.

It has the structure that makes co-tenancy decisions matter and that real traces show: daily and
weekly cycles (each group of VMs in its own time zone), bursts shared by a group so its VMs peak
together, batch jobs at scheduled hours, memory that follows CPU loosely, disk and network traffic
tied to the kind of application, and GPUs for a few machine-learning VMs. Everything derives from
one seed, so a run is reproducible.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from cotenancy.model import Resource, Resources
from cotenancy.sim.workload import Workload

#: Monday 2024-01-01 00:00 UTC
DEFAULT_START = float(calendar.timegm((2024, 1, 1, 0, 0, 0)))
MHZ_PER_VCPU = 2400.0


@dataclass(frozen=True, slots=True)
class Flavor:
    name: str
    vcpus: int
    size: Resources


#: A small catalogue in the spirit of OpenStack's default flavors (units: cotenancy.model.resources).
FLAVORS: dict[str, Flavor] = {
    f.name: f
    for f in (
        Flavor("m1.small", 1, Resources(cpu=1 * MHZ_PER_VCPU, memory=2048, disk_io=20_480, network=12_800)),
        Flavor("m1.medium", 2, Resources(cpu=2 * MHZ_PER_VCPU, memory=4096, disk_io=40_960, network=25_600)),
        Flavor("m1.large", 4, Resources(cpu=4 * MHZ_PER_VCPU, memory=8192, disk_io=81_920, network=51_200)),
        Flavor(
            "m1.xlarge", 8, Resources(cpu=8 * MHZ_PER_VCPU, memory=16_384, disk_io=163_840, network=102_400)
        ),
        Flavor("r1.large", 4, Resources(cpu=4 * MHZ_PER_VCPU, memory=32_768, disk_io=81_920, network=51_200)),
        Flavor(
            "g1.xlarge",
            8,
            Resources(cpu=8 * MHZ_PER_VCPU, memory=65_536, disk_io=163_840, network=102_400, gpu=1.0),
        ),
    )
}


@dataclass(frozen=True, slots=True)
class AppProfile:
    """How one kind of application behaves. ``flavors`` are (name, weight) choices."""

    name: str
    share: float
    flavors: tuple[tuple[str, float], ...]
    priority: int
    base: tuple[float, float]  # CPU utilisation at the quietest hour, range drawn from
    daily_amplitude: tuple[float, float]
    weekend_factor: float  # share of the daily swing left on Saturday and Sunday
    memory: tuple[float, float]  # memory utilisation range
    disk_per_cpu: float  # disk I/O utilisation per unit of CPU utilisation
    network_per_cpu: float
    batch: bool = False


PROFILES: tuple[AppProfile, ...] = (
    AppProfile("web", 0.30, (("m1.small", 3), ("m1.medium", 3), ("m1.large", 1)), 7,
               (0.03, 0.10), (0.25, 0.55), 0.45, (0.30, 0.55), 0.15, 0.9),
    AppProfile("database", 0.15, (("m1.large", 2), ("r1.large", 3), ("m1.xlarge", 1)), 8,
               (0.05, 0.15), (0.20, 0.45), 0.55, (0.60, 0.85), 0.9, 0.4),
    AppProfile("cache", 0.10, (("m1.medium", 2), ("r1.large", 2)), 6,
               (0.05, 0.10), (0.15, 0.35), 0.5, (0.70, 0.90), 0.05, 0.8),
    AppProfile("analytics", 0.15, (("m1.large", 2), ("m1.xlarge", 2)), 4,
               (0.02, 0.08), (0.10, 0.30), 0.3, (0.40, 0.70), 0.6, 0.3, batch=True),
    AppProfile("batch", 0.22, (("m1.medium", 2), ("m1.large", 2), ("m1.xlarge", 1)), 2,
               (0.01, 0.05), (0.00, 0.05), 1.0, (0.20, 0.50), 0.5, 0.2, batch=True),
    AppProfile("ml", 0.08, (("g1.xlarge", 1),), 3,
               (0.05, 0.15), (0.05, 0.15), 1.0, (0.50, 0.80), 0.3, 0.3, batch=True),
)  # fmt: skip

#: UTC offsets (hours) of the groups' users
TIME_ZONES = (-8, -5, 0, 1, 1, 2, 8, 9)
SECURITY_LEVELS = ("public", "internal", "internal", "internal", "confidential")
GROUP_SIZE = 20
BURST_RATE_PER_HOUR = 0.15
BURST_DECAY_SECONDS = 1800.0
NOISE_SIGMA = 0.04
NOISE_MEMORY_SECONDS = 1800.0


def _business_day(local_hour: np.ndarray) -> np.ndarray:
    """0 at 04:00 local, 1 at 14:00: a smooth single daily peak of interactive load."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * (local_hour - 4.0) / 20.0)) * (local_hour >= 4.0)


def _ar1(white: np.ndarray, step_seconds: float, memory_seconds: float) -> np.ndarray:
    """Smooth noise along time with unit variance: AR(1) whose correlation time is ``memory_seconds``."""
    rho = float(np.exp(-step_seconds / memory_seconds))
    return lfilter([np.sqrt(1 - rho**2)], [1.0, -rho], white, axis=-1)


def generate_synthetic(
    n_vms: int,
    days: float,
    step_seconds: float = 300.0,
    seed: int = 0,
    start: float = DEFAULT_START,
) -> Workload:
    """``n_vms`` VMs over ``days`` days in steps of ``step_seconds``, deterministic given ``seed``.

    VMs come in groups of about 20 (one application of one tenant) that share a time zone, a daily
    shape and bursts. ``Workload.attributes`` holds per-VM lists ``tenant``, ``app_type``,
    ``priority``, ``security_level``, ``flavor``, ``vcpus`` and ``group``; ``sizes`` come from
    :data:`FLAVORS`.
    """
    if n_vms < 1:
        raise ValueError(f"n_vms must be at least 1, got {n_vms}")
    if not step_seconds > 0 or not days > 0:
        raise ValueError("days and step_seconds must be positive")
    n_steps = max(1, int(round(days * 86_400.0 / step_seconds)))
    rng = np.random.default_rng(seed)

    times = float(start) + step_seconds * np.arange(n_steps)
    n_groups = max(1, -(-n_vms // GROUP_SIZE))
    shares = np.array([p.share for p in PROFILES])
    group_profile = rng.choice(len(PROFILES), size=n_groups, p=shares / shares.sum())
    if n_groups >= len(PROFILES):
        group_profile[: len(PROFILES)] = np.arange(len(PROFILES))  # every kind present in larger fleets
    group_zone = rng.choice(TIME_ZONES, size=n_groups)
    group_phase = rng.normal(0.0, 0.75, size=n_groups)  # hours, within a zone
    n_tenants = max(1, n_groups // 3)
    group_tenant = rng.integers(0, n_tenants, size=n_groups)
    tenant_security = rng.choice(SECURITY_LEVELS, size=n_tenants)
    group_job_hour = rng.choice([0.0, 1.0, 2.0, 3.0, 22.0, 23.0], size=n_groups)
    group_job_hours = rng.uniform(1.0, 3.0, size=n_groups)
    group_weekly_job = rng.random(n_groups) < 0.3

    vm_group = np.sort(rng.integers(0, n_groups, size=n_vms))
    vm_group[:n_groups] = np.arange(min(n_groups, n_vms))
    vm_group = np.sort(vm_group)
    vm_profile = group_profile[vm_group]

    flavor_names: list[str] = []
    for profile_index in vm_profile:
        names, weights = zip(*PROFILES[profile_index].flavors, strict=True)
        w = np.array(weights, dtype=float)
        flavor_names.append(str(names[rng.choice(len(names), p=w / w.sum())]))

    def per_vm(range_of) -> np.ndarray:
        low = np.array([range_of(PROFILES[p])[0] for p in vm_profile])
        high = np.array([range_of(PROFILES[p])[1] for p in vm_profile])
        return rng.uniform(low, high)

    base = per_vm(lambda p: p.base)
    amplitude = per_vm(lambda p: p.daily_amplitude)
    memory_level = per_vm(lambda p: p.memory)
    weekend = np.array([PROFILES[p].weekend_factor for p in vm_profile])
    disk_per_cpu = np.array([PROFILES[p].disk_per_cpu for p in vm_profile]) * rng.uniform(0.5, 1.5, n_vms)
    net_per_cpu = np.array([PROFILES[p].network_per_cpu for p in vm_profile]) * rng.uniform(0.5, 1.5, n_vms)
    is_batch = np.array([PROFILES[p].batch for p in vm_profile])

    # local time of every group at every step
    local_hours = (
        times[None, :] / 3600.0 + group_zone[:, None] + group_phase[:, None]
    ) % 24.0  # (n_groups, n_steps)
    local_days = np.floor((times[None, :] / 3600.0 + group_zone[:, None]) / 24.0).astype(np.int64)
    weekday = (local_days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    is_weekend = weekday >= 5
    daily = _business_day(local_hours)

    # scheduled jobs: every night at the group's hour, plus a long Sunday run for some groups
    since_job = (local_hours - group_job_hour[:, None]) % 24.0
    job = since_job < group_job_hours[:, None]
    job |= group_weekly_job[:, None] & (weekday == 6) & (local_hours >= 6.0) & (local_hours < 12.0)

    # group bursts: Poisson onsets, exponential decay; every VM of the group feels them
    onsets = rng.random((n_groups, n_steps)) < BURST_RATE_PER_HOUR * step_seconds / 3600.0
    heights = np.zeros((n_groups, n_steps))
    heights[onsets] = rng.uniform(0.15, 0.5, size=int(onsets.sum()))
    decay = float(np.exp(-step_seconds / BURST_DECAY_SECONDS))
    bursts = lfilter([1.0], [1.0, -decay], heights, axis=-1)

    g = vm_group
    swing = np.where(is_weekend[g], weekend[:, None], 1.0) * daily[g]
    cpu = base[:, None] + amplitude[:, None] * swing
    job_level = rng.uniform(0.55, 0.95, size=n_vms)
    cpu = np.where(is_batch[:, None] & job[g], np.maximum(cpu, job_level[:, None]), cpu)
    cpu += bursts[g] * rng.uniform(0.5, 1.2, size=n_vms)[:, None]
    cpu += NOISE_SIGMA * _ar1(rng.standard_normal((n_vms, n_steps)), step_seconds, NOISE_MEMORY_SECONDS)
    # a few short spikes of a single VM
    n_spikes = int(rng.binomial(n_vms * n_steps, 0.002))
    cpu.ravel()[rng.integers(0, n_vms * n_steps, size=n_spikes)] += rng.uniform(0.2, 0.6, size=n_spikes)
    np.clip(cpu, 0.0, 1.0, out=cpu)

    memory = 0.15 * (cpu - cpu.mean(axis=1, keepdims=True))
    memory += memory_level[:, None]
    memory += 0.02 * _ar1(rng.standard_normal((n_vms, n_steps)), step_seconds, 4 * 3600.0)
    np.clip(memory, 0.05, 1.0, out=memory)

    # disk and network traffic follow CPU with a common burstiness (requests do both)
    io_load = np.exp(0.3 * _ar1(rng.standard_normal((n_vms, n_steps)), step_seconds, 900.0))
    io_load *= cpu
    disk_io = np.clip(disk_per_cpu[:, None] * io_load, 0.0, 1.0)
    network = np.clip(net_per_cpu[:, None] * io_load, 0.0, 1.0)

    utilisation: dict[Resource, np.ndarray] = {
        Resource.CPU: cpu,
        Resource.MEMORY: memory,
        Resource.DISK_IO: disk_io,
        Resource.NETWORK: network,
    }
    has_gpu = np.array([FLAVORS[f].size.gpu > 0 for f in flavor_names])
    if has_gpu.any():
        # training runs: the GPU is busy while the group's job runs, nearly idle otherwise
        gpu = np.where(job[g], rng.uniform(0.7, 1.0, size=n_vms)[:, None], 0.02)
        gpu = np.where(has_gpu[:, None], gpu, 0.0)
        utilisation[Resource.GPU] = gpu

    priority_jitter = rng.integers(-1, 2, size=n_vms)
    priorities = np.clip(np.array([PROFILES[p].priority for p in vm_profile]) + priority_jitter, 0, 10)
    width = len(str(n_vms - 1))
    attributes = {
        "tenant": [f"tenant-{group_tenant[gi]:02d}" for gi in vm_group],
        "app_type": [PROFILES[p].name for p in vm_profile],
        "priority": [str(int(p)) for p in priorities],
        "security_level": [str(tenant_security[group_tenant[gi]]) for gi in vm_group],
        "flavor": flavor_names,
        "vcpus": [str(FLAVORS[f].vcpus) for f in flavor_names],
        "group": [f"group-{gi:03d}" for gi in vm_group],
    }
    return Workload(
        vm_names=[f"vm-{i:0{width}d}" for i in range(n_vms)],
        step_seconds=float(step_seconds),
        start=float(start),
        utilisation=utilisation,
        sizes=[FLAVORS[f].size for f in flavor_names],
        source=f"synthetic(n_vms={n_vms}, days={days:g}, step_seconds={step_seconds:g}, seed={seed})",
        attributes=attributes,
    )
