"""Translation between Watcher's view of a cloud and cotenancy's.

Watcher counts CPU in vCPUs and reports instance CPU as a percentage of the instance's vCPUs;
cotenancy counts CPU in MHz so that hosts of different speeds compare. ``UnitScale`` says how many
MHz one vCPU is worth (per host where hardware differs).

Nothing here imports Watcher: the compute model is read through the few methods every
``ModelRoot`` has, so the translation stays testable and survives Watcher refactors of internals.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from cotenancy.drivers.nova.convert import MIGRATION_DONE, MIGRATION_FAILED, record_field
from cotenancy.model import (
    VM,
    ActionKind,
    ActionPlan,
    ClusterState,
    Host,
    Inventory,
    Metric,
    MetricSample,
    Resources,
    TelemetryWindow,
    VMState,
    WorkloadClass,
)
from cotenancy.store.history import rejection_reason
from cotenancy.text import escape_controls

LOG = logging.getLogger(__name__)

#: Watcher datasource metric -> cotenancy metric
WATCHER_METRICS: dict[str, str] = {
    "instance_cpu_usage": Metric.CPU.value,
    "instance_ram_usage": Metric.MEMORY.value,
}

#: Nova server metadata keys an operator sets to describe a VM's workload to cotenancy
METADATA_PREFIX = "cotenancy:"

_STATE_MAP = {
    "active": VMState.ACTIVE,
    "migrating": VMState.MIGRATING,
    "resized": VMState.ACTIVE,
    "stopped": VMState.STOPPED,
    "shutoff": VMState.STOPPED,
    "paused": VMState.STOPPED,
    "suspended": VMState.STOPPED,
    "shelved": VMState.STOPPED,
    "error": VMState.ERROR,
    "soft-delete": VMState.STOPPED,
    "deleted": VMState.STOPPED,
}


@dataclass(frozen=True, slots=True)
class UnitScale:
    """MHz per vCPU, globally and per hypervisor hostname (heterogeneous hardware)."""

    mhz_per_vcpu: float = 2000.0
    host_mhz_per_vcpu: Mapping[str, float] = field(default_factory=dict)

    def host_mhz(self, hostname: str) -> float:
        return float(self.host_mhz_per_vcpu.get(hostname, self.mhz_per_vcpu))


@dataclass(frozen=True, slots=True)
class Flavor:
    """A Nova flavor a resize may pick: ``ram`` in MiB, ``disk`` in GiB."""

    name: str
    vcpus: int
    ram: int
    disk: int = 0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Flavor:
        return cls(
            name=str(data["name"]),
            vcpus=int(data["vcpus"]),
            ram=int(data["ram"]),
            disk=int(data.get("disk", 0)),
        )


@dataclass(slots=True)
class WatcherAction:
    """One action in the form ``Solution.add_action`` takes."""

    action_type: str
    resource_id: str
    input_parameters: dict[str, Any]
    cotenancy_kind: str = ""


@dataclass(slots=True)
class Translation:
    """Watcher actions for a plan, plus the steps that had no Watcher equivalent (and why)."""

    actions: list[WatcherAction] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    @property
    def migrations(self) -> int:
        return sum(a.action_type == "migrate" for a in self.actions)

    @property
    def resizes(self) -> int:
        return sum(a.action_type == "resize" for a in self.actions)


def field_of(obj: Any, name: str, default: Any = None) -> Any:
    """A field of a Watcher model element, or ``default`` when unset: the fixtures and older
    collectors leave optional fields out, and versioned objects raise on reading those."""
    is_set = getattr(obj, "obj_attr_is_set", None)
    if is_set is not None and name in getattr(obj, "fields", {}) and not is_set(name):
        return default
    value = getattr(obj, name, default)
    return default if value is None else value


def _metadata(instance: Any) -> dict[str, Any]:
    raw = field_of(instance, "metadata", {})
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}
    return raw if isinstance(raw, dict) else {}


def _workload(meta: Mapping[str, Any]) -> WorkloadClass:
    defaults = WorkloadClass()
    try:
        priority = int(meta.get(f"{METADATA_PREFIX}priority", defaults.priority))
    except (TypeError, ValueError):
        priority = defaults.priority
    return WorkloadClass(
        app_type=str(meta.get(f"{METADATA_PREFIX}app_type", defaults.app_type)),
        priority=min(10, max(0, priority)),
        security_level=str(meta.get(f"{METADATA_PREFIX}security_level", defaults.security_level)),
    )


def _movable(instance: Any, meta: Mapping[str, Any]) -> bool:
    """Watcher's own rules: excluded by the audit scope, locked, or ``optimize: false`` stay put."""
    if field_of(instance, "watcher_exclude", False) or field_of(instance, "locked", False):
        return False
    optimize = meta.get("optimize", True)
    if isinstance(optimize, str):
        optimize = optimize.strip().lower() not in {"false", "0", "no", "off"}
    return bool(optimize)


def inventory_from_compute_model(model: Any, scale: UnitScale) -> Inventory:
    """Hosts and VMs of a Watcher compute model (``ModelRoot``) in cotenancy's units.

    Host capacity is the physical capacity after the hypervisor's reservation: contention
    happens on real cores and memory, whatever overcommit ratio the scheduler uses.
    Disabled or down compute services become hosts in maintenance, so nothing is placed on them.
    """
    inventory = Inventory()
    for node in model.get_all_compute_nodes().values():
        mhz = scale.host_mhz(node.hostname)
        usable_vcpus = max(0, int(node.vcpus) - int(field_of(node, "vcpu_reserved", 0)))
        usable_mem = max(0, int(node.memory) - int(field_of(node, "memory_mb_reserved", 0)))
        status, service_state = field_of(node, "status", "enabled"), field_of(node, "state", "up")
        inventory.hosts[node.uuid] = Host(
            id=node.uuid,
            name=node.hostname,
            capacity=Resources(cpu=usable_vcpus * mhz, memory=float(usable_mem)),
            maintenance=status != "enabled" or service_state != "up",
            attributes={
                "vcpus": str(node.vcpus),
                "vcpu_ratio": str(field_of(node, "vcpu_ratio", 1.0)),
                "memory_ratio": str(field_of(node, "memory_ratio", 1.0)),
                "mhz_per_vcpu": str(mhz),
            },
        )
        for instance in model.get_node_instances(node):
            meta = _metadata(instance)
            inventory.vms[instance.uuid] = VM(
                id=instance.uuid,
                name=field_of(instance, "name", "") or instance.uuid,
                host_id=node.uuid,
                size=Resources(cpu=int(instance.vcpus) * mhz, memory=float(instance.memory)),
                vcpus=int(instance.vcpus),
                tenant=str(field_of(instance, "project_id", "default")),
                workload=_workload(meta),
                critical=str(meta.get(f"{METADATA_PREFIX}critical", "")).lower() in {"1", "true", "yes"},
                state=_STATE_MAP.get(str(field_of(instance, "state", "active")).lower(), VMState.ACTIVE),
                attributes={
                    "movable": "true" if _movable(instance, meta) else "false",
                    "disk_gb": str(field_of(instance, "disk", 0)),
                },
            )
    return inventory


def apply_migrations_in_flight(inventory: Inventory, migrations: Iterable[Any]) -> Inventory:
    """Mark the VMs Nova's unfinished migration records move as ``migrating``, each with the host
    it is arriving on (``dest_compute``, a compute node's hostname) where the model lists it.

    Watcher's compute model cannot say so itself: Nova keeps a live-migrating server's
    ``vm_state`` ``active`` and its host the source until it lands, so the model shows it at home
    like any other. Without the records the planner would count it on its source only, and could
    move it again or fill the room it is about to take. A record for a VM the audit does not
    cover, or naming its own host, changes nothing; a target outside the audit's scope leaves the
    VM migrating to an unknown host (it then counts on its source only)."""
    host_by_name = {h.name: h.id for h in inventory.hosts.values()}
    for record in migrations:
        vm = inventory.vms.get(str(record_field(record, "instance_uuid") or ""))
        status = str(record_field(record, "status") or "").lower()
        if vm is None or vm.host_id is None or status in MIGRATION_DONE | MIGRATION_FAILED:
            continue
        target = host_by_name.get(str(record_field(record, "dest_compute") or ""))
        if target == vm.host_id:
            continue
        vm.state = VMState.MIGRATING
        vm.migration_target = target if target is not None else vm.migration_target
    return inventory


def to_posix(stamp: Any) -> float:
    """Datasource timestamps come as datetimes, ISO strings or numbers; cotenancy uses POSIX seconds."""
    if isinstance(stamp, dt.datetime):
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=dt.UTC)
        return stamp.timestamp()
    if isinstance(stamp, (int, float)):
        return float(stamp)
    text = str(stamp).strip()
    try:
        return float(text)
    except ValueError:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        return to_posix(parsed)


def watcher_value_to_cotenancy(metric: str, value: float, vm: VM) -> float:
    """Instance CPU is a percentage of the instance's vCPUs; memory is already MiB."""
    if metric == "instance_cpu_usage":
        return float(value) / 100.0 * vm.size.cpu
    return float(value)


def telemetry_from_series(
    inventory: Inventory,
    series: Mapping[str, Mapping[str, Mapping[Any, float] | None]],
    now: float,
    step_seconds: float,
    steps: int,
) -> TelemetryWindow:
    """Put ``series[vm_id][watcher_metric] = {timestamp: value}`` on a regular grid of the ``steps``
    steps before ``now``.

    Columns are labelled by the start of their step, as Gnocchi stamps its aggregates and as
    cotenancy's own telemetry buffer does: column ``j`` holds the mean of the samples stamped in
    ``[t_j, t_j + step)``, and the last column is the step that ends at ``now`` (or holds it). A step
    with no sample is NaN, so a gap in the datasource stays visible to the predictors instead of
    being invented.

    A sample the history store would reject (``rejection_reason``: missing, NaN, infinite, or
    negative, as Gnocchi's rate of a counter that reset is) is left out of its step's mean, and
    counted and logged by reason: one negative sample would turn a VM's demand negative.
    """
    if steps < 1 or step_seconds <= 0:
        raise ValueError("telemetry needs at least one step of positive length")
    vm_ids = sorted(inventory.vms)
    last = math.ceil(now / step_seconds - 1e-9) - 1
    timestamps = (last - np.arange(steps - 1, -1, -1, dtype=float)) * step_seconds
    values = {m: np.full((len(vm_ids), steps), np.nan) for m in WATCHER_METRICS.values()}
    sums = {m: np.zeros((len(vm_ids), steps)) for m in WATCHER_METRICS.values()}
    counts = {m: np.zeros((len(vm_ids), steps)) for m in WATCHER_METRICS.values()}
    first = timestamps[0]
    stop = timestamps[-1] + step_seconds
    dropped: Counter[str] = Counter()
    for row, vm_id in enumerate(vm_ids):
        vm = inventory.vms[vm_id]
        for watcher_metric, samples in (series.get(vm_id) or {}).items():
            metric = WATCHER_METRICS.get(watcher_metric)
            if metric is None or not samples:
                continue
            for stamp, raw in samples.items():
                t = to_posix(stamp)
                if t < first or t >= stop:
                    continue
                problem = "missing" if raw is None else rejection_reason(MetricSample(vm_id, t, metric, raw))
                if problem is not None:
                    dropped[problem] += 1
                    continue
                col = int((t - first) // step_seconds)
                sums[metric][row, col] += watcher_value_to_cotenancy(watcher_metric, raw, vm)
                counts[metric][row, col] += 1
    for metric in values:
        seen = counts[metric] > 0
        values[metric][seen] = sums[metric][seen] / counts[metric][seen]
    _log_dropped(dropped)
    return TelemetryWindow(vm_ids=vm_ids, timestamps=timestamps, values=values, step_seconds=step_seconds)


def _log_dropped(dropped: Counter[str]) -> None:
    """A missing value (None or NaN) is a routine gap; any other rejection points at a broken
    datasource, so it is warned of."""
    gaps = dropped.pop("missing", 0) + dropped.pop("nan", 0)
    if dropped:
        LOG.warning(
            "dropped %d datasource samples that cannot be a usage: %s",
            dropped.total(),
            ", ".join(f"{n} {reason}" for reason, n in sorted(dropped.items())),
        )
    if gaps:
        LOG.debug("%d datasource samples were missing (kept as gaps)", gaps)


def cluster_state(inventory: Inventory, telemetry: TelemetryWindow, now: float) -> ClusterState:
    migrating = frozenset(v.id for v in inventory.vms.values() if v.state is VMState.MIGRATING)
    return ClusterState(
        now=now,
        inventory=inventory,
        telemetry=telemetry,
        migrating=migrating,
        interval_seconds=telemetry.step_seconds,
    )


def smallest_flavor(
    wanted: Resources, vm: VM, flavors: Iterable[Flavor], mhz_per_vcpu: float
) -> Flavor | None:
    """The smallest flavor that holds ``wanted`` without shrinking the VM's disk (Nova refuses that)."""
    disk = float(vm.attributes.get("disk_gb", 0) or 0)
    fitting = [
        f
        for f in flavors
        if f.vcpus * mhz_per_vcpu >= wanted.cpu - 1e-6 and f.ram >= wanted.memory - 1e-6 and f.disk >= disk
    ]
    if not fitting:
        return None
    return min(fitting, key=lambda f: (f.vcpus, f.ram, f.disk, f.name))


def actions_from_plan(
    plan: ActionPlan,
    inventory: Inventory,
    flavors: Iterable[Flavor] = (),
    migration_type: str = "live",
    allow_resize: bool = True,
    allow_maintenance: bool = True,
) -> Translation:
    """Watcher ``migrate``/``resize``/``change_nova_service_state`` actions for a cotenancy plan.

    Steps Watcher cannot carry out (hypervisor shares, a size no flavor matches, VMs Watcher
    must not touch) are dropped with a reason instead of being approximated.
    """
    flavors = list(flavors)
    out = Translation()
    for action in sorted(plan.actions, key=lambda a: a.index):
        if action.kind is ActionKind.LIVE_MIGRATE:
            vm = inventory.vms.get(action.vm_id or "")
            target = inventory.hosts.get(action.target_host_id or "")
            if vm is None or target is None or vm.host_id is None:
                out.dropped.append(f"step {action.index}: unknown VM or host in migration")
                continue
            if vm.attributes.get("movable") == "false":
                out.dropped.append(f"step {action.index}: {vm.id} is excluded from optimisation")
                continue
            source = inventory.hosts[action.source_host_id or vm.host_id]
            if source.id == target.id:
                continue
            out.actions.append(
                WatcherAction(
                    "migrate",
                    vm.id,
                    {
                        "migration_type": migration_type,
                        "source_node": source.name,
                        "destination_node": target.name,
                        "resource_name": vm.name,
                    },
                    action.kind.value,
                )
            )
        elif action.kind is ActionKind.RESIZE:
            vm = inventory.vms.get(action.vm_id or "")
            if not allow_resize or vm is None or action.size is None:
                out.dropped.append(f"step {action.index}: resize not allowed or VM unknown")
                continue
            if vm.attributes.get("movable") == "false":
                out.dropped.append(f"step {action.index}: {vm.id} is excluded from optimisation")
                continue
            host = inventory.hosts.get(vm.host_id or "")
            mhz = float(host.attributes.get("mhz_per_vcpu", 0)) if host else 0.0
            mhz = mhz or (vm.size.cpu / vm.vcpus if vm.vcpus else 0.0)
            flavor = smallest_flavor(action.size, vm, flavors, mhz)
            if flavor is None:
                out.dropped.append(f"step {action.index}: no flavor holds the size wanted for {vm.id}")
                continue
            if flavor.vcpus == vm.vcpus and flavor.ram == int(vm.size.memory):
                continue
            out.actions.append(WatcherAction("resize", vm.id, {"flavor": flavor.name}, action.kind.value))
        elif action.kind is ActionKind.SET_MAINTENANCE:
            host = inventory.hosts.get(action.host_id or "")
            if not allow_maintenance or host is None or action.maintenance is None:
                out.dropped.append(f"step {action.index}: maintenance not allowed or host unknown")
                continue
            params: dict[str, Any] = {
                "state": "disabled" if action.maintenance else "enabled",
                "resource_name": host.name,
            }
            if action.maintenance:
                # Nova prints and logs it: one line (names in the reason come from the cloud)
                reason = escape_controls(action.reason or "predicted conflict")
                params["disabled_reason"] = "cotenancy: " + reason[:200]
            out.actions.append(WatcherAction("change_nova_service_state", host.id, params, action.kind.value))
        else:
            out.dropped.append(f"step {action.index}: Watcher has no action for {action.kind.value}")
    return out


def placement_after(inventory: Inventory, translation: Translation) -> dict[str, str | None]:
    """Where every VM runs once the Watcher actions are applied."""
    by_name = {h.name: h.id for h in inventory.hosts.values()}
    placement = inventory.placement()
    for action in translation.actions:
        if action.action_type == "migrate":
            placement[action.resource_id] = by_name[action.input_parameters["destination_node"]]
    return placement


def host_conflicts(
    inventory: Inventory,
    demand: Mapping[str, Resources],
    placement: Mapping[str, str | None],
    headroom: float = 1.0,
) -> set[str]:
    """Hosts where the VMs' demand exceeds ``headroom`` x capacity in CPU or memory: the VMs there
    cannot all get what they ask for, which is the conflict the product exists to prevent. A VM a
    live migration is taking elsewhere counts on its placement and on its ``migration_target``."""
    totals: dict[str, Resources] = {}
    for vm_id, host_id in placement.items():
        if host_id is None or vm_id not in demand:
            continue
        totals[host_id] = totals.get(host_id, Resources()) + demand[vm_id]
    # a VM in flight weighs on the host it is landing on as well, until it lands
    for vm in inventory.vms.values():
        target = vm.migration_target
        if vm.state is not VMState.MIGRATING or target not in inventory.hosts or vm.id not in demand:
            continue
        if target != placement.get(vm.id):
            totals[target] = totals.get(target, Resources()) + demand[vm.id]
    conflicted = set()
    for host_id, total in totals.items():
        cap = inventory.hosts[host_id].capacity.scale(headroom)
        if total.cpu > cap.cpu + 1e-9 or total.memory > cap.memory + 1e-9:
            conflicted.add(host_id)
    return conflicted


def peak_demand(
    inventory: Inventory, telemetry: TelemetryWindow, quantile: float = 0.95
) -> dict[str, Resources]:
    """Per-VM demand to plan for: a high quantile of the window, so short peaks count.

    A VM with no usable sample is assumed to use its whole size: unknown must not look idle.
    """
    demand: dict[str, Resources] = {}
    for row, vm_id in enumerate(telemetry.vm_ids):
        vm = inventory.vms.get(vm_id)
        if vm is None:
            continue
        values = {}
        for metric, fallback in ((Metric.CPU.value, vm.size.cpu), (Metric.MEMORY.value, vm.size.memory)):
            series = telemetry.values.get(metric)
            samples = series[row][np.isfinite(series[row])] if series is not None else np.array([])
            values[metric] = float(np.quantile(samples, quantile)) if samples.size else float(fallback)
        demand[vm_id] = Resources(cpu=values["cpu"], memory=values["memory"])
    return demand


#: ``(pairs (k, 2) of VM indices in inventory order, hosts (k,) of host indices or None) -> (k,)``
PairScore = Callable[[np.ndarray, np.ndarray | None], np.ndarray]


def risky_hosts(
    inventory: Inventory,
    placement: Mapping[str, str | None],
    score: PairScore,
    threshold: float,
    involving: set[str] | None = None,
) -> set[str]:
    """Hosts holding a pair of VMs whose predicted conflict risk there reaches ``threshold``;
    with ``involving``, only pairs with at least one of those VMs count."""
    vm_ids = list(inventory.vms)
    vm_index = {vm_id: i for i, vm_id in enumerate(vm_ids)}
    host_index = {host_id: i for i, host_id in enumerate(inventory.hosts)}
    members: dict[str, list[int]] = {}
    for vm_id, host_id in placement.items():
        if host_id is not None and vm_id in vm_index:
            members.setdefault(host_id, []).append(vm_index[vm_id])
    pairs, hosts, owners = [], [], []
    for host_id, vms in members.items():
        for a, b in combinations(sorted(vms), 2):
            if involving is not None and not ({vm_ids[a], vm_ids[b]} & involving):
                continue
            pairs.append((a, b))
            hosts.append(host_index[host_id])
            owners.append(host_id)
    if not pairs:
        return set()
    risk = np.asarray(score(np.array(pairs, dtype=int), np.array(hosts, dtype=int)), dtype=float)
    return {owner for owner, r in zip(owners, risk, strict=True) if r >= threshold}
