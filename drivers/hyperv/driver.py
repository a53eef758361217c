"""The Hyper-V driver: standalone hosts or a failover cluster, managed over WinRM.

Hyper-V objects map onto the model like this (units of :mod:`cotenancy.model.resources`):

* host capacity: ``LogicalProcessorCount x MaxClockSpeed`` MHz, ``MemoryCapacity`` MiB minus
  ``host_reserved_memory_mb``;
* VM size: ``ProcessorCount x`` the host's clock MHz; memory is the startup memory, or the
  dynamic-memory maximum when dynamic memory is enabled;
* allocation: ``Reserve`` and ``Maximum`` (percent of the VM's processors) become MHz reservation
  and limit, ``RelativeWeight`` x 10 the shares (100 -> 1000 = normal); with dynamic memory the
  memory minimum is the memory reservation and the memory ``Priority`` follows the shares.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import threading
import time
from collections.abc import Sequence
from typing import Any, NamedTuple
from urllib.parse import urlparse

from oslo_config import cfg

from cotenancy.drivers.base import Driver, verifying_tls_context
from cotenancy.drivers.hyperv.client import ConnectionSettings, ScriptRunner
from cotenancy.exceptions import ActionFailed, NotFound, TimedOut, Unsupported
from cotenancy.model import (
    VM,
    Allocation,
    Event,
    EventKind,
    Host,
    Inventory,
    Metric,
    MetricSample,
    Resources,
    VMState,
)

LOG = logging.getLogger(__name__)
MIB = 1024 * 1024

GUEST_RUN_TIME = r"\Hyper-V Hypervisor Virtual Processor(*)\% Guest Run Time"
CPU_WAIT_PER_DISPATCH = r"\Hyper-V Hypervisor Virtual Processor(*)\CPU Wait Time Per Dispatch"
DYNAMIC_MEMORY_PHYSICAL = r"\Hyper-V Dynamic Memory VM(*)\Physical Memory"
DYNAMIC_MEMORY_PRESSURE = r"\Hyper-V Dynamic Memory VM(*)\Current Pressure"
COUNTERS = [GUEST_RUN_TIME, CPU_WAIT_PER_DISPATCH, DYNAMIC_MEMORY_PHYSICAL, DYNAMIC_MEMORY_PRESSURE]

_RUNNING_STATES = {2, 10, "running", "starting"}
_STOPPED_STATES = {3, 4, 6, 9, "off", "stopping", "saved", "paused"}
_PAUSED_NODE_STATES = {2, "paused"}
#: Get-VM OperationalStatus member (VMOperationalStatus) of a VM in a live migration
_MIGRATING_STATUS = {32774, "migratingvirtualmachine"}
#: CIM_ConcreteJob.JobState of a job that has not ended: New, Starting, Running, Suspended,
#: Shutting Down (Completed, Terminated, Killed and Exception have; Hyper-V keeps ended jobs a while)
_UNFINISHED_JOB_STATES = {2, 3, 4, 5, 6}


class Move(NamedTuple):
    """A live migration in flight: what shows it (the VM's ``migration`` attribute) and the
    inventory host it goes to, where that is known."""

    why: str
    target: str | None


OPTS = [
    cfg.URIOpt(
        "endpoint",
        schemes=["https", "http"],
        help="WinRM listener, e.g. https://hv01.example.com:5986/wsman. A cluster is "
        "managed through any node (or a management host with delegation).",
    ),
    cfg.StrOpt("username", help="Account allowed to run the Hyper-V (and cluster) cmdlets."),
    cfg.StrOpt("password", secret=True, help="Password of that account."),
    cfg.StrOpt(
        "transport",
        default="ntlm",
        choices=["ntlm", "kerberos", "credssp", "basic"],
        help="WinRM authentication. Kerberos needs pywinrm[kerberos], CredSSP "
        "pywinrm[credssp]; both delegate credentials, which remote -ComputerName "
        "calls from a management host need. Basic is refused over http.",
    ),
    cfg.StrOpt(
        "ca_file",
        help="PEM file of the CA(s) that sign the listener's certificate; unset: the system trust store.",
    ),
    cfg.BoolOpt(
        "verify_tls", default=True, help="Validate the listener's certificate. Only for throw-away labs."
    ),
    cfg.StrOpt(
        "message_encryption",
        default="auto",
        choices=["auto", "always", "never"],
        help="WinRM message encryption (NTLM/Kerberos/CredSSP over http).",
    ),
    cfg.ListOpt("hosts", default=[], help="Standalone Hyper-V hosts to manage. Empty: the endpoint's host."),
    cfg.StrOpt(
        "cluster",
        help="Failover cluster name. When set, its nodes are the hosts, "
        "clustered VMs move with Move-ClusterVirtualMachineRole and "
        "maintenance uses Suspend-/Resume-ClusterNode.",
    ),
    cfg.BoolOpt(
        "drain_on_maintenance",
        default=False,
        help="Cluster only: Suspend-ClusterNode -Drain, letting the cluster move the "
        "node's roles away, instead of only pausing it.",
    ),
    cfg.BoolOpt(
        "restart_for_processor_change",
        default=False,
        help="Hyper-V cannot change a running VM's processor count. When true, resize "
        "stops the VM, changes it and starts it again; when false it raises "
        "Unsupported.",
    ),
    cfg.IntOpt(
        "host_reserved_memory_mb",
        default=0,
        min=0,
        help="Memory kept for the management OS, subtracted from host capacity.",
    ),
    cfg.FloatOpt(
        "cpu_ready_quantum_ns",
        default=1_000_000.0,
        min=1.0,
        help="Hyper-V shows no ready fraction; cpu_ready is reported as "
        "wait / (wait + quantum) from 'CPU Wait Time Per Dispatch'.",
    ),
    cfg.IntOpt("operation_timeout", default=20, min=1, help="Seconds one WS-Management request may block."),
    cfg.FloatOpt("query_timeout", default=120.0, min=1.0, help="Seconds for inventory and metrics scripts."),
    cfg.FloatOpt(
        "action_timeout",
        default=900.0,
        min=1.0,
        help="Default seconds for migrations, resizes, allocation and maintenance.",
    ),
    cfg.FloatOpt(
        "metrics_grace",
        default=30.0,
        min=0.0,
        help="A metrics window that ended less than this many seconds ago and holds "
        "no reading yet takes a fresh one; older windows are served from the "
        "readings kept.",
    ),
    cfg.IntOpt(
        "metrics_history",
        default=20000,
        min=0,
        help="Samples kept in memory for get_metrics windows in the past.",
    ),
]


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """Options of the ``hyperv`` group, for oslo-config-generator."""
    return [("hyperv", OPTS)]


class HyperVDriver(Driver):
    """Hyper-V hosts or a failover cluster, through fixed scripts over WinRM."""

    name = "hyperv"

    @classmethod
    def list_opts(cls) -> list[cfg.Opt]:
        return OPTS

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        super().__init__(conf)
        options = self.options
        if not options.verify_tls:
            LOG.warning("hyperv: TLS certificate validation is off for %s", options.endpoint)
        else:
            verifying_tls_context(options.ca_file, "[hyperv] ca_file")
        self.runner = ScriptRunner(
            ConnectionSettings(
                endpoint=options.endpoint or "",
                username=options.username or "",
                password=options.password or "",
                transport=options.transport,
                ca_file=options.ca_file,
                verify_tls=options.verify_tls,
                operation_timeout=options.operation_timeout,
                message_encryption=options.message_encryption,
            )
        )
        self._lock = threading.Lock()
        self._inventory: Inventory | None = None
        self._clock_mhz: dict[str, float] = {}
        self._events: list[Event] = []
        self._history: list[MetricSample] = []
        self._metering: dict[str, tuple[float, float, float]] = {}
        #: vm id -> target host of this driver's moves that outlived the wait for them: Hyper-V
        #: carries on, so each inventory looks for them until they end, then tells the outcome
        self._timed_out: dict[str, str] = {}

    # ------------------------------------------------------------ helpers

    def _base_parameters(self) -> dict[str, Any]:
        options = self.options
        hosts = list(options.hosts) or [urlparse(options.endpoint or "").hostname or "localhost"]
        return {"Cluster": options.cluster or None, "Hosts": hosts}

    def _run(self, operation: str, timeout: float | None, **parameters: Any) -> dict[str, Any]:
        default = (
            self.options.query_timeout
            if operation in ("inventory", "metrics")
            else self.options.action_timeout
        )
        return self.runner.run(
            operation, self._base_parameters() | parameters, default if timeout is None else timeout
        )

    def _record(
        self,
        kind: EventKind,
        message: str,
        vm_id: str | None = None,
        host_id: str | None = None,
        **details: str,
    ) -> None:
        with self._lock:
            self._events.append(
                Event(
                    timestamp=time.time(),
                    kind=kind,
                    vm_ids=(vm_id,) if vm_id else (),
                    host_id=host_id,
                    message=message,
                    source="hyperv",
                    details=details,
                )
            )

    def _vm(self, vm_id: str) -> VM:
        inventory = self._inventory
        if inventory is None or vm_id not in inventory.vms:
            inventory = self.get_inventory()
        vm = inventory.vms.get(vm_id)
        if vm is None:
            raise NotFound(f"hyperv: no VM with id {vm_id!r}")
        return vm

    # ------------------------------------------------------------ inventory

    def get_inventory(self) -> Inventory:
        answer = self._run("inventory", None)
        clock = _clock_by_host(answer.get("Sockets"))
        reserved = float(self.options.host_reserved_memory_mb)
        paused = {
            str(n["Name"]).lower()
            for n in _items(answer.get("Nodes"))
            if _enum_in(n.get("State"), _PAUSED_NODE_STATES)
        }
        marked = {
            str(m["PSComputerName"]).lower()
            for m in _items(answer.get("Maintenance"))
            if _int(m.get("Maintenance"))
        }
        inventory = Inventory()
        for raw in _items(answer.get("Hosts")):
            name = str(raw["ComputerName"])
            mhz = clock.get(name.lower(), 0.0)
            inventory.hosts[name] = Host(
                id=name,
                name=name,
                capacity=Resources(
                    cpu=_int(raw.get("LogicalProcessorCount")) * mhz,
                    memory=max(0.0, _int(raw.get("MemoryCapacity")) / MIB - reserved),
                ),
                cluster=self.options.cluster or None,
                maintenance=name.lower() in paused or name.lower() in marked,
                attributes={
                    "logical_processors": str(_int(raw.get("LogicalProcessorCount"))),
                    "clock_mhz": str(mhz),
                },
            )
        host_names = {h.lower(): h for h in inventory.hosts}
        processors = {str(p["VMId"]).lower(): p for p in _items(answer.get("Processors"))}
        memories = {str(m["VMId"]).lower(): m for m in _items(answer.get("Memory"))}
        moving = _migration_jobs(answer.get("Migrations"), host_names)
        for raw in _items(answer.get("VMs")):
            vm_id = str(raw["VMId"]).lower()
            host_id = host_names.get(str(raw.get("ComputerName", "")).lower())
            mhz = clock.get((host_id or "").lower(), 0.0)
            vm = _vm_from(raw, processors.get(vm_id, {}), memories.get(vm_id, {}), host_id, mhz)
            move = moving.get(vm_id)
            if move is not None and move.target is not None and move.target == host_id:
                move = None  # it has landed (or it is a storage move on the same host)
            if move is None and _reports_migrating(raw):
                move = Move("OperationalStatus MigratingVirtualMachine", None)
            if move is not None:
                _mark_moving(vm, move)
            inventory.vms[vm_id] = vm
        self._tell_outcomes(inventory)
        with self._lock:
            self._inventory = inventory
            self._clock_mhz = clock
        return inventory

    def _tell_outcomes(self, inventory: Inventory) -> None:
        """Log how this driver's moves that outlived the wait for them ended, once each; one
        still going keeps its VM migrating, towards the host the driver sent it to."""
        with self._lock:
            pending = dict(self._timed_out)
        for vm_id, target in pending.items():
            vm = inventory.vms.get(vm_id)
            doing = f"hyperv: moving VM {vm_id} to {target}, which timed out earlier,"
            if vm is not None and "migration" in vm.attributes:
                if vm.state is VMState.MIGRATING and target in inventory.hosts:
                    vm.migration_target = vm.migration_target or target
                continue
            if vm is None:
                LOG.warning("%s cannot be told: the VM is no longer on the managed hosts", doing)
            elif (vm.host_id or "").lower() == target.lower():
                LOG.info("%s succeeded", doing)
                self._record(EventKind.MIGRATION, f"moved to {target}", vm_id, target)
            else:
                LOG.warning("%s failed or was cancelled: the VM is on %s", doing, vm.host_id)
            with self._lock:
                self._timed_out.pop(vm_id, None)

    # ------------------------------------------------------------ telemetry

    def get_metrics(
        self, start: float, end: float, vm_ids: Sequence[str] | None = None
    ) -> list[MetricSample]:
        """Hyper-V counters have no history: a window that reaches the present (or ended less
        than ``metrics_grace`` ago and holds no reading yet) takes a fresh reading, stamped
        inside the window; readings are kept so later windows over the past are answered.

        Only a reading inside the window covers it: the control loop's window ends at the time
        it took when its round started, a moment ago, and a reading of the previous round (a
        shorter interval than the grace ago) is not in it."""
        asked = time.time()
        grace = self.options.metrics_grace
        with self._lock:
            covered = any(max(start, end - grace) <= s.timestamp < end for s in self._history)
        if end >= asked or (end >= asked - grace and not covered):
            fresh = self._read_metrics(end)
            with self._lock:
                self._history.extend(fresh)
                overflow = len(self._history) - self.options.metrics_history
                if overflow > 0:
                    del self._history[:overflow]
        wanted = None if vm_ids is None else set(vm_ids)
        with self._lock:
            return [
                s
                for s in self._history
                if start <= s.timestamp < end and (wanted is None or s.vm_id in wanted)
            ]

    def _read_metrics(self, end: float) -> list[MetricSample]:
        answer = self._run("metrics", None, Counters=COUNTERS)
        # stamped on the local clock the control loop uses (hosts' clocks may be skewed); a
        # reading answering a window that reaches the present belongs to that window
        timestamp = min(time.time(), math.nextafter(end, -math.inf))
        clock = _clock_by_host(answer.get("Sockets"))
        vms = _items(answer.get("VMs"))
        by_instance: dict[tuple[str, str], list[str]] = {}
        host_of: dict[str, str] = {}
        for raw in vms:
            vm_id = str(raw["VMId"]).lower()
            computer = str(raw.get("ComputerName", "")).lower()
            host_of[vm_id] = computer
            by_instance.setdefault((computer, counter_instance(str(raw["VMName"]))), []).append(vm_id)

        cpu: dict[str, float] = {}
        waits: dict[str, list[float]] = {}
        dynamic: dict[str, dict[str, float]] = {}
        for sample in _items(answer.get("Samples")):
            path = str(sample.get("Path", "")).lower()
            computer = path[2:].split("\\", 1)[0] if path.startswith("\\\\") else ""
            instance = str(sample.get("InstanceName", "")).lower()
            value = _number(sample.get("CookedValue"))
            if path.endswith("\\% guest run time") or path.endswith("\\cpu wait time per dispatch"):
                vm_name, _, _ = instance.rpartition(":hv vp ")
                vm_id = _unique(by_instance.get((computer, vm_name)))
                if vm_id is None:
                    continue
                if path.endswith("\\% guest run time"):
                    cpu[vm_id] = cpu.get(vm_id, 0.0) + value / 100.0 * clock.get(computer, 0.0)
                else:
                    waits.setdefault(vm_id, []).append(value)
            elif path.endswith("\\physical memory") or path.endswith("\\current pressure"):
                vm_id = _unique(by_instance.get((computer, instance)))
                if vm_id is not None:
                    kind = "physical" if path.endswith("\\physical memory") else "pressure"
                    dynamic.setdefault(vm_id, {})[kind] = value

        # dynamic memory: the guest's demand is the assigned memory times its pressure
        memory = {
            vm_id: seen["physical"] * seen.get("pressure", 100.0) / 100.0
            for vm_id, seen in dynamic.items()
            if "physical" in seen
        }
        samples: list[MetricSample] = []
        quantum = self.options.cpu_ready_quantum_ns
        for vm_id, value in cpu.items():
            samples.append(MetricSample(vm_id, timestamp, Metric.CPU, value))
        for vm_id, values in waits.items():
            wait = sum(values) / len(values)
            samples.append(MetricSample(vm_id, timestamp, Metric.CPU_READY, wait / (wait + quantum)))
        for report in _items(answer.get("Metering")):
            vm_id = str(report["VMId"]).lower()
            if vm_id not in memory:
                memory[vm_id] = _number(report.get("AvgRAM"))
            disk_kib, net_kib = _metering_totals(report)
            duration = _number((report.get("MeteringDuration") or {}).get("TotalSeconds"))
            with self._lock:
                previous = self._metering.get(vm_id)
                self._metering[vm_id] = (duration, disk_kib, net_kib)
            if previous and duration > previous[0] and disk_kib >= previous[1] and net_kib >= previous[2]:
                span = duration - previous[0]
                disk_rate, net_rate = (disk_kib - previous[1]) / span, (net_kib - previous[2]) / span
            elif duration > 0:
                disk_rate, net_rate = disk_kib / duration, net_kib / duration
            else:
                continue
            samples.append(MetricSample(vm_id, timestamp, Metric.DISK_IO, disk_rate))
            samples.append(MetricSample(vm_id, timestamp, Metric.NETWORK, net_rate))
            if vm_id not in cpu:
                samples.append(MetricSample(vm_id, timestamp, Metric.CPU, _number(report.get("AvgCPU"))))
        for vm_id, value in memory.items():
            samples.append(MetricSample(vm_id, timestamp, Metric.MEMORY, value))
        return samples

    def get_events(self, start: float, end: float) -> list[Event]:
        """The changes this driver made (Hyper-V's own event logs are not read)."""
        with self._lock:
            return [e for e in self._events if start <= e.timestamp < end]

    # ------------------------------------------------------------ actions

    def live_migrate(self, vm_id: str, target_host_id: str, timeout: float | None = None) -> None:
        """Move-VM, or a cluster role move; one that times out goes on in Hyper-V, so the VM
        stays migrating in the inventory until it ends, and its outcome is logged then."""
        try:
            answer = self._run("migrate", timeout, VMId=vm_id, Target=target_host_id)
        except TimedOut:
            with self._lock:
                self._timed_out[vm_id.lower()] = target_host_id
            self._invalidate()
            raise
        with self._lock:
            self._timed_out.pop(vm_id.lower(), None)
        landed = str(answer.get("ComputerName", ""))
        if landed.lower() != target_host_id.lower():
            raise ActionFailed(f"hyperv: VM {vm_id} is on {landed!r} after moving to {target_host_id!r}")
        self._invalidate()
        self._record(EventKind.MIGRATION, f"moved to {target_host_id}", vm_id, target_host_id)

    def resize(self, vm_id: str, size: Resources, timeout: float | None = None) -> None:
        vm = self._vm(vm_id)
        mhz = self._clock_mhz.get((vm.host_id or "").lower(), 0.0)
        count = vm.vcpus
        if size.cpu > 0:
            if mhz <= 0:
                raise Unsupported(f"hyperv: clock speed of {vm.host_id} unknown; cannot size CPU")
            count = max(1, math.ceil(size.cpu / mhz - 1e-9))
        memory_mib = size.memory if size.memory > 0 else vm.size.memory
        memory_bytes = int(math.ceil(memory_mib / 2.0) * 2) * MIB
        self._run(
            "resize",
            timeout,
            VMId=vm_id,
            ProcessorCount=count,
            MemoryBytes=memory_bytes,
            RestartForProcessors=bool(self.options.restart_for_processor_change),
        )
        self._invalidate()
        self._record(EventKind.RESIZE, f"{count} vCPU, {memory_bytes // MIB} MiB", vm_id, vm.host_id)

    def set_allocation(self, vm_id: str, allocation: Allocation, timeout: float | None = None) -> None:
        vm = self._vm(vm_id)
        full = vm.size.cpu
        if full <= 0:
            raise Unsupported(f"hyperv: size of {vm_id} unknown; cannot express percentages")
        reserve = _clamp(round(100.0 * allocation.reservation.cpu / full), 0, 100)
        limit = allocation.limit
        unlimited = limit is None or limit.cpu <= 0 or not math.isfinite(limit.cpu)
        maximum = 100 if unlimited else _clamp(math.ceil(100.0 * limit.cpu / full), 1, 100)
        if reserve > maximum:
            raise ActionFailed(
                f"hyperv: reservation {allocation.reservation.cpu} MHz exceeds "
                f"limit {limit.cpu if limit else None} MHz"
            )
        minimum_mib = allocation.reservation.memory
        self._run(
            "set_allocation",
            timeout,
            VMId=vm_id,
            Reserve=reserve,
            Maximum=maximum,
            RelativeWeight=_clamp(round(allocation.shares / 10), 1, 10000),
            MemoryPriority=_clamp(round(allocation.shares / 20), 0, 100),
            MinimumBytes=int(math.ceil(minimum_mib / 2.0) * 2) * MIB if minimum_mib > 0 else 0,
        )
        self._invalidate()
        self._record(EventKind.ALLOCATION, f"reserve {reserve}%, maximum {maximum}%", vm_id, vm.host_id)

    def set_host_maintenance(self, host_id: str, enabled: bool, timeout: float | None = None) -> None:
        self._run(
            "maintenance",
            timeout,
            Host=host_id,
            Enabled=bool(enabled),
            Drain=bool(self.options.drain_on_maintenance),
        )
        self._invalidate()
        self._record(
            EventKind.MAINTENANCE, "maintenance on" if enabled else "maintenance off", host_id=host_id
        )

    def _invalidate(self) -> None:
        with self._lock:
            self._inventory = None

    def close(self) -> None:
        self.runner.close()


# ------------------------------------------------------------ conversions


def counter_instance(vm_name: str) -> str:
    """How a VM name appears inside a Hyper-V counter instance (lower case, ``()#/\\`` replaced)."""
    return (
        vm_name.lower()
        .replace("(", "[")
        .replace(")", "]")
        .replace("#", "_")
        .replace("/", "_")
        .replace("\\", "_")
    )


def _vm_from(
    raw: dict[str, Any], processor: dict[str, Any], memory: dict[str, Any], host_id: str | None, mhz: float
) -> VM:
    count = _int(processor.get("Count")) or 1
    dynamic = bool(memory.get("DynamicMemoryEnabled"))
    startup = _int(memory.get("Startup")) / MIB
    maximum_mib = _int(memory.get("Maximum")) / MIB
    memory_mib = maximum_mib if dynamic else startup
    cpu = count * mhz
    reserve = _int(processor.get("Reserve"))
    maximum = _int(processor.get("Maximum")) or 100
    limit = None if maximum >= 100 else Resources(cpu=cpu * maximum / 100.0, memory=memory_mib)
    allocation = Allocation(
        reservation=Resources(
            cpu=cpu * reserve / 100.0, memory=_int(memory.get("Minimum")) / MIB if dynamic else memory_mib
        ),
        limit=limit,
        shares=(_int(processor.get("RelativeWeight")) or 100) * 10,
    )
    state = raw.get("State")
    if _enum_in(state, _RUNNING_STATES):
        vm_state = VMState.ACTIVE
    elif _enum_in(state, _STOPPED_STATES):
        vm_state = VMState.STOPPED
    else:
        vm_state = VMState.ERROR
    return VM(
        id=str(raw["VMId"]).lower(),
        name=str(raw.get("VMName", "")),
        host_id=host_id,
        size=Resources(cpu=cpu, memory=memory_mib),
        allocation=allocation,
        vcpus=count,
        state=vm_state,
        attributes={
            "dynamic_memory": str(dynamic).lower(),
            "clustered": str(bool(raw.get("IsClustered"))).lower(),
            "memory_assigned_mib": str(_int(raw.get("MemoryAssigned")) // MIB),
        },
    )


def _mark_moving(vm: VM, move: Move) -> None:
    """A running VM on the move is migrating (it counts on both hosts); any VM names the move."""
    vm.attributes["migration"] = move.why
    if vm.state is VMState.ACTIVE:
        vm.state = VMState.MIGRATING
        vm.migration_target = move.target


def _migration_jobs(jobs: Any, host_names: dict[str, str]) -> dict[str, Move]:
    """VM id -> its move, from the Msvm_MigrationJob instances that have not ended. A job names
    the VM by its GUID (``VirtualSystemName``) and the destination as it was asked for
    (``DestinationHost``: a name, an FQDN or an address)."""
    moving: dict[str, Move] = {}
    for job in _items(jobs):
        if not _enum_in(job.get("JobState"), _UNFINISHED_JOB_STATES):
            continue
        destination = str(job.get("DestinationHost") or "").strip()
        if not destination:
            continue
        why = (
            f"Msvm_MigrationJob on {job.get('PSComputerName')} to {destination}, "
            f"{_int(job.get('PercentComplete'))}% done"
        )
        vm_id = str(job.get("VirtualSystemName", "")).lower()
        moving[vm_id] = Move(why, _host_named(destination, host_names))
    return moving


def _host_named(name: str, host_names: dict[str, str]) -> str | None:
    """The inventory host a migration destination names: the same name, or the one host whose
    name has the same first label as an FQDN; None for an address or a host not managed here."""
    key = name.lower().rstrip(".")
    if key in host_names:
        return host_names[key]
    try:
        ipaddress.ip_address(key)
        return None
    except ValueError:
        pass
    short = key.split(".", 1)[0]
    matches = {host for lowered, host in host_names.items() if lowered.split(".", 1)[0] == short}
    return matches.pop() if len(matches) == 1 else None


def _reports_migrating(raw: dict[str, Any]) -> bool:
    """Get-VM's OperationalStatus (one value or several) holds MigratingVirtualMachine."""
    status = raw.get("OperationalStatus")
    values = status if isinstance(status, list) else [status]
    return any(_enum_in(value, _MIGRATING_STATUS) for value in values)


def _metering_totals(report: dict[str, Any]) -> tuple[float, float]:
    """Disk and network KiB moved since metering started (Measure-VM counts MB)."""
    disk_mb = _number(report.get("AggregatedDiskDataRead")) + _number(report.get("AggregatedDiskDataWritten"))
    net_mb = sum(_number(t.get("TotalTraffic")) for t in _items(report.get("NetworkMeteredTrafficReport")))
    return disk_mb * 1024.0, net_mb * 1024.0


def _clock_by_host(sockets: Any) -> dict[str, float]:
    clock: dict[str, float] = {}
    for socket in _items(sockets):
        name = str(socket.get("PSComputerName", "")).lower()
        clock[name] = max(clock.get(name, 0.0), _number(socket.get("MaxClockSpeed")))
    return clock


def _items(value: Any) -> list[dict[str, Any]]:
    """ConvertTo-Json gives an object for one item and a list for several; always a list."""
    if value is None:
        return []
    return [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, dict)]


def _unique(values: list[str] | None) -> str | None:
    return values[0] if values and len(values) == 1 else None


def _enum_in(value: Any, members: set[Any]) -> bool:
    return (value.lower() if isinstance(value, str) else value) in members


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _int(value: Any) -> int:
    return int(_number(value))


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, int(value)))
