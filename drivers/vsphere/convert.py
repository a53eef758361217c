"""Pure translations between vSphere objects and :mod:`cotenancy.model` records.

Kept free of network calls so that units, share levels and fault mapping are unit-tested alone.
"""

from __future__ import annotations

import datetime as dt
import functools
import http.client
import math
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from pyVmomi import vim, vmodl

from cotenancy.exceptions import ActionFailed, DriverError, NotFound, TimedOut, Unsupported
from cotenancy.model import Allocation, Event, EventKind, Metric, Resources, WorkloadClass

MIB = 1024 * 1024

#: vSphere share levels as project weights (1000 = normal). vSphere gives a VM 1000 CPU shares per
#: vCPU and 10 memory shares per MB at ``normal``; ``low`` is half and ``high`` double.
LEVEL_WEIGHTS = {"low": 500, "normal": 1000, "high": 2000}
CPU_SHARES_PER_VCPU = 1000
MEMORY_SHARES_PER_MB = 10


@dataclass(frozen=True, slots=True)
class CounterSpec:
    """A vSphere performance counter behind one project metric, with its unit conversion."""

    metric: str
    counter: str
    #: raw value, sample interval in seconds and the VM's vCPUs -> project units
    convert: Callable[[float, float, int], float]


METRIC_COUNTERS: tuple[CounterSpec, ...] = (
    CounterSpec(Metric.CPU, "cpu.usagemhz.average", lambda v, _i, _c: v),
    CounterSpec(Metric.CPU_DEMAND, "cpu.demand.average", lambda v, _i, _c: v),
    # summation of milliseconds ready over the interval, summed over the vCPUs
    CounterSpec(Metric.CPU_READY, "cpu.ready.summation", lambda v, i, c: v / (i * 1000.0 * max(c, 1))),
    CounterSpec(Metric.MEMORY, "mem.active.average", lambda v, _i, _c: v / 1024.0),
    CounterSpec(Metric.DISK_IO, "disk.usage.average", lambda v, _i, _c: v),
    CounterSpec(Metric.NETWORK, "net.usage.average", lambda v, _i, _c: v),
)


def counter_name(counter: vim.PerformanceManager.CounterInfo) -> str:
    """``group.name.rollup``, the name by which counters are looked up (ids differ per vCenter)."""
    return f"{counter.groupInfo.key}.{counter.nameInfo.key}.{counter.rollupType}"


@functools.lru_cache(maxsize=4096)
def _timestamp(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def parse_sample_info_csv(text: str | None, default_interval: float) -> list[tuple[float, float]]:
    """(timestamp, interval seconds) pairs of a ``sampleInfoCSV`` string ("20,<time>,20,<time>")."""
    parts = (text or "").split(",") if text else []
    if len(parts) % 2:
        raise ValueError(f"sampleInfoCSV has an odd number of fields: {text[:80]!r}")
    pairs = []
    for interval, when in zip(parts[::2], parts[1::2], strict=True):
        pairs.append((_timestamp(when.strip()), float(interval) if interval else default_interval))
    return pairs


def parse_values_csv(text: str | None) -> list[float]:
    """Values of a CSV series; an empty field (no sample) reads as -1, vCenter's own marker."""
    return [float(v) if v else -1.0 for v in (text or "").split(",")] if text else []


# -- allocations ------------------------------------------------------------------------------


def shares_weight(info: vim.SharesInfo | None, normal_shares: float) -> int:
    """Project weight (1000 = normal) of a vSphere SharesInfo."""
    if info is None:
        return 1000
    level = str(info.level)
    if level in LEVEL_WEIGHTS:
        return LEVEL_WEIGHTS[level]
    if normal_shares <= 0:
        return 1000
    return round(info.shares * 1000 / normal_shares)


def vim_shares(weight: int, normal_shares: float) -> vim.SharesInfo:
    """SharesInfo for a project weight: a named level where one matches, else custom shares."""
    for level, level_weight in LEVEL_WEIGHTS.items():
        if weight == level_weight:
            return vim.SharesInfo(level=level, shares=round(normal_shares * weight / 1000))
    return vim.SharesInfo(level="custom", shares=max(1, round(normal_shares * weight / 1000)))


def _limit(value: int | None) -> float:
    return math.inf if value is None or value < 0 else float(value)


def allocation_from_vim(
    cpu: vim.ResourceAllocationInfo | None,
    memory: vim.ResourceAllocationInfo | None,
    vcpus: int,
) -> Allocation:
    """Shares come from the CPU allocation (the contended resource the project acts on)."""
    cpu_reservation = float(cpu.reservation or 0) if cpu else 0.0
    mem_reservation = float(memory.reservation or 0) if memory else 0.0
    cpu_limit = _limit(cpu.limit if cpu else None)
    mem_limit = _limit(memory.limit if memory else None)
    limit = None
    if math.isfinite(cpu_limit) or math.isfinite(mem_limit):
        limit = Resources(cpu=cpu_limit, memory=mem_limit)
    weight = shares_weight(cpu.shares if cpu else None, CPU_SHARES_PER_VCPU * max(vcpus, 1))
    return Allocation(
        reservation=Resources(cpu=cpu_reservation, memory=mem_reservation), limit=limit, shares=weight
    )


def allocation_to_vim(
    allocation: Allocation, vcpus: int, memory_mb: float
) -> tuple[vim.ResourceAllocationInfo, vim.ResourceAllocationInfo]:
    """CPU and memory ResourceAllocationInfo; rejects allocations vSphere would refuse."""
    reservation = allocation.reservation
    limit = allocation.limit
    problems = []
    if allocation.shares <= 0:
        problems.append(f"shares must be positive, got {allocation.shares}")
    if reservation.cpu < 0 or reservation.memory < 0:
        problems.append("reservations must not be negative")
    if reservation.memory > memory_mb:
        problems.append(f"memory reservation {reservation.memory:g} MiB exceeds the VM's {memory_mb:g} MiB")
    if limit is not None:
        if limit.cpu < reservation.cpu or limit.memory < reservation.memory:
            problems.append("a limit is below its reservation")
        if limit.cpu < 0 or limit.memory < 0:
            problems.append("limits must not be negative")
    if problems:
        raise ActionFailed("invalid allocation: " + "; ".join(problems))

    def vim_limit(value: float | None) -> int:
        return -1 if value is None or not math.isfinite(value) else int(value)

    cpu = vim.ResourceAllocationInfo(
        reservation=int(reservation.cpu),
        limit=vim_limit(limit.cpu if limit else None),
        expandableReservation=False,
        shares=vim_shares(allocation.shares, CPU_SHARES_PER_VCPU * max(vcpus, 1)),
    )
    memory = vim.ResourceAllocationInfo(
        reservation=int(reservation.memory),
        limit=vim_limit(limit.memory if limit else None),
        expandableReservation=False,
        shares=vim_shares(allocation.shares, MEMORY_SHARES_PER_MB * max(memory_mb, 1)),
    )
    return cpu, memory


# -- annotations ------------------------------------------------------------------------------


def parse_annotation(text: str | None, prefix: str) -> tuple[WorkloadClass, str | None, bool]:
    """Workload class, tenant and criticality from ``<prefix>key=value`` lines of an annotation.

    Unknown keys and unreadable values are ignored: an admin's note must never break discovery.
    """
    values: dict[str, str] = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if prefix and line.startswith(prefix) and "=" in line:
            key, _, value = line[len(prefix) :].partition("=")
            values[key.strip()] = value.strip()
    defaults = WorkloadClass()
    try:
        priority = min(10, max(0, int(values.get("priority", defaults.priority))))
    except ValueError:
        priority = defaults.priority
    workload = WorkloadClass(
        app_type=values.get("app_type") or defaults.app_type,
        priority=priority,
        security_level=values.get("security_level") or defaults.security_level,
    )
    critical = values.get("critical", "").lower() in {"1", "true", "yes"}
    return workload, values.get("tenant") or None, critical


# -- events -----------------------------------------------------------------------------------

_POWER_EVENTS = (
    vim.event.VmPoweredOnEvent,
    vim.event.VmPoweredOffEvent,
    vim.event.VmSuspendedEvent,
    vim.event.VmResettingEvent,
)
_MIGRATION_EVENTS = (vim.event.VmMigratedEvent, vim.event.DrsVmMigratedEvent)

#: event type ids to ask the EventManager for
EVENT_TYPE_IDS = [
    "VmMigratedEvent",
    "DrsVmMigratedEvent",
    "VmPoweredOnEvent",
    "VmPoweredOffEvent",
    "VmSuspendedEvent",
    "VmResettingEvent",
    "VmReconfiguredEvent",
    "EnteredMaintenanceModeEvent",
    "ExitMaintenanceModeEvent",
]


def _ref_value(obj: object) -> str | None:
    return obj._moId if obj is not None else None  # type: ignore[attr-defined]


def event_from_vim(event: vim.event.Event) -> Event | None:
    """A project event for the vSphere events the project learns from, else None."""
    timestamp = event.createdTime.timestamp()
    vm_ids: tuple[str, ...] = ()
    if getattr(event, "vm", None) is not None and event.vm.vm is not None:
        vm_ids = (_ref_value(event.vm.vm),)  # type: ignore[assignment]
    host_id = _ref_value(event.host.host) if getattr(event, "host", None) is not None else None
    common = {
        "timestamp": timestamp,
        "vm_ids": vm_ids,
        "host_id": host_id,
        "message": event.fullFormattedMessage or "",
        "source": "vsphere",
    }
    if isinstance(event, _MIGRATION_EVENTS):
        source = _ref_value(event.sourceHost.host) if event.sourceHost is not None else None
        details = {"source_host_id": source} if source else {}
        return Event(kind=EventKind.MIGRATION, details=details, **common)
    if isinstance(event, _POWER_EVENTS):
        return Event(kind=EventKind.POWER, details={"type": event._wsdlName}, **common)
    if isinstance(event, vim.event.VmReconfiguredEvent):
        spec = event.configSpec
        if spec is None:
            return None
        if spec.numCPUs or spec.memoryMB:
            return Event(kind=EventKind.RESIZE, **common)
        if spec.cpuAllocation is not None or spec.memoryAllocation is not None:
            return Event(kind=EventKind.ALLOCATION, **common)
        return None
    if isinstance(event, vim.event.EnteredMaintenanceModeEvent | vim.event.ExitMaintenanceModeEvent):
        entered = isinstance(event, vim.event.EnteredMaintenanceModeEvent)
        return Event(kind=EventKind.MAINTENANCE, details={"enabled": str(entered).lower()}, **common)
    return None


# -- faults -----------------------------------------------------------------------------------

_NOT_FOUND = (vmodl.fault.ManagedObjectNotFound, vim.fault.NotFound)
_UNSUPPORTED = (
    vmodl.fault.NotSupported,
    vim.fault.MethodDisabled,
    vmodl.fault.MethodNotFound,
    vim.fault.CpuHotPlugNotSupported,
    vim.fault.MemoryHotPlugNotSupported,
    vim.fault.DisallowedOperationOnFailoverHost,
)
_TIMED_OUT = (vim.fault.Timedout, socket.timeout, TimeoutError)


def fault_name(fault: BaseException) -> str:
    name = getattr(fault, "_wsdlName", None) or type(fault).__name__
    return str(name)


def fault_message(fault: BaseException) -> str:
    msg = getattr(fault, "msg", None) or getattr(fault, "localizedMessage", None) or str(fault)
    return str(msg).strip()


def error_from_fault(fault: BaseException, doing: str) -> DriverError:
    """The typed error for a vSphere fault or transport failure met while ``doing`` something."""
    if isinstance(fault, DriverError):
        return fault
    text = f"{doing}: {fault_name(fault)}"
    message = fault_message(fault)
    if message and message != fault_name(fault):
        text += f": {message}"
    if isinstance(fault, _NOT_FOUND):
        return NotFound(text)
    if isinstance(fault, _UNSUPPORTED):
        return Unsupported(text)
    if isinstance(fault, _TIMED_OUT):
        return TimedOut(text + " (the outcome is unknown)")
    if isinstance(fault, ssl.SSLError):
        return ActionFailed(text + " (TLS verification failed? set [vsphere] ca_file)")
    if isinstance(fault, OSError | http.client.HTTPException):
        return ActionFailed(text + " (vCenter unreachable)")
    return ActionFailed(text)
