"""The simulated cloud: hosts, VMs replaying a workload, migrations, contention and interference.

Time moves in scheduling steps of ``workload.step_seconds``. Within a step the cloud is event driven
only where it matters: each distinct migration completion time is an update point, exactly as in
CloudSim's ``PowerDatacenter`` (a migration lasts ``RAM / migration_bandwidth`` seconds; meanwhile
the source gives the VM 90 % of its request and the target reserves 10 % of it).

In the ``cloudsim`` setup CPU is shared the way CloudSim's ``VmSchedulerTimeSharedOverSubscription``
shares it: a VM gets at most one core; when a host's requests exceed its capacity every VM is
scaled down in proportion (and rounded down to whole MHz). In the ``default`` setup a migration's
target keeps its reservation and the rest is shared like a proportional-share scheduler: by
``shares``, each VM capped at what it asks, and nothing left idle while a VM still asks
(:func:`_water_fill`). Other resources (memory, disk I/O, network) are shared in proportion to
demand when oversubscribed. On top of capacity, co-located VMs slow each other down
through shared cache and memory bandwidth (:class:`cotenancy.sim.interference.InterferenceModel`);
the per-VM pressure and sensitivity behind that are drawn once and never leave this module.

All state lives in numpy arrays indexed by VM and host number so one day of 1,000 VMs on 800 hosts
runs in seconds. The model is documented in ``docs/simulator.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from cotenancy.exceptions import ActionFailed, NotFound
from cotenancy.model import Resource
from cotenancy.sim.power import power_at
from cotenancy.sim.workload import Workload

#: a VM that got less than this share of what it asked for is in conflict
CONFLICT_THRESHOLD = 0.9
#: CloudSim: source keeps 90 % of a migrating VM's request, target reserves 10 %
MIGRATION_SOURCE_SHARE = 0.9
MIGRATION_TARGET_SHARE = 0.1


@dataclass(slots=True)
class HostFleet:
    """Hosts as arrays. CPU in MHz (CloudSim MIPS), memory in MiB, I/O in KiB/s."""

    ids: list[str]
    cpu: np.ndarray
    cores: np.ndarray
    memory: np.ndarray
    disk_io: np.ndarray
    network: np.ndarray
    power_models: list[str]
    power: np.ndarray
    bandwidth_mbit: np.ndarray

    @property
    def n_hosts(self) -> int:
        return len(self.ids)

    @property
    def pe_mips(self) -> np.ndarray:
        return self.cpu / self.cores


@dataclass(slots=True)
class Setup:
    """How a workload is turned into a cloud: hosts, VM sizes, initial placement and accounting.

    ``cloudsim`` switches on CloudSim 4.0's accounting quirks (see docs/simulator.md):
    VMs whose CPU request is exactly 0 at an update are retired; requests are read 0.1 s after
    each step boundary (interpolated, as CloudSim's clock runs at k x 300 + 0.1 s); RAM is not
    checked for migrations; energy of a host whose utilisation at the start of a segment is 0 is 0.
    """

    name: str
    hosts: HostFleet
    vm_cpu: np.ndarray
    vm_memory: np.ndarray
    vm_disk_io: np.ndarray
    vm_network: np.ndarray
    vm_cores: np.ndarray
    placement: np.ndarray
    cloudsim: bool = False
    time_offset: float = 0.0
    first_step: int = 0
    last_step: int | None = None
    migration_mbit: float = 500.0
    vm_flavors: list[str] = field(default_factory=list)


@dataclass(slots=True)
class CpuState:
    """CPU allocation at one instant (arrays by VM / by host)."""

    request: np.ndarray
    allocated: np.ndarray
    incoming: np.ndarray
    host_used: np.ndarray
    host_requested: np.ndarray
    host_utilisation: np.ndarray
    #: hosts drawing power: CloudSim's, those with CPU in use; the default setup's, those holding
    #: a VM or a migration's reservation (a host with VMs cannot be switched off)
    host_powered: np.ndarray
    #: reservations on migration targets: VM, host and MHz of each
    in_vm: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    in_host: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    in_alloc: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass(slots=True)
class Accounting:
    """Running totals of CloudSim's metrics and of conflicts."""

    energy_joules: float = 0.0
    sla_violation_seconds: float = 0.0
    active_seconds: float = 0.0
    requested_mips_seconds: float = 0.0
    allocated_mips_seconds: float = 0.0
    migration_underallocated: float = 0.0
    migrations_started: int = 0
    migrations_completed: int = 0
    conflict_seconds: float = 0.0


@dataclass(slots=True)
class StepFrame:
    """What the cloud shows for one scheduling step (per VM arrays, NaN where not running)."""

    timestamp: float
    metrics: dict[str, np.ndarray]
    running: np.ndarray
    host_of: np.ndarray


class SimulatedCloud:
    """A cloud replaying ``workload`` on ``setup``; see the module docstring for the model."""

    def __init__(
        self,
        workload: Workload,
        setup: Setup,
        interference: object | None = None,
        seed: int = 0,
        vm_ids: Sequence[str] | None = None,
    ) -> None:
        self.workload = workload
        self.setup = setup
        self.hosts = setup.hosts
        self.n_vms = workload.n_vms
        self.n_hosts = setup.hosts.n_hosts
        self.vm_ids = list(vm_ids) if vm_ids is not None else list(workload.vm_names)
        self.host_index = {h: i for i, h in enumerate(self.hosts.ids)}
        self.vm_index = {v: i for i, v in enumerate(self.vm_ids)}
        self.step_seconds = float(workload.step_seconds)
        self.quirks = setup.cloudsim
        cpu = np.nan_to_num(workload.utilisation[Resource.CPU], nan=0.0)
        # CloudSim's PlanetLab model repeats the last sample so interpolation past it is defined
        self._cpu = np.concatenate([cpu, cpu[:, -1:]], axis=1)
        self._other = {
            r: np.concatenate([np.nan_to_num(u, nan=0.0), np.nan_to_num(u[:, -1:], nan=0.0)], axis=1)
            for r, u in workload.utilisation.items()
            if r in (Resource.MEMORY, Resource.DISK_IO, Resource.NETWORK)
        }
        self.vm_cpu = setup.vm_cpu.astype(float).copy()
        self.vm_memory = setup.vm_memory.astype(float).copy()
        self.vm_disk_io = setup.vm_disk_io.astype(float).copy()
        self.vm_network = setup.vm_network.astype(float).copy()
        #: the sizes the trace's fractions are of: what a VM's workload asks for stays the trace's
        #: fraction of these whatever it is resized to (a resize changes what it may get)
        self.trace_cpu = self.vm_cpu.copy()
        self.trace_size = {
            Resource.MEMORY: self.vm_memory.copy(),
            Resource.DISK_IO: self.vm_disk_io.copy(),
            Resource.NETWORK: self.vm_network.copy(),
        }
        self.vm_cores = setup.vm_cores.astype(float).copy()
        self.vm_limit = np.full(self.n_vms, np.inf)
        self.vm_shares = np.full(self.n_vms, 1000.0)
        #: bumped whenever a VM's size or allocation changes (lets the driver cache records)
        self.vm_version = np.zeros(self.n_vms, dtype=np.int64)
        self.vm_host = setup.placement.astype(np.int64).copy()
        self.vm_target = np.full(self.n_vms, -1, dtype=np.int64)
        self.vm_migration_end = np.full(self.n_vms, np.inf)
        self.vm_migration_source = np.full(self.n_vms, -1, dtype=np.int64)
        self.vm_migration_start = np.full(self.n_vms, np.nan)
        self._ghosts: list[tuple[int, int, float]] = []
        self.vm_retired = np.zeros(self.n_vms, dtype=bool)
        self.vm_retired_at = np.full(self.n_vms, np.nan)
        self._seq_counter = self.n_vms
        self.vm_seq = np.arange(self.n_vms, dtype=np.int64)
        self.host_maintenance = np.zeros(self.n_hosts, dtype=bool)
        self.acc = Accounting()
        self.step = setup.first_step
        self.last_step = (workload.n_steps - 1) if setup.last_step is None else setup.last_step
        self.time = self._time_of(self.step)
        self._interference = interference
        self._rng = np.random.default_rng(seed)
        self._traits = interference.draw_traits(self.n_vms, self._rng) if interference is not None else None
        # CloudSim's state-history entries (what held since the last update)
        self._host_alloc = np.zeros(self.n_hosts)
        self._host_req = np.zeros(self.n_hosts)
        self._host_active = np.zeros(self.n_hosts, dtype=bool)
        self._host_entry = False
        self._vm_alloc = np.zeros(self.n_vms)
        self._vm_req = np.zeros(self.n_vms)
        self._vm_mig = np.zeros(self.n_vms, dtype=bool)
        self._vm_entry = np.zeros(self.n_vms, dtype=bool)
        self._u_start = np.zeros(self.n_hosts)
        self._host_powered = np.zeros(self.n_hosts, dtype=bool)
        self._last_update: float | None = None
        self.frames: list[StepFrame] = []
        self.events: list[object] = []
        #: scheduling step of each event (non-decreasing), for windowed lookups
        self.event_steps: list[int] = []
        #: one entry per scheduling step, stamped with its start: the state observed then and the
        #: migrations started in the step (see start_migration)
        self.series: dict[str, list[float]] = {
            "time": [],
            "active_hosts": [],
            "mean_host_utilisation": [],
            "overloaded_hosts": [],
            "migrations": [],
            "degraded_vms": [],
            "power_watts": [],
            "running_vms": [],
            # energy used since the start, so any span's energy is a difference of two entries
            "energy_kwh": [],
        }
        self._update(self.time, scheduling=True)

    # ----------------------------------------------------------------- time and demand
    def _time_of(self, step: int) -> float:
        return self.workload.start + step * self.step_seconds + self.setup.time_offset

    @property
    def finished(self) -> bool:
        return self.step >= self.last_step

    def _fraction(self, table: np.ndarray, t: float) -> np.ndarray:
        """Demand fraction at time ``t``: the sample at a step boundary, linear in between."""
        pos = (t - self.workload.start) / self.step_seconds
        i1 = min(int(math.floor(pos)), table.shape[1] - 1)
        i2 = min(int(math.ceil(pos)), table.shape[1] - 1)
        if i1 == i2 or pos == i1:
            return table[:, i1]
        u1, u2 = table[:, i1], table[:, i2]
        delta = (u2 - u1) / ((i2 - i1) * self.step_seconds)
        return u1 + delta * (t - self.workload.start - i1 * self.step_seconds)

    @property
    def running(self) -> np.ndarray:
        return (self.vm_host >= 0) & ~self.vm_retired

    # ----------------------------------------------------------------- CPU allocation
    def cpu_state(self, t: float) -> CpuState:
        """Requests and allocations of every VM and host at time ``t`` (no side effects)."""
        running = self.running
        request = np.where(running, self._fraction(self._cpu, t) * self.trace_cpu, 0.0)
        limit = np.minimum(self.vm_limit, _resized_cap(self.vm_cpu, self.trace_cpu))
        res = np.flatnonzero(running)
        h_res = self.vm_host[res]
        pe = self.hosts.pe_mips
        capped = np.minimum(np.minimum(request[res], pe[h_res] * self.vm_cores[res]), limit[res])
        inc = np.flatnonzero(self.vm_target >= 0)
        h_in = self.vm_target[inc]
        if self._ghosts:
            inc = np.concatenate([inc, np.array([g[0] for g in self._ghosts], dtype=np.int64)])
            h_in = np.concatenate([h_in, np.array([g[1] for g in self._ghosts], dtype=np.int64)])
        capped_in = np.minimum(np.minimum(request[inc], pe[h_in] * self.vm_cores[inc]), limit[inc])
        nh = self.n_hosts
        cap = self.hosts.cpu
        out = self.vm_target[res] >= 0
        reserve = capped_in * MIGRATION_TARGET_SHARE
        if self.quirks:
            required = np.bincount(h_res, capped, nh) + np.bincount(h_in, reserve, nh)
            over = required > cap
            factor = np.where(over, cap / np.where(required > 0, required, 1.0), 1.0)
            scaled = capped * factor[h_res]
            alloc_over = np.floor(np.where(out, scaled * MIGRATION_SOURCE_SHARE, scaled))
            alloc_norm = np.where(out, capped * MIGRATION_SOURCE_SHARE, capped)
            allocated_res = np.where(over[h_res], alloc_over, alloc_norm)
            in_alloc = np.where(over[h_in], np.floor(reserve * factor[h_in]), reserve)
        else:
            reserved = np.bincount(h_in, reserve, nh)
            fits = np.where(reserved > cap, cap / np.where(reserved > 0, reserved, 1.0), 1.0)
            in_alloc = reserve * fits[h_in]
            spare = cap - np.bincount(h_in, in_alloc, nh)
            given = _water_fill(h_res, capped, self.vm_shares[res], spare)
            allocated_res = np.where(out, given * MIGRATION_SOURCE_SHARE, given)
        contribution = np.where(out, allocated_res / MIGRATION_SOURCE_SHARE, allocated_res)
        used = np.bincount(h_res, contribution, nh) + np.bincount(h_in, in_alloc, nh)
        host_req = np.bincount(h_res, request[res], nh) + np.bincount(h_in, request[inc], nh)
        allocated = np.zeros(self.n_vms)
        allocated[res] = allocated_res
        incoming = np.zeros(self.n_vms)
        np.add.at(incoming, inc, in_alloc)
        util = used / cap
        util = np.where((util > 1) & (util < 1.01), 1.0, util)
        if self.quirks:
            powered = used > 0
        else:
            powered = np.bincount(h_res, minlength=nh) + np.bincount(h_in, minlength=nh) > 0
        return CpuState(request, allocated, incoming, used, host_req, util, powered, inc, h_in, in_alloc)

    # ----------------------------------------------------------------- accounting
    def _account(self, t: float, state: CpuState) -> None:
        """Close the segment since the last update with the entries that held during it."""
        if self._last_update is None:
            return
        dt = t - self._last_update
        if dt <= 0:
            return
        acc = self.acc
        u0 = self._u_start
        p0 = power_at(self.hosts.power, u0)
        p1 = power_at(self.hosts.power, state.host_utilisation)
        if self.quirks:
            acc.energy_joules += float(np.sum(np.where(u0 > 0, (p0 + (p1 - p0) / 2.0) * dt, 0.0)))
        else:
            on = self._host_powered
            acc.energy_joules += float(np.sum(np.where(on, (p0 + p1) / 2.0 * dt, 0.0)))
        if self._host_entry:
            active = self._host_active
            acc.active_seconds += dt * int(active.sum())
            acc.sla_violation_seconds += dt * int((active & (self._host_alloc < self._host_req)).sum())
        has = self._vm_entry
        acc.requested_mips_seconds += float(np.sum(self._vm_req[has])) * dt
        acc.allocated_mips_seconds += float(np.sum(self._vm_alloc[has])) * dt
        short = has & self._vm_mig & (self._vm_alloc < self._vm_req)
        acc.migration_underallocated += float(np.sum(self._vm_req[short] - self._vm_alloc[short])) * dt

    def _record(self, t: float, state: CpuState) -> None:
        """New state-history entries (replacing any earlier entry at the same time)."""
        self._host_alloc = state.host_used
        self._host_req = state.host_requested
        self._host_active = state.host_used > 0
        self._host_entry = True
        running = self.running
        self._vm_entry = running.copy()
        self._vm_alloc = state.allocated
        self._vm_req = state.request
        self._vm_mig = running & (self.vm_target >= 0)
        self._u_start = state.host_utilisation
        self._host_powered = state.host_powered
        self._last_update = t

    def _retire_zero_requests(self, state: CpuState, t: float) -> None:
        if not self.quirks:
            return
        gone = self.running & (self.vm_target < 0) & (state.request == 0.0)
        if gone.any():
            self.vm_retired[gone] = True
            self.vm_retired_at[gone] = t
            self.vm_host[gone] = -1

    def _update(self, t: float, scheduling: bool) -> CpuState:
        state = self.cpu_state(t)
        self._account(t, state)
        self._record(t, state)
        if scheduling:
            self._observe_step(t, state)
        self._retire_zero_requests(state, t)
        return state

    # ----------------------------------------------------------------- observation
    def _other_delivery(
        self, t: float, running: np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray, list[str]]:
        """Usage and delivered share of memory, disk I/O and network (proportional sharing)."""
        usage: dict[str, np.ndarray] = {}
        worst = np.ones(self.n_vms)
        cause = np.full(self.n_vms, "", dtype=object)
        names: list[str] = []
        sizes = {
            Resource.MEMORY: self.vm_memory,
            Resource.DISK_IO: self.vm_disk_io,
            Resource.NETWORK: self.vm_network,
        }
        caps = {
            Resource.MEMORY: self.hosts.memory,
            Resource.DISK_IO: self.hosts.disk_io,
            Resource.NETWORK: self.hosts.network,
        }
        res = np.flatnonzero(running)
        h = self.vm_host[res]
        for resource, size in sizes.items():
            traced = self.trace_size[resource]
            if resource in self._other:
                demand = np.where(running, self._fraction(self._other[resource], t) * traced, 0.0)
            elif resource is Resource.MEMORY:
                demand = np.where(running, traced, 0.0)
            else:
                continue
            names.append(resource.value)
            held = np.minimum(demand, _resized_cap(size, traced))
            # what a VM resized below its workload's demand holds, as a share of that demand
            with np.errstate(divide="ignore", invalid="ignore"):
                own = np.where(demand > 0, held / demand, 1.0)
            total = np.bincount(h, held[res], self.n_hosts)
            cap = caps[resource]
            share = np.where(total > cap, cap / np.where(total > 0, total, 1.0), 1.0)
            delivered = np.ones(self.n_vms)
            delivered[res] = np.minimum(share[h], own[res])
            usage[resource.value] = np.where(running, demand * delivered, np.nan)
            if not self.quirks:
                worse = delivered < worst
                cause[worse] = resource.value
                worst = np.minimum(worst, delivered)
        return usage, worst, cause

    def _observe_step(self, t: float, state: CpuState) -> None:
        """Metrics, degradation events and time series of one scheduling step."""
        from cotenancy.model import Event, EventKind

        running = self.running
        # what a VM's own live migration costs it is PDM's, not contention: a VM in flight counts
        # as getting what its source spends on it, in ``cpu`` as in ``cpu_ready`` and conflicts
        got = np.where(self.vm_target >= 0, state.allocated / MIGRATION_SOURCE_SHARE, state.allocated)
        with np.errstate(divide="ignore", invalid="ignore"):
            cpu_share = np.where(state.request > 0, got / state.request, 1.0)
        slowdown = np.zeros(self.n_vms)
        if self._traits is not None:
            activity = np.where(running, np.clip(state.request / np.maximum(self.trace_cpu, 1e-9), 0, 1), 0.0)
            host_index = np.where(running, self.vm_host, -1)
            slowdown = np.asarray(
                self._interference.slowdown(self._traits, host_index, activity, self.n_hosts), dtype=float
            )
            slowdown = np.where(running, np.clip(slowdown, 0.0, 1.0), 0.0)
        usage, other_share, other_cause = self._other_delivery(t, running)
        delivered = np.minimum(cpu_share, other_share) * (1.0 - slowdown)
        asking = running & (state.request > 0)
        degraded = asking & (delivered < CONFLICT_THRESHOLD)
        self.acc.conflict_seconds += float(degraded.sum()) * self.step_seconds
        cpu_metric = got if self.quirks else got * (1.0 - slowdown)
        metrics = {
            "cpu": np.where(running, cpu_metric, np.nan),
            "cpu_demand": np.where(running, state.request, np.nan),
            "cpu_ready": np.where(running, np.clip(1.0 - delivered, 0.0, 1.0), np.nan),
        }
        metrics.update(usage)
        self.frames.append(StepFrame(t, metrics, running.copy(), self.vm_host.copy()))
        if degraded.any():
            idx = np.flatnonzero(degraded)
            hosts = self.vm_host[idx]
            members_by_host: dict[int, list[int]] = {}
            for v in np.flatnonzero(running):
                members_by_host.setdefault(int(self.vm_host[v]), []).append(int(v))
            capacity_short = cpu_share < CONFLICT_THRESHOLD
            for host in np.unique(hosts):
                vms = idx[hosts == host]
                shortfall = 1.0 - delivered[vms]
                if capacity_short[vms].any():
                    resource = "cpu"
                elif not self.quirks and (other_share[vms] < CONFLICT_THRESHOLD).any():
                    resource = str(other_cause[vms][np.argmin(other_share[vms])])
                else:
                    resource = "interference"
                self.event_steps.append(self.step)
                self.events.append(
                    Event(
                        timestamp=t,
                        kind=EventKind.DEGRADATION,
                        vm_ids=tuple(self.vm_ids[v] for v in vms),
                        host_id=self.hosts.ids[int(host)],
                        duration=self.step_seconds,
                        severity=float(shortfall.max()),
                        resource=resource,
                        source="simulated",
                        details={"neighbours": ",".join(self.vm_ids[v] for v in members_by_host[int(host)])},
                    )
                )
        active = state.host_powered
        s = self.series
        s["time"].append(t)
        s["active_hosts"].append(float(active.sum()))
        s["mean_host_utilisation"].append(
            float(state.host_utilisation[active].mean()) if active.any() else 0.0
        )
        s["overloaded_hosts"].append(float((active & (state.host_used < state.host_requested)).sum()))
        s["migrations"].append(0.0)
        s["degraded_vms"].append(float(degraded.sum()))
        s["power_watts"].append(
            float(np.sum(np.where(active, power_at(self.hosts.power, state.host_utilisation), 0.0)))
        )
        s["running_vms"].append(float(running.sum()))
        s["energy_kwh"].append(self.acc.energy_joules / 3.6e6)

    # ----------------------------------------------------------------- actions
    def _vm(self, vm_id: str) -> int:
        try:
            return self.vm_index[vm_id]
        except KeyError:
            raise NotFound(f"no VM {vm_id!r} in the simulated cloud") from None

    def _host(self, host_id: str) -> int:
        try:
            return self.host_index[host_id]
        except KeyError:
            raise NotFound(f"no host {host_id!r} in the simulated cloud") from None

    def start_migration(self, vm_id: str, target_host_id: str) -> float:
        """Begin a live migration; returns the simulated time it completes."""
        v = self._vm(vm_id)
        target = self._host(target_host_id)
        if self.vm_retired[v]:
            raise NotFound(f"VM {vm_id} was retired at {self.vm_retired_at[v]:.1f} (zero CPU request)")
        if self.vm_host[v] < 0:
            raise ActionFailed(f"VM {vm_id} is not running")
        if self.vm_host[v] == target:
            raise ActionFailed(f"VM {vm_id} already runs on {target_host_id}")
        if self.host_maintenance[target]:
            raise ActionFailed(f"host {target_host_id} is in maintenance")
        if self.vm_target[v] >= 0:
            if self.vm_migration_start[v] != self.time or self.vm_target[v] == target or not self.quirks:
                raise ActionFailed(f"VM {vm_id} is already migrating")
            # CloudSim executes a VM's second entry of the same migration map too: the VM ends on
            # the later target, both count as migrations, and the first target keeps its 10 %
            # reservation until the migration ends
            self._ghosts.append((v, int(self.vm_target[v]), float(self.vm_migration_end[v])))
            self.vm_target[v] = -1
        if not self.quirks:
            committed = self.memory_committed()
            if committed[target] + self.vm_memory[v] > self.hosts.memory[target] + 1e-6:
                raise ActionFailed(
                    f"host {target_host_id} lacks memory for {vm_id}: "
                    f"{committed[target]:.0f}+{self.vm_memory[v]:.0f} > {self.hosts.memory[target]:.0f} MiB"
                )
        duration = self.vm_memory[v] * 8.0 / self.setup.migration_mbit
        self.vm_target[v] = target
        self.vm_migration_source[v] = self.vm_host[v]
        self.vm_migration_end[v] = self.time + duration
        self.vm_migration_start[v] = self.time
        self.acc.migrations_started += 1
        # counted in the step that started it: the series entry of the current step, whose state
        # (observed at its start) the plan was made on
        self.series["migrations"][-1] += 1.0
        return float(self.vm_migration_end[v])

    def memory_committed(self) -> np.ndarray:
        """MiB of VM sizes placed on or migrating to each host."""
        running = self.running
        out = np.bincount(self.vm_host[running], self.vm_memory[running], self.n_hosts)
        inc = self.vm_target >= 0
        return out + np.bincount(self.vm_target[inc], self.vm_memory[inc], self.n_hosts)

    def resize(
        self,
        vm_id: str,
        cpu: float | None = None,
        memory: float | None = None,
        cores: int | None = None,
        disk_io: float | None = None,
        network: float | None = None,
    ) -> None:
        """A new size: what the VM may get, not what its workload asks for. A CPU size without
        ``cores`` gets the vCPUs a cloud would give it: the MHz at the VM's MHz per vCPU, rounded
        up. Memory must fit on the host, and on the one a live migration is taking it to."""
        v = self._vm(vm_id)
        if self.vm_retired[v]:
            raise NotFound(f"VM {vm_id} was retired")
        if memory is not None and not self.quirks:
            committed = self.memory_committed()
            for host in (self.vm_host[v], self.vm_target[v]):
                if host < 0:
                    continue
                if committed[host] - self.vm_memory[v] + memory > self.hosts.memory[host] + 1e-6:
                    raise ActionFailed(
                        f"host {self.hosts.ids[host]} of {vm_id} lacks memory for {memory:.0f} MiB"
                    )
        if cpu is not None:
            if cpu <= 0:
                raise ActionFailed("CPU size must be positive")
            self.vm_cpu[v] = cpu
            if cores is None:
                per_core = self.trace_cpu[v] / max(float(self.setup.vm_cores[v]), 1.0)
                cores = max(1, math.ceil(cpu / per_core - 1e-9))
        if memory is not None:
            self.vm_memory[v] = memory
        if cores is not None:
            self.vm_cores[v] = cores
        if disk_io is not None:
            self.vm_disk_io[v] = disk_io
        if network is not None:
            self.vm_network[v] = network
        self.vm_version[v] += 1

    def set_allocation(self, vm_id: str, limit_cpu: float | None, shares: int) -> None:
        v = self._vm(vm_id)
        if not shares > 0:
            raise ActionFailed(f"CPU shares must be positive, got {shares!r}: the split weighs VMs by them")
        self.vm_limit[v] = np.inf if limit_cpu is None else float(limit_cpu)
        self.vm_shares[v] = float(shares)
        self.vm_version[v] += 1

    def set_maintenance(self, host_id: str, enabled: bool) -> None:
        self.host_maintenance[self._host(host_id)] = enabled

    # ----------------------------------------------------------------- advancing time
    def _complete_migrations(self, t: float, done: np.ndarray) -> None:
        from cotenancy.model import Event, EventKind

        for v in done:
            source = int(self.vm_migration_source[v])
            target = int(self.vm_target[v])
            self.vm_host[v] = target
            self.vm_target[v] = -1
            self.vm_migration_end[v] = np.inf
            self.vm_migration_source[v] = -1
            self.vm_seq[v] = self._seq_counter
            self._seq_counter += 1
            self.acc.migrations_completed += 1
            self.event_steps.append(self.step + 1)
            self.events.append(
                Event(
                    timestamp=t,
                    kind=EventKind.MIGRATION,
                    vm_ids=(self.vm_ids[v],),
                    host_id=self.hosts.ids[target],
                    source="simulated",
                    details={"from": self.hosts.ids[source], "to": self.hosts.ids[target]},
                )
            )

    def advance_step(self) -> None:
        """Run the cloud to the next scheduling step (migration completions included)."""
        if self.finished:
            return
        t = self.time
        state = self.cpu_state(t)
        self._record(t, state)
        t_next = self._time_of(self.step + 1)
        ends = np.concatenate([self.vm_migration_end[self.vm_target >= 0], [g[2] for g in self._ghosts]])
        for b in np.unique(ends[ends < t_next]):
            b = float(b)
            mid = self.cpu_state(b)
            self._account(b, mid)
            done = np.flatnonzero((self.vm_target >= 0) & (self.vm_migration_end == b))
            self._ghosts = [g for g in self._ghosts if g[2] > b]
            self._complete_migrations(b, done)
            after = self.cpu_state(b)
            self._record(b, after)
            self._retire_zero_requests(after, b)
        self.step += 1
        self.time = t_next
        self._update(t_next, scheduling=True)

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of simulated time pass, step by step."""
        target = self.time + seconds - 1e-6
        while not self.finished and self._time_of(self.step + 1) <= target + 1e-6:
            self.advance_step()

    # ----------------------------------------------------------------- results
    def metrics(self) -> dict[str, float]:
        """Energy (kWh), SLATAH/PDM/SLAV (%), ESV, migrations and conflict minutes."""
        acc = self.acc
        slatah = acc.sla_violation_seconds / acc.active_seconds if acc.active_seconds else 0.0
        pdm = acc.migration_underallocated / acc.requested_mips_seconds if acc.requested_mips_seconds else 0.0
        energy = acc.energy_joules / 3.6e6
        slav = slatah * pdm
        return {
            "energy_kwh": energy,
            "slatah": slatah * 100.0,
            "pdm": pdm * 100.0,
            "slav": slav * 100.0,
            "esv": energy * slav,
            "migrations": acc.migrations_started,
            "conflict_minutes": acc.conflict_seconds / 60.0,
            "retired_vms": int(self.vm_retired.sum()),
            "running_vms": int(self.running.sum()),
        }


def _water_fill(host: np.ndarray, demand: np.ndarray, weight: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """What each VM gets when every host shares its ``capacity`` by ``weight``, capped at each VM's
    ``demand``: a proportional-share (CFS-like) scheduler, work-conserving, so what a VM leaves
    below its weighted share goes to those still asking. Weights must be positive.

    All hosts at once: a VM is satisfied once the host's fill level passes ``demand / weight``;
    sorted by that level, the satisfied VMs of a host are a prefix, and the level that spends the
    capacity follows from the prefix's demand and the rest's weight. A host that can give every VM
    all it asks does so exactly (no rounding may leave a VM a fraction of a MHz short).
    """
    level = demand / weight
    order = np.lexsort((level, host))
    h, d, w, lv = host[order], demand[order], weight[order], level[order]
    n = capacity.size
    first = np.searchsorted(h, np.arange(n))
    cd, cw = np.cumsum(d), np.cumsum(w)
    d_through = cd - np.concatenate([[0.0], cd])[first][h]
    w_through = cw - np.concatenate([[0.0], cw])[first][h]
    w_total = np.bincount(h, w, n)
    roomy = np.bincount(h, d, n) <= capacity
    satisfied = roomy[h] | (d_through + lv * (w_total[h] - w_through) <= capacity[h])
    w_left = w_total - np.bincount(h, np.where(satisfied, w, 0.0), n)
    d_left = capacity - np.bincount(h, np.where(satisfied, d, 0.0), n)
    fill = np.where(w_left > 0, np.maximum(d_left, 0.0) / np.where(w_left > 0, w_left, 1.0), np.inf)
    out = np.empty_like(demand)
    out[order] = np.where(satisfied, d, np.minimum(d, w * fill[h]))
    return out


def _resized_cap(size: np.ndarray, traced: np.ndarray) -> np.ndarray:
    """What a VM may get of a resource: its size once resized, no cap of its own before (a VM never
    resized keeps the trace's own fractions, which may pass 1)."""
    return np.where(size != traced, size, np.inf)
