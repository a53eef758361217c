"""The ``simulated`` driver: a trace-driven cloud behind the same interface as a real one.

Time is the simulated cloud's: ``now()`` is the current step boundary and ``wait(seconds)``
advances the simulation instead of sleeping. A live migration starts at once and completes during
the following ``wait`` after ``RAM / bandwidth`` seconds of simulated time (the VM shows state
``migrating``, with the host it is going to as ``migration_target``, until then). Metric samples
and degradation events describe the interval that ends at the step boundary and are stamped with
its start.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections.abc import Sequence

import numpy as np
from oslo_config import cfg

from cotenancy.drivers.base import Driver
from cotenancy.exceptions import ActionFailed, ConfigurationError, NotFound, TraceEnded
from cotenancy.model import (
    VM,
    Allocation,
    Event,
    Host,
    Inventory,
    MetricSample,
    Resources,
    VMState,
    WorkloadClass,
)
from cotenancy.sim.cloud import SimulatedCloud


class SimulatedDriver(Driver):
    """A :class:`SimulatedCloud` seen through :class:`cotenancy.drivers.base.Driver`."""

    name = "simulated"

    @classmethod
    def list_opts(cls) -> list[cfg.Opt]:
        return [
            cfg.StrOpt(
                "trace",
                help="Folder of a PlanetLab day or of Bitbrains CSV files; unset: the synthetic workload.",
            ),
        ]

    def __init__(self, conf: cfg.ConfigOpts, cloud: SimulatedCloud | None = None) -> None:
        super().__init__(conf)
        if cloud is None:
            cloud = self._cloud_from_conf(conf)
        self.cloud = cloud
        self._hosts = self._make_hosts()
        attrs = cloud.workload.attributes
        self._classes = [
            WorkloadClass(
                app_type=attrs.get("app_type", ["general"] * cloud.n_vms)[i],
                priority=int(attrs.get("priority", [5] * cloud.n_vms)[i]),
                security_level=attrs.get("security_level", ["internal"] * cloud.n_vms)[i],
            )
            for i in range(cloud.n_vms)
        ]
        self._tenants = attrs.get("tenant", ["default"] * cloud.n_vms)
        self._flavors = cloud.setup.vm_flavors or [""] * cloud.n_vms
        self._sizes: dict[int, tuple[int, Resources, Allocation]] = {}
        #: unchanged VMs keep their record between snapshots (strategies treat records as read-only)
        self._vm_records: dict[int, tuple[tuple[int, VMState, int, int], VM]] = {}

    def _cloud_from_conf(self, conf: cfg.ConfigOpts) -> SimulatedCloud:
        from cotenancy.sim.runner import make_cloud, make_workload

        sim = conf.simulator
        workload = make_workload(self.options.trace, days=sim.days, n_vms=sim.synthetic_vms, seed=sim.seed)
        return make_cloud(
            workload, sim.setup, seed=sim.seed, interference=sim.interference, headroom=sim.host_headroom
        )

    def _make_hosts(self) -> dict[str, Host]:
        h = self.cloud.hosts
        return {
            hid: Host(
                id=hid,
                name=hid,
                capacity=Resources(
                    cpu=float(h.cpu[i]),
                    memory=float(h.memory[i]),
                    disk_io=float(h.disk_io[i]) if np.isfinite(h.disk_io[i]) else 0.0,
                    network=float(h.network[i]),
                ),
                cluster="simulated",
                power_model=h.power_models[i],
                attributes={"cores": str(int(h.cores[i]))}
                | ({"memory_admission": "none"} if self.cloud.quirks else {}),
            )
            for i, hid in enumerate(h.ids)
        }

    # ------------------------------------------------------------------ time
    def now(self) -> float:
        c = self.cloud
        return c.workload.start + c.step * c.step_seconds

    def wait(self, seconds: float) -> None:
        """Advance the cloud by ``seconds``, a whole number (0 or more) of its steps: the cloud moves
        step by step, so a shorter wait (a control loop whose ``[DEFAULT] interval`` is shorter
        than the trace's step) would leave its clock where it was, round after round. Once the
        trace is replayed the clock cannot move on: :class:`TraceEnded` says so, where returning
        would let a loop plan round after round on the same last state, without pause."""
        step = self.cloud.step_seconds
        steps = seconds / step
        if not math.isfinite(steps) or steps < -1e-9 or abs(steps - round(steps)) > 1e-6:
            raise ConfigurationError(
                f"the simulated cloud moves in steps of {step:g} s and cannot wait {seconds:g} s: "
                f"set [DEFAULT] interval to a multiple of {step:g}"
            )
        if seconds and self.cloud.finished:
            ended = dt.datetime.fromtimestamp(self.now(), dt.UTC).isoformat(timespec="minutes")
            raise TraceEnded(f"the simulated cloud's trace ended at {ended}")
        self.cloud.advance(seconds)

    # ------------------------------------------------------------------ inventory
    def get_inventory(self) -> Inventory:
        c = self.cloud
        maintenance = c.host_maintenance.tolist()
        hosts = {}
        for i, hid in enumerate(c.hosts.ids):
            host = self._hosts[hid]
            host.maintenance = maintenance[i]
            hosts[hid] = host
        order = np.argsort(c.vm_seq, kind="stable").tolist()
        host_of = c.vm_host.tolist()
        target = c.vm_target.tolist()
        retired = c.vm_retired.tolist()
        host_ids = c.hosts.ids
        versions = c.vm_version.tolist()
        cores = c.vm_cores.tolist()
        vms: dict[str, VM] = {}
        for v in order:
            host = host_of[v]
            gone = retired[v]
            if gone or host < 0:
                state = VMState.STOPPED
            else:
                state = VMState.MIGRATING if target[v] >= 0 else VMState.ACTIVE
            vm_id = c.vm_ids[v]
            going = target[v] if state is VMState.MIGRATING else -1
            key = (host, state, versions[v], going)
            cached = self._vm_records.get(v)
            if cached is not None and cached[0] == key:
                vms[vm_id] = cached[1]
                continue
            size, allocation = self._sizing(v, versions[v])
            vms[vm_id] = record = VM(
                id=vm_id,
                name=vm_id,
                host_id=host_ids[host] if host >= 0 else None,
                size=size,
                allocation=allocation,
                vcpus=int(cores[v]),
                tenant=self._tenants[v],
                workload=self._classes[v],
                state=state,
                flavor=self._flavors[v] or None,
                attributes={"retired": "zero-request"} if gone else {},
                migration_target=host_ids[going] if going >= 0 else None,
            )
            self._vm_records[v] = (key, record)
        return Inventory(hosts=hosts, vms=vms)

    def _sizing(self, v: int, version: int) -> tuple[Resources, Allocation]:
        """Size and allocation records of VM ``v``, rebuilt only when they changed."""
        cached = self._sizes.get(v)
        if cached is not None and cached[0] == version:
            return cached[1], cached[2]
        c = self.cloud
        size = Resources(
            cpu=float(c.vm_cpu[v]),
            memory=float(c.vm_memory[v]),
            disk_io=float(c.vm_disk_io[v]),
            network=float(c.vm_network[v]),
        )
        limit = None if not np.isfinite(c.vm_limit[v]) else Resources(cpu=float(c.vm_limit[v]))
        allocation = Allocation(limit=limit, shares=int(c.vm_shares[v]))
        self._sizes[v] = (version, size, allocation)
        return size, allocation

    # ------------------------------------------------------------------ telemetry
    def metric_frames(self, start: float, end: float) -> list[tuple[float, list[str], dict[str, np.ndarray]]]:
        """Fast path for the simulator's own loop: ``(timestamp, vm_ids, {metric: values})`` per
        step with ``start <= timestamp < end``, running VMs only."""
        c = self.cloud
        out = []
        for frame in c.frames:
            stamp = self._stamp(frame.timestamp)
            if not start <= stamp < end:
                continue
            idx = np.flatnonzero(frame.running)
            ids = [c.vm_ids[i] for i in idx]
            out.append((stamp, ids, {m: vals[idx] for m, vals in frame.metrics.items()}))
        return out

    def _stamp(self, t: float) -> float:
        """Samples are stamped with the start of the interval they describe."""
        c = self.cloud
        boundary = c.workload.start + round((t - c.workload.start) / c.step_seconds) * c.step_seconds
        return boundary - c.step_seconds

    def get_metrics(
        self, start: float, end: float, vm_ids: Sequence[str] | None = None
    ) -> list[MetricSample]:
        wanted = None if vm_ids is None else set(vm_ids)
        samples: list[MetricSample] = []
        for stamp, ids, values in self.metric_frames(start, end):
            for metric, column in values.items():
                for vm_id, value in zip(ids, column.tolist(), strict=True):
                    if wanted is not None and vm_id not in wanted:
                        continue
                    if value == value:
                        samples.append(MetricSample(vm_id, stamp, metric, value))
        return samples

    def get_events(self, start: float, end: float) -> list[Event]:
        c = self.cloud
        first_step = int((start - c.workload.start) // c.step_seconds) - 1
        last_step = int((end - c.workload.start) // c.step_seconds) + 2
        lo = bisect.bisect_left(c.event_steps, first_step)
        hi = bisect.bisect_right(c.event_steps, last_step)
        out = []
        for event in c.events[lo:hi]:
            stamp = self._stamp(event.timestamp) if event.kind.value == "degradation" else event.timestamp
            if start <= stamp < end:
                if stamp != event.timestamp:
                    event = Event(
                        timestamp=stamp,
                        kind=event.kind,
                        vm_ids=event.vm_ids,
                        host_id=event.host_id,
                        duration=event.duration,
                        severity=event.severity,
                        resource=event.resource,
                        message=event.message,
                        source=event.source,
                        details=event.details,
                    )
                out.append(event)
        return out

    # ------------------------------------------------------------------ actions
    def live_migrate(self, vm_id: str, target_host_id: str, timeout: float | None = None) -> None:
        self.cloud.start_migration(vm_id, target_host_id)

    def resize(self, vm_id: str, size: Resources, timeout: float | None = None) -> None:
        applied = (size.cpu, size.memory, size.disk_io, size.network)
        if not all(0 <= value < math.inf for value in applied):  # NaN fails too
            raise ActionFailed(f"resizing {vm_id}: sizes must be finite and not negative, got {size}")
        self.cloud.resize(
            vm_id,
            cpu=size.cpu or None,
            memory=size.memory or None,
            disk_io=size.disk_io or None,
            network=size.network or None,
        )

    def set_allocation(self, vm_id: str, allocation: Allocation, timeout: float | None = None) -> None:
        limit = allocation.limit.cpu if allocation.limit is not None and allocation.limit.cpu else None
        if allocation.shares <= 0:
            raise ActionFailed("shares must be positive")
        self.cloud.set_allocation(vm_id, limit, allocation.shares)

    def set_host_maintenance(self, host_id: str, enabled: bool, timeout: float | None = None) -> None:
        if host_id not in self._hosts:
            raise NotFound(f"no host {host_id!r} in the simulated cloud")
        self.cloud.set_maintenance(host_id, enabled)


__all__ = ["ConfigurationError", "SimulatedDriver"]
