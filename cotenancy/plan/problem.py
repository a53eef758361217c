"""The planning problem as arrays: what every VM holds now, what it should hold, what it will use.

Everything the planner reasons about is one number per VM (or host) and resource, in project units,
so the candidate selection, the CP-SAT model, the greedy fallback and the plan ordering agree.

*Holding* a resource: a host cannot overcommit the *hard* resources (memory, GPUs by default), so a
VM holds its whole size of them; *compressible* resources (CPU, I/O) are shared, and a VM holds its
reservation, which the planner sets from forecasts (``set_allocation``).

*In flight*: a VM a live migration is taking to another host (``VM.migration_target``) occupies
both hosts until it lands, as Nova's placement holds allocations on source and destination: what it
holds, its predicted demand and its company count on each. The source keeps it because the move may
still fail or be rolled back; the target because the VM is about to fill it.
"""

from __future__ import annotations

import logging
import math
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields

import numpy as np
from oslo_config import cfg

from cotenancy.exceptions import MalformedInputError
from cotenancy.model import (
    VM,
    Host,
    Inventory,
    Resource,
    Resources,
    RuleKind,
    VMState,
)
from cotenancy.model.policy import conflict_classes
from cotenancy.plan.interference import VmInterference
from cotenancy.plan.migration_cost import MigrationCostModel

LOG = logging.getLogger(__name__)

RESOURCES: tuple[Resource, ...] = tuple(Resource)

#: ``(pairs (k, 2) of VM indices, hosts (k,) of host indices or None) -> (k,) probabilities``
PairRiskFn = Callable[[np.ndarray, np.ndarray | None], np.ndarray]

#: idle and full-load watts of the CloudSim reference hosts (SPECpower figures)
_KNOWN_POWER = {"g4": (86.0, 117.0), "g5": (93.7, 135.0)}


@dataclass(slots=True)
class PlannerSettings:
    """The ``[planner]`` options as plain values (see :mod:`cotenancy.conf.plan` for meanings)."""

    target_utilisation: float = 0.85
    pack_utilisation: float = 0.75
    quantile: float = 0.95
    horizon_steps: int = 3
    demand_correlation: float = 0.3
    scale_up_threshold: float = 0.10
    scale_down_threshold: float = 0.30
    scale_down_rounds: int = 6
    max_allocation_steps: int = 20
    headroom: float = 0.10
    critical_headroom: float = 0.30
    hard_resources: tuple[str, ...] = ("memory", "gpu")
    manage_allocations: bool = True
    allow_resize: bool = True
    max_migrations: int = 10
    max_migrations_per_host: int = 2
    max_parallel_migrations: int = 4
    max_parallel_migrations_per_host: int = 1
    dirty_rate: float = 0.02
    link_bandwidth: float = 125.0
    precopy_rounds: int = 5
    time_limit: float = 0.5
    deterministic_time: float = 0.0
    workers: int = 2
    max_candidate_vms: int = 120
    destination_pool: int = 40
    destinations_per_vm: int = 12
    underloaded_hosts: int = 4
    underload_threshold: float = 0.25
    risk_threshold: float = 0.5
    min_pair_risk: float = 0.05
    weight_risk: float = 100.0
    weight_interference: float = 20.0
    slowdown_limit: float = 0.1
    interference_candidates: int = 20
    interference_offer_neighbours: bool = False
    weight_overload: float = 500.0
    weight_migration: float = 1.0
    migration_fixed_cost: float = 5.0
    weight_energy: float = 0.5
    weight_idle_allocation: float = 5.0
    weight_maintenance: float = 1000.0
    weight_soft_rule: float = 50.0

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts, group: str = "planner") -> PlannerSettings:
        section = getattr(conf, group)
        values = {}
        for f in fields(cls):
            value = getattr(section, f.name)
            values[f.name] = tuple(value) if isinstance(value, list) else value
        return cls(**values)

    @property
    def pack_level(self) -> float:
        """Utilisation moves may fill a host to: never above the level that triggers moves."""
        return min(self.pack_utilisation, self.target_utilisation)

    def migration_model(self) -> MigrationCostModel:
        return MigrationCostModel(self.dirty_rate, self.link_bandwidth, self.precopy_rounds)


@dataclass(slots=True)
class DemandForecast:
    """Predicted demand per VM (inventory order) and resource, over the planning horizon.

    ``high`` is at the planning quantile (worst horizon step), ``mid`` the median. A missing
    resource means "no forecast": the planner then trusts what the VM holds.
    """

    high: dict[Resource, np.ndarray]
    mid: dict[Resource, np.ndarray]
    description: str = "forecast"
    #: highest ``high`` of the last ``scale_down_rounds`` rounds: allocations are lowered only
    #: when this is low too (missing: ``high``)
    held_high: dict[Resource, np.ndarray] = field(default_factory=dict)


def host_power(host: Host) -> tuple[float, float]:
    """(idle, full-load) watts of ``host``, from attributes ``power_idle``/``power_max``,
    a known ``power_model`` name, or a generic server."""
    if "power_idle" in host.attributes and "power_max" in host.attributes:
        return float(host.attributes["power_idle"]), float(host.attributes["power_max"])
    model = (host.power_model or "").lower()
    for key, watts in _KNOWN_POWER.items():
        if key in model:
            return watts
    return 100.0, 200.0


@dataclass(slots=True)
class PlanningProblem:
    """Arrays describing one round. Index ``v`` is a VM, ``h`` a host, ``r`` a resource."""

    inventory: Inventory
    settings: PlannerSettings
    host_ids: list[str]
    vm_ids: list[str]
    capacity: np.ndarray  # (H, R)
    maintenance: np.ndarray  # (H,) bool
    power_idle: np.ndarray  # (H,)
    power_max: np.ndarray  # (H,)
    host_of: np.ndarray  # (V,) int, -1 when unplaced
    #: (V,) int: the host a live migration in flight is taking the VM to, -1 when none (or unknown)
    arriving: np.ndarray
    #: (V,) bool: a live migration is moving the VM now (its target known or not), or waits to
    in_flight: np.ndarray
    #: (V,) bool: of those, the moves that wait to start (``VM.migration_waits``): no lane yet
    waiting: np.ndarray
    size: np.ndarray  # (V, R)
    reservation: np.ndarray  # (V, R)
    target_size: np.ndarray  # (V, R)
    target_reservation: np.ndarray  # (V, R)
    demand_high: np.ndarray  # (V, R), NaN where unknown
    demand_mid: np.ndarray  # (V, R)
    pinned: np.ndarray  # (V,) bool: may not move this round
    critical: np.ndarray  # (V,) bool
    hard: np.ndarray  # (R,) bool
    forecast_description: str
    pair_risk: PairRiskFn | None
    conflict_class: np.ndarray  # (V,) int: class used by co-tenancy policies
    forbidden_classes: set[tuple[int, int]]
    #: (R,) False for resources no host reports a capacity of: nobody holds them
    managed: np.ndarray = field(default_factory=lambda: np.ones(len(RESOURCES), dtype=bool))
    #: per-VM sensitivity and activity for neighbourhood interference (None: not counted)
    interference: VmInterference | None = None
    hard_anti_groups: list[list[int]] = field(default_factory=list)
    soft_anti_groups: list[list[int]] = field(default_factory=list)
    vm_index: dict[str, int] = field(default_factory=dict)
    host_index: dict[str, int] = field(default_factory=dict)
    _anti_of: dict[int, set[int]] = field(default_factory=dict)
    _soft_of: dict[int, set[int]] = field(default_factory=dict)

    # -- derived quantities ------------------------------------------------------------------------

    @property
    def counted(self) -> np.ndarray:
        """(R,) compressible resources weighed against host capacity: those some host reports.

        A host that reports 0 of a counted resource has none of it, not an unlimited amount.
        """
        return ~self.hard & self.managed

    @property
    def capacity_scale(self) -> np.ndarray:
        """(H, R) capacity that turns amounts into shares of a host, never 0.

        A host's own capacity; for a host with none of a resource, the smallest capacity any host
        reports, so demand it cannot serve costs at least what it would on the smallest real host.
        """
        cap = self.capacity
        reported = np.where(cap > 0, cap, np.inf)
        smallest = np.min(reported, axis=0, initial=np.inf)
        fallback = np.where(np.isfinite(smallest), smallest, 1.0)
        return np.where(cap > 0, cap, fallback[None, :])

    def held(self, size: np.ndarray, reservation: np.ndarray) -> np.ndarray:
        """What VMs hold of each resource given their size and reservation."""
        held = np.where(self.hard, size, np.minimum(reservation, size))
        return np.where(self.managed, held, 0.0)

    @property
    def held_now(self) -> np.ndarray:
        return self.held(self.size, self.reservation)

    @property
    def held_target(self) -> np.ndarray:
        return self.held(self.target_size, self.target_reservation)

    def demand_or_held(self, which: str = "high") -> np.ndarray:
        """Predicted demand where known, else what the VM holds (its best guess of use)."""
        demand = self.demand_high if which == "high" else self.demand_mid
        return np.where(np.isnan(demand), self.held_target, demand)

    def demand_spread(self) -> tuple[np.ndarray, np.ndarray]:
        """Each VM's median demand and its spread up to the planning quantile, both (V, R)."""
        mid = self.demand_or_held("mid")
        return mid, np.maximum(self.demand_or_held("high") - mid, 0.0)

    def host_demand(self, mask: np.ndarray | None = None) -> np.ndarray:
        """Predicted demand of each host at the planning quantile, (H, R), from the VMs in ``mask``.

        Co-located VMs rarely peak together, so a host's quantile is not the sum of theirs: it is
        their medians plus :func:`combined_spread` of their spreads.
        """
        mid, spread = self.demand_spread()
        if mask is not None:
            mid = np.where(mask[:, None], mid, 0.0)
            spread = np.where(mask[:, None], spread, 0.0)
        return self.host_sum(mid) + combined_spread(
            self.host_sum(spread * spread), self.host_sum(spread), self.settings.demand_correlation
        )

    def host_sum(self, per_vm: np.ndarray, host_of: np.ndarray | None = None) -> np.ndarray:
        """Sum per host of a (V, R) array for a placement; the current one (``host_of`` None)
        counts VMs in flight on their target host too."""
        out = np.zeros((len(self.host_ids), per_vm.shape[1]))
        vms, hosts = self.occupancy() if host_of is None else self._placed(host_of)
        np.add.at(out, hosts, per_vm[vms])
        return out

    @staticmethod
    def _placed(host_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        vms = np.flatnonzero(host_of >= 0)
        return vms, host_of[vms]

    def occupancy(self) -> tuple[np.ndarray, np.ndarray]:
        """``(vms, hosts)``: every host each VM takes room on now, its own and, for a VM in
        flight, the one it is arriving on (such a VM is listed twice)."""
        vms, hosts = self._placed(self.host_of)
        inflight = np.flatnonzero(self.arriving >= 0)
        if not len(inflight):
            return vms, hosts
        return np.concatenate([vms, inflight]), np.concatenate([hosts, self.arriving[inflight]])

    def occupants(self) -> list[np.ndarray]:
        """Per host, the VMs that take room on it now (ascending), those arriving included."""
        vms, hosts = self.occupancy()
        order = np.lexsort((vms, hosts))
        bounds = np.searchsorted(hosts[order], np.arange(len(self.host_ids) + 1))
        return [vms[order[bounds[h] : bounds[h + 1]]] for h in range(len(self.host_ids))]

    def lanes_in_use(self) -> tuple[np.ndarray, int]:
        """Live migrations running now: per host, those leaving or (where the target is known)
        entering it, and their number in the whole cloud. Each takes one of the migration lanes
        (``max_parallel_migrations_per_host``, ``max_parallel_migrations``) until it lands; a move
        that waits for its window (a vCenter scheduled task) takes none until it runs, or a
        relocation written for the night would shut its hosts to every move all day."""
        per_host = np.zeros(len(self.host_ids), dtype=int)
        moving = np.flatnonzero(self.in_flight & ~self.waiting & (self.host_of >= 0))
        np.add.at(per_host, self.host_of[moving], 1)
        arriving = self.arriving[moving]
        np.add.at(per_host, arriving[arriving >= 0], 1)
        return per_host, len(moving)

    def free_lanes(self) -> tuple[np.ndarray, int]:
        """Migration lanes a new plan may use: per host, and in the whole cloud (never below 0)."""
        s = self.settings
        per_host, total = self.lanes_in_use()
        return (
            np.maximum(s.max_parallel_migrations_per_host - per_host, 0),
            max(s.max_parallel_migrations - total, 0),
        )

    def may_start_migration(self) -> np.ndarray:
        """(H,) True where a new migration may leave or enter the host this round: a lane is free
        on it and in the cloud. A plan cannot wait for a move in flight to land (it is no step),
        so a host whose lanes are all taken is touched by no migration until the next round."""
        per_host, total = self.free_lanes()
        return (per_host > 0) & (total > 0)

    def conflicting(self, a: int, b: int) -> bool:
        """True when a hard policy or hard anti-affinity rule forbids ``a`` and ``b`` on one host."""
        if a == b or not (self.forbidden_classes or self._anti_of):
            return False  # the common cloud with no policies or hard rules: nothing to look up
        ca, cb = int(self.conflict_class[a]), int(self.conflict_class[b])
        if (ca, cb) in self.forbidden_classes:
            return True
        return b in self._anti_of.get(a, ())

    def soft_conflicting(self, a: int, b: int) -> bool:
        return b in self._soft_of.get(a, ())

    def risk(self, pairs: np.ndarray, hosts: np.ndarray | None = None) -> np.ndarray:
        """Pair conflict probabilities (zeros without a risk model)."""
        if len(pairs) == 0 or self.pair_risk is None:
            return np.zeros(len(pairs))
        values = np.asarray(self.pair_risk(pairs, hosts), dtype=float)
        return np.nan_to_num(values, nan=0.0, posinf=1.0, neginf=0.0).clip(0.0, 1.0)


def combined_spread(sum_of_squares: np.ndarray, total: np.ndarray, correlation: float) -> np.ndarray:
    """Spread above the median of a sum of VMs' demands, from their own spreads.

    With correlation 0 the spreads add in quadrature (independent VMs); with 1 they add up (every
    VM peaks at once, the sum of quantiles). In between, a uniform pairwise correlation.
    """
    rho = min(max(correlation, 0.0), 1.0)
    return np.sqrt(np.maximum((1.0 - rho) * sum_of_squares + rho * total * total, 0.0))


def build_problem(
    inventory: Inventory,
    settings: PlannerSettings,
    forecast: DemandForecast | None = None,
    pair_risk: PairRiskFn | None = None,
    migrating: Iterable[str] = (),
    interference: VmInterference | None = None,
) -> PlanningProblem:
    """Turn an inventory, forecasts and a risk model into a :class:`PlanningProblem`."""
    hosts = list(inventory.hosts.values())
    vms = list(inventory.vms.values())
    host_index = {h.id: i for i, h in enumerate(hosts)}
    vm_index = {v.id: i for i, v in enumerate(vms)}
    n_v, n_r = len(vms), len(RESOURCES)
    capacity = _matrix([h.capacity for h in hosts])
    _check_capacity(hosts, capacity)
    size = _matrix([v.size for v in vms])
    reservation = _matrix([v.allocation.reservation for v in vms])
    hard = np.array([r.value in hard_resources(settings, hosts) for r in RESOURCES])
    high = np.full((n_v, n_r), np.nan)
    mid = np.full((n_v, n_r), np.nan)
    recent = np.full((n_v, n_r), np.nan)
    if forecast is not None:
        for r_i, resource in enumerate(RESOURCES):
            if resource in forecast.high:
                high[:, r_i] = np.asarray(forecast.high[resource], dtype=float)
                mid[:, r_i] = np.asarray(forecast.mid.get(resource, forecast.high[resource]), dtype=float)
                peak = np.asarray(forecast.held_high.get(resource, forecast.high[resource]), dtype=float)
                recent[:, r_i] = np.fmax(peak, high[:, r_i])
        _clean_forecast(high, mid, recent, [v.id for v in vms])
    unmanaged = unmanaged_entries(capacity, size)
    accounted = ~np.isin([r.value for r in RESOURCES], sorted(ignored_resources(hosts)))
    unmanaged |= ~accounted[None, :]
    # a resource the cloud does not size (0 = not reported) is not managed: nothing to forecast,
    # grow, reserve or fit, so a driver without disk or network figures does not block every move
    high[unmanaged] = np.nan
    mid[unmanaged] = np.nan
    recent[unmanaged] = np.nan
    host_of = np.array([host_index.get(v.host_id, -1) if v.host_id else -1 for v in vms], dtype=int)
    moving = set(migrating)
    pinned = np.array(
        [v.id in moving or v.state is not VMState.ACTIVE or host_of[i] < 0 for i, v in enumerate(vms)],
        dtype=bool,
    )
    frozen = pinned.copy()
    arriving = _arriving(vms, host_index, host_of, moving)
    in_flight = np.array([v.state is VMState.MIGRATING or v.id in moving for v in vms], dtype=bool)
    hard_anti: list[list[int]] = []
    soft_anti: list[list[int]] = []
    for rule in inventory.rules:
        members = [vm_index[v] for v in rule.vm_ids if v in vm_index]
        if rule.kind is RuleKind.AFFINITY:
            if rule.hard:
                pinned[members] = True
            continue
        (hard_anti if rule.hard else soft_anti).append(members)
    classes, forbidden_matrix = conflict_classes(vms, inventory.policies)
    forbidden = {(int(a), int(b)) for a, b in zip(*np.nonzero(forbidden_matrix), strict=True)}
    critical = np.array([v.critical for v in vms], dtype=bool)
    target_size, target_reservation = _target_allocations(
        size, reservation, high, hard, critical, settings, recent
    )
    # VMs that are moving, stopped or nowhere keep everything: changing them mid-flight helps nobody
    target_size[frozen] = size[frozen]
    target_reservation[frozen] = reservation[frozen]
    _limit_allocation_changes(target_reservation, reservation, high, capacity, host_of, hard, settings)
    problem = PlanningProblem(
        inventory=inventory,
        settings=settings,
        host_ids=[h.id for h in hosts],
        vm_ids=[v.id for v in vms],
        capacity=capacity,
        maintenance=np.array([h.maintenance for h in hosts], dtype=bool),
        power_idle=np.array([host_power(h)[0] for h in hosts]),
        power_max=np.array([host_power(h)[1] for h in hosts]),
        host_of=host_of,
        arriving=arriving,
        in_flight=in_flight & (host_of >= 0),
        waiting=np.array([v.migration_waits for v in vms], dtype=bool) & in_flight,
        size=size,
        reservation=reservation,
        target_size=target_size,
        target_reservation=target_reservation,
        demand_high=high,
        demand_mid=mid,
        pinned=pinned,
        critical=critical,
        hard=hard,
        managed=((capacity > 0).any(axis=0) & accounted) if hosts else np.zeros(n_r, dtype=bool),
        forecast_description=forecast.description if forecast is not None else "no forecast",
        pair_risk=pair_risk,
        interference=interference,
        conflict_class=classes,
        forbidden_classes=forbidden,
        hard_anti_groups=hard_anti,
        soft_anti_groups=soft_anti,
        vm_index=vm_index,
        host_index=host_index,
    )
    for group in hard_anti:
        for a in group:
            problem._anti_of.setdefault(a, set()).update(b for b in group if b != a)
    for group in soft_anti:
        for a in group:
            problem._soft_of.setdefault(a, set()).update(b for b in group if b != a)
    return problem


def _arriving(vms: list[VM], host_index: dict[str, int], host_of: np.ndarray, moving: set[str]) -> np.ndarray:
    """Per VM, the host a live migration in flight is taking it to (-1 when none): only a VM that
    is migrating has one, and a target the inventory does not list is unknown."""
    out = np.full(len(vms), -1, dtype=int)
    for i, v in enumerate(vms):
        if v.migration_target is None or not (v.state is VMState.MIGRATING or v.id in moving):
            continue
        target = host_index.get(v.migration_target, -1)
        if target >= 0 and host_of[i] >= 0 and target != host_of[i]:
            out[i] = target
    return out


def hard_resources(settings: PlannerSettings, hosts: list[Host]) -> set[str]:
    """The configured hard resources, less memory when no host admits VMs by memory.

    A cloud whose hosts say ``memory_admission = none`` (CloudSim's reference setup) overcommits
    memory freely; holding VMs to it there would plan against rules the cloud does not have.
    """
    hard = set(settings.hard_resources)
    if hosts and all(h.attributes.get("memory_admission") == "none" for h in hosts):
        hard.discard(Resource.MEMORY.value)
    return hard


def ignored_resources(hosts: list[Host]) -> set[str]:
    """Resources the cloud itself does not account per host, which the planner then leaves alone.

    Hosts that admit VMs without looking at memory (``memory_admission = none``, as CloudSim's
    reference hosts) neither refuse nor slow a VM for memory; forecasting memory against their
    capacity would only make the planner spread VMs for a limit the cloud does not have.
    """
    if hosts and all(h.attributes.get("memory_admission") == "none" for h in hosts):
        return {Resource.MEMORY.value}
    return set()


def unmanaged_entries(capacity: np.ndarray, size: np.ndarray) -> np.ndarray:
    """(V, R) mask of what the planner leaves alone: resources no host reports a capacity for,
    and resources a VM has no size of (drivers report 0 when they do not size or limit it)."""
    no_capacity = ~(capacity > 0).any(axis=0) if len(capacity) else np.ones(size.shape[1], dtype=bool)
    return no_capacity[None, :] | ~(size > 0)


def _check_capacity(hosts: list[Host], capacity: np.ndarray) -> None:
    """Refuse host capacities that are not a finite amount >= 0, naming the hosts.

    Every safety check of the plan compares against capacity, so a host whose size is unknown
    cannot be planned around silently: its VMs could not be drained and others could land on it.
    The round fails instead; the next one reads the inventory again, which may then be whole.
    """
    bad = ~np.isfinite(capacity) | (capacity < 0)
    if not bad.any():
        return
    where = [f"host {hosts[h].id} {RESOURCES[r].value} {capacity[h, r]}" for h, r in np.argwhere(bad)]
    raise MalformedInputError(
        "inventory",
        None,
        "host capacities must be finite amounts >= 0 (0 = not sized), got: " + ", ".join(where),
    )


def _clean_forecast(high: np.ndarray, mid: np.ndarray, recent: np.ndarray, vm_ids: list[str]) -> None:
    """Make forecasts usable, in place: an infinite value makes that VM's forecast of that resource
    unknown (NaN), as a missing one is, and negative values become 0, since no VM frees capacity by
    running."""
    broken = np.isinf(high) | np.isinf(mid) | np.isinf(recent)
    if broken.any():
        names = [vm_ids[v] for v in np.flatnonzero(broken.any(axis=1))]
        LOG.warning(
            "infinite forecast for %d VMs (%s); planning them as without a forecast",
            len(names),
            ", ".join(names[:5]) + (", ..." if len(names) > 5 else ""),
        )
        for values in (high, mid, recent):
            values[broken] = np.nan
    for values in (high, mid, recent):
        np.maximum(values, 0.0, out=values, where=~np.isnan(values))


def _matrix(values: list[Resources]) -> np.ndarray:
    if not values:
        return np.zeros((0, len(RESOURCES)))
    amounts = operator.attrgetter(*(r.value for r in RESOURCES))
    return np.array([amounts(v) for v in values], dtype=float)


def _target_allocations(
    size: np.ndarray,
    reservation: np.ndarray,
    high: np.ndarray,
    hard: np.ndarray,
    critical: np.ndarray,
    settings: PlannerSettings,
    recent_high: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rule-based allocation targets with hysteresis.

    Raise a reservation when predicted demand exceeds it by ``scale_up_threshold``; lower it when
    demand, and the highest forecast of recent rounds (``recent_high``), stay below
    ``1 - scale_down_threshold`` of it; otherwise keep it, so small swings do not produce a step
    every round. Critical VMs get ``critical_headroom`` instead of ``headroom``.
    A VM whose demand outgrows its size is resized (when allowed).
    """
    headroom = np.where(critical, settings.critical_headroom, settings.headroom)[:, None]
    known = ~np.isnan(high)
    # rounded first so float noise (360 x 1.1 = 396.00000000000006) does not ceil to the next unit
    want = np.round(np.where(known, high, 0.0) * (1.0 + headroom), 6)
    target_size = size.copy()
    if settings.allow_resize:
        grow = known & (np.where(known, high, 0.0) > size * (1.0 + settings.scale_up_threshold))
        target_size = np.where(grow, np.ceil(want), size)
    target_res = reservation.copy()
    if settings.manage_allocations:
        soft = ~hard[None, :]
        up = known & (np.where(known, high, 0.0) > reservation * (1.0 + settings.scale_up_threshold))
        peak = high if recent_high is None else np.fmax(recent_high, high)
        down = known & (np.where(known, peak, 0.0) < reservation * (1.0 - settings.scale_down_threshold))
        change = soft & (up | down)
        # a new reservation covers the recent peaks too, so the next burst does not raise it again
        # and a lowered one is not raised right back
        want_peak = np.round(np.where(known, peak, 0.0) * (1.0 + headroom), 6)
        rounded = np.ceil(np.minimum(want_peak, target_size))
        # changes below 1 % of the size are noise, not worth a step
        material = np.abs(rounded - reservation) > 0.01 * np.maximum(size, 1.0)
        target_res = np.where(change & material, rounded, reservation)
    return target_size, target_res


def _limit_allocation_changes(
    target: np.ndarray,
    reservation: np.ndarray,
    high: np.ndarray,
    capacity: np.ndarray,
    host_of: np.ndarray,
    hard: np.ndarray,
    settings: PlannerSettings,
) -> None:
    """Keep at most ``max_allocation_steps`` reservation changes (in place), the most useful first.

    Usefulness is the objective's own view: demand newly covered weighs ``weight_overload``,
    allocation freed ``weight_idle_allocation``, both per unit of the host's capacity.
    """
    budget = settings.max_allocation_steps
    changing = (np.abs(target - reservation) > 1e-6).any(axis=1)
    if budget <= 0 or changing.sum() <= budget:
        return
    cap = capacity[np.maximum(host_of, 0)] if len(capacity) else np.ones_like(target)
    cap = np.where(cap > 0, cap, np.inf)
    demand = np.where(np.isnan(high), 0.0, high)
    covered = np.maximum(np.minimum(demand, target) - reservation, 0.0)
    freed = np.maximum(reservation - target, 0.0)
    soft = ~hard[None, :]
    value = np.where(
        soft, settings.weight_overload * covered / cap + settings.weight_idle_allocation * freed / cap, 0.0
    ).sum(axis=1)
    ranked = np.flatnonzero(changing)[np.argsort(-value[changing], kind="stable")]
    waiting = ranked[budget:]
    target[waiting] = reservation[waiting]


def fmt_amount(value: float) -> str:
    return f"{value:.0f}" if math.isfinite(value) else "?"
