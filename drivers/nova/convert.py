"""Translating Nova and placement records into :mod:`cotenancy.model` records.

Pure functions over openstacksdk resources (or plain mappings with the same keys), so the rules of
translation are specified by unit tests without a cloud.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cotenancy.model import (
    VM,
    AffinityRule,
    Allocation,
    Event,
    EventKind,
    Metric,
    MetricSample,
    Resources,
    RuleKind,
    VMState,
    WorkloadClass,
)

MIB = 1024 * 1024

#: Nova server status -> project VM state. Anything in flight counts as migrating: the planner
#: must leave it alone this round.
_STATUS: dict[str, VMState] = {
    "ACTIVE": VMState.ACTIVE,
    "BUILD": VMState.MIGRATING,
    "REBUILD": VMState.MIGRATING,
    "REBOOT": VMState.ACTIVE,
    "HARD_REBOOT": VMState.ACTIVE,
    "PASSWORD": VMState.ACTIVE,
    "MIGRATING": VMState.MIGRATING,
    "RESIZE": VMState.MIGRATING,
    "VERIFY_RESIZE": VMState.MIGRATING,
    "REVERT_RESIZE": VMState.MIGRATING,
    "SHUTOFF": VMState.STOPPED,
    "STOPPED": VMState.STOPPED,
    "PAUSED": VMState.STOPPED,
    "SUSPENDED": VMState.STOPPED,
    "SHELVED": VMState.STOPPED,
    "SHELVED_OFFLOADED": VMState.STOPPED,
    "RESCUE": VMState.STOPPED,
    "ERROR": VMState.ERROR,
    "UNKNOWN": VMState.ERROR,
    "DELETED": VMState.ERROR,
    "SOFT_DELETED": VMState.ERROR,
}

#: Migration records that are over, and how they ended.
MIGRATION_DONE = frozenset({"completed", "confirmed", "finished", "reverted"})
MIGRATION_FAILED = frozenset({"error", "failed", "cancelled"})
#: Server statuses of a move in flight, whose migration record names the host it goes to.
MOVING_STATUSES = frozenset({"MIGRATING", "RESIZE"})


def record_field(record: Any, key: str, default: Any = None) -> Any:
    """Attribute or key access, so sdk resources and plain dicts (an API's JSON) both work;
    ``default`` also where the value is None."""
    getter = record.get if isinstance(record, Mapping) else lambda k, d: getattr(record, k, d)
    value = getter(key, default)
    return default if value is None else value


def parse_time(value: str | None) -> float | None:
    """Nova's ISO timestamps (UTC, often without zone) as POSIX seconds."""
    if not value:
        return None
    stamp = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()


def vm_state(status: str | None) -> VMState:
    return _STATUS.get((status or "").upper(), VMState.ERROR)


def _float_spec(specs: Mapping[str, Any], key: str) -> float:
    try:
        return float(specs.get(key, 0) or 0)
    except (TypeError, ValueError):
        return 0.0


def flavor_size(flavor: Any, mhz_per_vcpu: float) -> Resources:
    """A flavor as a size: vCPUs x MHz, RAM in MiB, and I/O caps from its quota extra specs.

    ``quota:disk_total_bytes_sec`` (bytes/s) and ``quota:vif_{in,out}bound_average`` (KiB/s, as
    libvirt reads them) are the only I/O sizes Nova knows; without them the size is 0 (uncapped).
    """
    specs = record_field(flavor, "extra_specs", {}) or {}
    disk_io = _float_spec(specs, "quota:disk_total_bytes_sec") / 1024.0
    if not disk_io:
        disk_io = (
            _float_spec(specs, "quota:disk_read_bytes_sec") + _float_spec(specs, "quota:disk_write_bytes_sec")
        ) / 1024.0
    network = _float_spec(specs, "quota:vif_inbound_average") + _float_spec(
        specs, "quota:vif_outbound_average"
    )
    return Resources(
        cpu=float(record_field(flavor, "vcpus", 0)) * mhz_per_vcpu,
        memory=float(record_field(flavor, "ram", 0)),
        disk_io=disk_io,
        network=network,
    )


def flavor_allocation(flavor: Any) -> Allocation:
    """libvirt's ``quota:cpu_shares`` is the one share Nova lets a flavor set (1024 = normal)."""
    specs = record_field(flavor, "extra_specs", {}) or {}
    shares = _float_spec(specs, "quota:cpu_shares")
    return Allocation(shares=int(shares * 1000 / 1024) if shares else 1000)


def smallest_fitting_flavor(
    flavors: Iterable[Any], size: Resources, mhz_per_vcpu: float, min_disk_gb: float = 0.0
) -> Any | None:
    """The smallest flavor whose vCPUs and RAM hold ``size`` and whose root disk is not smaller
    than ``min_disk_gb`` (Nova refuses to shrink a root disk).

    Smallest means fewest vCPUs, then least RAM, then least disk, then name, so the choice is
    stable. I/O sizes are not compared: flavors rarely cap I/O and the planner sizes CPU and RAM.
    """
    candidates = []
    for flavor in flavors:
        vcpus = float(record_field(flavor, "vcpus", 0))
        ram = float(record_field(flavor, "ram", 0))
        disk = float(record_field(flavor, "disk", 0))
        if vcpus * mhz_per_vcpu + 1e-6 < size.cpu or ram + 1e-6 < size.memory:
            continue
        if disk < min_disk_gb:
            continue
        if record_field(flavor, "is_disabled", False):
            continue
        candidates.append(((vcpus, ram, disk, str(record_field(flavor, "name", ""))), flavor))
    if not candidates:
        return None
    return min(candidates, key=lambda pair: pair[0])[1]


def workload_from_metadata(metadata: Mapping[str, str] | None, prefix: str) -> tuple[WorkloadClass, bool]:
    """Workload class and criticality from server metadata such as ``cotenancy:priority=8``.

    Bad values fall back to the defaults instead of failing the whole inventory.
    """
    values = {k[len(prefix) :]: v for k, v in (metadata or {}).items() if k.startswith(prefix)}
    default = WorkloadClass()
    try:
        priority = min(10, max(0, int(values.get("priority", default.priority))))
    except ValueError:
        priority = default.priority
    workload = WorkloadClass(
        app_type=values.get("app_type", default.app_type),
        priority=priority,
        security_level=values.get("security_level", default.security_level),
    )
    critical = str(values.get("critical", "false")).strip().lower() in {"1", "true", "yes"}
    return workload, critical


def server_to_vm(server: Any, mhz_per_vcpu: float, metadata_prefix: str) -> VM:
    """A Nova server (with its embedded flavor, microversion >= 2.47) as a VM."""
    flavor = record_field(server, "flavor", {}) or {}
    workload, critical = workload_from_metadata(record_field(server, "metadata", {}), metadata_prefix)
    attributes = {
        "status": str(record_field(server, "status", "")),
        "availability_zone": str(record_field(server, "availability_zone", "")),
        "hypervisor_hostname": str(record_field(server, "hypervisor_hostname", "")),
    }
    return VM(
        id=str(record_field(server, "id")),
        name=str(record_field(server, "name", "")),
        host_id=record_field(server, "compute_host"),
        size=flavor_size(flavor, mhz_per_vcpu),
        allocation=flavor_allocation(flavor),
        vcpus=int(record_field(flavor, "vcpus", 1)) or 1,
        tenant=str(record_field(server, "project_id", "default")),
        workload=workload,
        critical=critical,
        state=vm_state(record_field(server, "status")),
        flavor=record_field(flavor, "original_name") or record_field(flavor, "name"),
        attributes={k: v for k, v in attributes.items() if v},
    )


def migration_target(migrations: Iterable[Any], source: str | None) -> str | None:
    """The host an unfinished migration of a server is taking it to (its ``dest_compute``), or
    None. Nova shows the server on its source (``OS-EXT-SRV-ATTR:host``) until the move ends;
    only the migration record says where it goes."""
    for migration in migrations:
        status = str(record_field(migration, "status", "")).lower()
        dest = record_field(migration, "dest_compute")
        if status not in MIGRATION_DONE | MIGRATION_FAILED and dest and dest != source:
            return str(dest)
    return None


def rule_from_server_group(group: Any) -> AffinityRule | None:
    """Server group policies as rules; ``soft-`` policies are soft rules. Groups with fewer
    than two members constrain nothing and are dropped."""
    policy = record_field(group, "policy") or next(iter(record_field(group, "policies", []) or []), None)
    members = frozenset(str(m) for m in (record_field(group, "member_ids", []) or []))
    if policy is None or len(members) < 2:
        return None
    hard = not policy.startswith("soft-")
    base = policy.removeprefix("soft-")
    if base == "affinity":
        kind = RuleKind.AFFINITY
    elif base == "anti-affinity":
        kind = RuleKind.ANTI_AFFINITY
    else:
        return None
    name = f"server-group:{record_field(group, 'name', '') or record_field(group, 'id')}"
    return AffinityRule(name=name, kind=kind, vm_ids=members, hard=hard)


def capacity_from_inventories(inventories: Mapping[str, Mapping[str, Any]], mhz_per_vcpu: float) -> Resources:
    """Placement inventories as usable capacity: ``(total - reserved) * allocation_ratio``.

    Overcommit ratios are part of capacity on purpose: they are what the scheduler admits.
    """

    def usable(resource_class: str) -> float:
        inv = inventories.get(resource_class)
        if not inv:
            return 0.0
        total = float(record_field(inv, "total", 0)) - float(record_field(inv, "reserved", 0))
        return max(0.0, total) * float(record_field(inv, "allocation_ratio", 1.0))

    return Resources(cpu=usable("VCPU") * mhz_per_vcpu, memory=usable("MEMORY_MB"))


def migration_event(migration: Any) -> Event | None:
    """A migration record as a MIGRATION or RESIZE event stamped with its last update."""
    stamp = parse_time(record_field(migration, "updated_at")) or parse_time(
        record_field(migration, "created_at")
    )
    if stamp is None:
        return None
    migration_type = str(record_field(migration, "migration_type", "migration"))
    kind = EventKind.RESIZE if migration_type == "resize" else EventKind.MIGRATION
    server_id = record_field(migration, "server_id") or record_field(migration, "instance_uuid")
    status = str(record_field(migration, "status", ""))
    source, dest = record_field(migration, "source_compute"), record_field(migration, "dest_compute")
    return Event(
        timestamp=stamp,
        kind=kind,
        vm_ids=(str(server_id),) if server_id else (),
        host_id=dest,
        message=f"{migration_type} {source} -> {dest}: {status}",
        source="nova",
        details={
            "status": status,
            "migration_type": migration_type,
            "source_compute": str(source or ""),
            "dest_compute": str(dest or ""),
            "migration_id": str(record_field(migration, "id", "")),
        },
    )


@dataclass(frozen=True, slots=True)
class DiagnosticsReading:
    """Cumulative counters of one server at one moment (Nova's server diagnostics, v2.48+)."""

    timestamp: float
    uptime: float | None
    cpu_time_ns: float
    memory_used_mib: float | None
    disk_bytes: float
    network_bytes: float


def diagnostics_reading(diagnostics: Any, timestamp: float) -> DiagnosticsReading:
    """The counters of one server's diagnostics; ``ValueError`` naming the field when one is not a
    number, so a caller can skip that server and keep the others."""
    cpus = record_field(diagnostics, "cpu_details", []) or []
    disks = record_field(diagnostics, "disk_details", []) or []
    nics = record_field(diagnostics, "nic_details", []) or []
    memory = record_field(diagnostics, "memory_details", {}) or {}
    used = record_field(memory, "used")
    uptime = record_field(diagnostics, "uptime")

    def total(records: Any, *fields: str) -> float:
        return sum(_number(record_field(r, f, 0), f) for r in records for f in fields)

    return DiagnosticsReading(
        timestamp=timestamp,
        uptime=_number(uptime, "uptime") if uptime is not None else None,
        cpu_time_ns=total(cpus, "time"),
        memory_used_mib=_number(used, "memory_details.used") if used is not None else None,
        disk_bytes=total(disks, "read_bytes", "write_bytes"),
        network_bytes=total(nics, "rx_octets", "tx_octets"),
    )


def _number(value: Any, field: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"diagnostics field {field} is not a number: {str(value)[:40]!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"diagnostics field {field} is not finite: {number!r}")
    return number


def diagnostics_samples(
    vm_id: str,
    previous: DiagnosticsReading | None,
    current: DiagnosticsReading,
    mhz_per_vcpu: float,
) -> list[MetricSample]:
    """Samples at ``current.timestamp``: memory in use, and CPU/disk/network rates since
    ``previous``.

    The interval is the guest's uptime difference when both readings have one (the hypervisor's
    own clock), else wall time. Counters that went backwards (reboot, migration to a fresh domain)
    give no rate for that interval rather than a negative one.
    """
    samples: list[MetricSample] = []
    if current.memory_used_mib is not None and current.memory_used_mib > 0:
        samples.append(MetricSample(vm_id, current.timestamp, Metric.MEMORY, current.memory_used_mib))
    if previous is None:
        return samples
    if current.uptime is not None and previous.uptime is not None:
        seconds = current.uptime - previous.uptime
    else:
        seconds = current.timestamp - previous.timestamp
    if seconds <= 0:
        return samples
    rates = {
        Metric.CPU: (current.cpu_time_ns - previous.cpu_time_ns) / 1e9 / seconds * mhz_per_vcpu,
        Metric.DISK_IO: (current.disk_bytes - previous.disk_bytes) / 1024.0 / seconds,
        Metric.NETWORK: (current.network_bytes - previous.network_bytes) / 1024.0 / seconds,
    }
    samples.extend(
        MetricSample(vm_id, current.timestamp, metric, value) for metric, value in rates.items() if value >= 0
    )
    return samples
