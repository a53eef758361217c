"""Choose the few VMs worth moving this round and the hosts they may go to.

A model over every VM and host of an 800-host cloud would not solve in a second. Only VMs with a
reason to act are candidates: those on hosts in maintenance, in a forbidden pair, on hosts predicted
to overload, in a pair whose conflict risk passes the threshold, predicted to be slowed by their
neighbours' summed activity, or on the least-loaded hosts (consolidation). Every other VM stays
where it is and only its allocation may change. Each candidate gets its current host plus a few
destinations from a pool of hosts with room.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cotenancy.plan.interference import HostExposure, VmInterference
from cotenancy.plan.problem import PlanningProblem, combined_spread

_EPS = 1e-6
#: pair terms cheaper than this (objective units) change no plan and only grow the model
_MIN_PAIR_COST = 0.01


@dataclass(slots=True)
class CandidateModel:
    """Everything the solvers need: options per candidate VM, fixed loads per model host, pairs.

    An *option* is one (VM, host, mode) choice; mode ``scaled`` applies the VM's target allocation,
    otherwise the VM keeps its current (possibly lowered) allocation. Costs are in objective units.
    """

    problem: PlanningProblem
    candidates: list[int]
    reasons: dict[int, str]
    hosts: list[int]  # problem host indices present in the model
    fixed_held: np.ndarray  # (Hm, R) held by non-candidate VMs with their applied allocations
    fixed_demand: np.ndarray  # (Hm, R) predicted (quantile) demand of non-candidate VMs
    has_fixed: np.ndarray  # (Hm,) bool
    limit: np.ndarray  # (Hm, R) hard limit of what may be held
    overload_at: np.ndarray  # (Hm, R) predicted demand above this costs overload
    #: (Hm, R) predicted demand moves may not push a host past: the level that makes VMs move off
    #: it (a host already above keeps what it has); infinite where the resource is not counted
    ceiling: np.ndarray
    opt_vm: np.ndarray  # (O,) position in ``candidates``
    opt_host: np.ndarray  # (O,) position in ``hosts``
    opt_scaled: np.ndarray  # (O,) bool
    opt_held: np.ndarray  # (O, R)
    opt_demand: np.ndarray  # (O, R)
    opt_cost: np.ndarray  # (O,)
    opt_move: np.ndarray  # (O,) bool
    opt_risk: np.ndarray  # (O,) summed risk with the fixed residents of the option's host
    #: (O,) fixed residents of the option's host the VM may not meet (a hard rule or policy): only
    #: staying home can have any, since no destination holds one
    opt_violations: np.ndarray
    #: per candidate, the model hosts (positions in ``hosts``) its options end on
    cand_hosts: list[frozenset[int]]
    pairs: list[tuple[int, int, float, str]]  # (cand a, cand b, cost if together, what)
    #: (cand a, cand b, model host, cost if both end on that host): their conflict risk there, and
    #: what they add to each other's interference there, which the options (charged only against
    #: the VMs that stay) leave out
    host_pairs: list[tuple[int, int, int, float]]
    forbidden_pairs: list[tuple[int, int]]
    applied_size: np.ndarray  # (V, R) sizes of non-candidates after this round
    applied_reservation: np.ndarray  # (V, R)
    max_pair_risk: float = 0.0
    riskiest_pair: tuple[int, int] | None = None
    host_pos: dict[int, int] = field(default_factory=dict)
    #: objective units each pair kept apart by a hard rule or policy costs while it shares a host,
    #: more than every other cost together (so the fewest such pairs come first); 0 when no
    #: candidate starts beside a VM it may not meet
    violation_weight: float = 0.0

    def home_pos(self, cand_pos: int) -> int:
        """The model host (position in ``hosts``) the candidate is on now."""
        return self.host_pos[int(self.problem.host_of[self.candidates[cand_pos]])]

    def options_of(self, cand_pos: int) -> np.ndarray:
        return np.flatnonzero(self.opt_vm == cand_pos)

    def stay_option(self, cand_pos: int) -> int:
        """The option that changes least: stay, keep the current allocation where that is allowed."""
        vm = self.candidates[cand_pos]
        home = self.host_pos.get(int(self.problem.host_of[vm]), -1)
        opts = [o for o in self.options_of(cand_pos) if self.opt_host[o] == home]
        unscaled = [o for o in opts if not self.opt_scaled[o]]
        return int((unscaled or opts)[0])


def index_groups(keys: np.ndarray, n: int) -> list[np.ndarray]:
    """Indices per key value ``0..n-1``, ascending within each group; other keys (-1: not
    placed) belong to none. One sort serves every group."""
    order = np.argsort(keys, kind="stable")
    bounds = np.searchsorted(keys[order], np.arange(n + 1))
    return [order[bounds[k] : bounds[k + 1]] for k in range(n)]


def colocated_pairs(problem: PlanningProblem) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of VMs sharing a host now, a VM arriving on it included: ``(pairs (k, 2),
    hosts (k,))``."""
    pairs: list[np.ndarray] = []
    hosts: list[np.ndarray] = []
    for h, group in enumerate(problem.occupants()):
        if len(group) < 2:
            continue
        a, b = np.triu_indices(len(group), k=1)
        pairs.append(np.stack([group[a], group[b]], axis=1))
        hosts.append(np.full(len(a), h, dtype=int))
    if not pairs:
        return np.zeros((0, 2), dtype=int), np.zeros(0, dtype=int)
    return np.concatenate(pairs), np.concatenate(hosts)


def build_candidate_model(problem: PlanningProblem) -> CandidateModel:
    s = problem.settings
    n_h = len(problem.host_ids)
    cap = problem.capacity
    counted = problem.counted
    scale = problem.capacity_scale
    demand = problem.demand_or_held("high")
    held_target = problem.held_target
    pred_load = problem.host_demand()
    held_load = problem.host_sum(held_target)
    now_load = problem.host_sum(problem.held_now)
    limit_all = np.maximum(cap, now_load)
    # moves fill hosts only to the pack level, below the level that makes a host's VMs move
    over_at_all = s.pack_level * cap
    trigger = s.target_utilisation * cap
    # a host with none of a resource other hosts report is past its trigger (0) at any demand
    excess = np.where(counted[None, :], (pred_load - trigger) / scale, 0.0)
    excess = np.maximum(excess.max(axis=1), 0.0)
    held_over = (held_load > limit_all + _EPS).any(axis=1)

    pairs, pair_hosts = colocated_pairs(problem)
    pair_risk = problem.risk(pairs, pair_hosts)
    reasons: dict[int, str] = {}
    ordered: list[int] = []

    def add(vm: int, reason: str) -> None:
        if problem.pinned[vm] or vm in reasons:
            return
        reasons[vm] = reason
        ordered.append(vm)

    for h in np.flatnonzero(problem.maintenance):
        for vm in np.flatnonzero(problem.host_of == h):
            add(int(vm), f"host {problem.host_ids[h]} is in maintenance")
    breaking = [(int(a), int(b)) for a, b in pairs if problem.conflicting(int(a), int(b))]
    repairing = 0
    if breaking:
        # a VM with no host free of VMs it may not meet cannot repair anything by moving (twenty VMs
        # of one anti-affinity rule on five hosts); it would only take a candidate's place, and a
        # rule over hundreds of VMs would take them all
        movable = _can_repair(problem, sorted({v for pair in breaking for v in pair}))
        room = s.max_candidate_vms // 2
        for a, b in breaking:
            why = f"policy or rule forbids {problem.vm_ids[a]} and {problem.vm_ids[b]} on one host"
            for v in (a, b):
                if v in movable and room > 0 and v not in reasons and not problem.pinned[v]:
                    add(v, why)
                    room -= 1
                    repairing += 1
    cpu = 0
    for h in np.argsort(-excess):
        if excess[h] <= 0 and not held_over[h]:
            break
        on_host = np.flatnonzero(problem.host_of == h)
        on_host = on_host[np.argsort(-demand[on_host, cpu])]
        r_worst = int(np.argmax(np.where(counted, pred_load[h] / scale[h], -1)))
        resource = _resource_name(r_worst)
        if excess[h] <= 0:
            why = f"host {problem.host_ids[h]} cannot hold the allocations its VMs need"
        elif cap[h, r_worst] <= 0:
            why = (
                f"{problem.forecast_description}: host {problem.host_ids[h]} has no {resource} "
                f"for the {pred_load[h, r_worst]:.0f} its VMs need"
            )
        else:
            why = (
                f"{problem.forecast_description}: host {problem.host_ids[h]} {resource} "
                f"{pred_load[h, r_worst]:.0f} > {s.target_utilisation:.0%} of {cap[h, r_worst]:.0f}"
            )
        for vm in on_host:
            add(int(vm), why)
    order = np.argsort(-pair_risk)
    max_risk = float(pair_risk[order[0]]) if len(order) else 0.0
    riskiest = (int(pairs[order[0], 0]), int(pairs[order[0], 1])) if len(order) else None
    for k in order:
        if pair_risk[k] < s.risk_threshold:
            break
        a, b = int(pairs[k, 0]), int(pairs[k, 1])
        why = f"pair risk {pair_risk[k]:.2f} of {problem.vm_ids[a]} with {problem.vm_ids[b]}"
        add(a, why)
        add(b, why)
    inter = problem.interference if s.weight_interference > 0 else None
    slowed_vms: set[int] = set()
    if inter is not None and s.interference_candidates:
        placed = problem.host_of >= 0
        load = problem.host_sum(inter.activity[:, None])[:, 0]
        felt = np.where(placed, load[np.maximum(problem.host_of, 0)] - inter.activity, 0.0)
        slowed = np.where(placed, inter.slowdown(np.arange(len(felt)), felt), 0.0)
        offered = 0
        members = index_groups(problem.host_of, n_h) if s.interference_offer_neighbours else []
        for vm in np.argsort(-slowed, kind="stable"):
            if offered >= s.interference_candidates or slowed[vm] <= s.slowdown_limit:
                break
            if vm in reasons:
                continue
            host = problem.host_ids[problem.host_of[vm]]
            pressing = (
                _hardest_pressing(problem, inter, int(vm), members[problem.host_of[vm]]) if members else None
            )
            if problem.pinned[vm] and pressing is None:
                continue
            offered += 1
            if not problem.pinned[vm]:
                slowed_vms.add(int(vm))
                add(
                    int(vm),
                    f"predicted slowdown {slowed[vm]:.0%} from the activity of its neighbours on "
                    f"{host} (limit {s.slowdown_limit:.0%})",
                )
            if pressing is not None:
                slowed_vms.add(pressing)
                add(
                    pressing,
                    f"presses hardest on {problem.vm_ids[vm]} (predicted slowdown "
                    f"{slowed[vm]:.0%}) on {host}",
                )
    ordered = ordered[: s.max_candidate_vms]
    emptied: set[int] = set()
    # a drain the operator asked for comes first: consolidation would compete with it for the
    # migration budget and the destinations, so it waits until the hosts in maintenance are empty
    draining = any(problem.maintenance[problem.host_of[v]] for v in ordered)
    util = np.where(cap[:, cpu] > 0, pred_load[:, cpu] / np.maximum(cap[:, cpu], _EPS), 1.0)
    if s.underloaded_hosts and not draining:
        # a VM offered a quieter neighbourhood does not keep its host from being emptied
        busy_hosts = {int(problem.host_of[v]) for v in ordered if v not in slowed_vms}
        n_vms = np.bincount(problem.host_of[problem.host_of >= 0], minlength=n_h)
        for h in np.argsort(util):
            if len(emptied) >= s.underloaded_hosts or util[h] >= s.underload_threshold:
                break
            if n_vms[h] == 0 or problem.maintenance[h] or int(h) in busy_hosts:
                continue
            on_host = np.flatnonzero(problem.host_of == h)
            if problem.pinned[on_host].any() or len(ordered) + len(on_host) > s.max_candidate_vms:
                continue
            emptied.add(int(h))
            why = (
                f"{problem.forecast_description}: host {problem.host_ids[h]} predicted at "
                f"{util[h]:.0%} CPU; emptying it saves {problem.power_idle[h]:.0f} W"
            )
            for vm in on_host:
                add(int(vm), why)
    candidates = [v for v in ordered if v in reasons]

    # non-candidates keep their host; apply their allocation targets where their host can hold them
    applied_size = problem.target_size.copy()
    applied_res = problem.target_reservation.copy()
    keep_old = np.zeros(len(problem.vm_ids), dtype=bool)
    fixed_mask = np.ones(len(problem.vm_ids), dtype=bool)
    fixed_mask[candidates] = False
    fixed_held_all = problem.host_sum(np.where(fixed_mask[:, None], held_target, 0.0))
    for h in np.flatnonzero((fixed_held_all > limit_all + _EPS).any(axis=1)):
        keep_old[(problem.host_of == h) & fixed_mask] = True
    applied_size[keep_old] = problem.size[keep_old]
    applied_res[keep_old] = np.minimum(problem.reservation, problem.target_reservation)[keep_old]
    applied_held = problem.held(applied_size, applied_res)
    fixed_held_all = problem.host_sum(np.where(fixed_mask[:, None], applied_held, 0.0))
    # the non-candidates' host quantile (as problem.host_demand(fixed_mask)), kept in its parts:
    # each option adds a candidate's median and its share of the combined spread
    mid, spread = problem.demand_spread()
    fixed_spread_sq = problem.host_sum(np.where(fixed_mask[:, None], spread * spread, 0.0))
    fixed_spread = problem.host_sum(np.where(fixed_mask[:, None], spread, 0.0))
    rho = s.demand_correlation
    fixed_combined = combined_spread(fixed_spread_sq, fixed_spread, rho)
    fixed_demand_all = problem.host_sum(np.where(fixed_mask[:, None], mid, 0.0)) + fixed_combined
    occupants = problem.occupants()
    fixed_count = np.array([fixed_mask[on].sum() for on in occupants], dtype=int)
    exposure = (
        HostExposure(inter, problem.host_of, fixed_mask, n_h, s.slowdown_limit, problem.arriving)
        if inter is not None
        else None
    )

    # hosts offered for emptying stay possible destinations: the energy term decides which to empty
    pool = sorted(
        set(_destination_pool(problem, fixed_held_all, fixed_demand_all, limit_all, emptied, repairing))
        | emptied
    )
    home_hosts = sorted({int(problem.host_of[v]) for v in candidates})
    model_hosts = sorted(set(pool) | set(home_hosts))
    host_pos = {h: i for i, h in enumerate(model_hosts)}
    # a VM arriving on a host is one of its residents: it takes room there and meets its VMs
    residents: dict[int, np.ndarray] = {h: occupants[h][fixed_mask[occupants[h]]] for h in model_hosts}
    met = [
        (v, h) for v in candidates for h in sorted(set(pool) | {int(problem.host_of[v])}) if len(residents[h])
    ]
    # (candidate, resident, host): a VM in flight is scored on its source and on its target
    risk_with: dict[tuple[int, int, int], float] = {}
    if met and problem.pair_risk is not None:
        joined = np.concatenate(
            [np.stack([np.full(len(residents[h]), v), residents[h]], axis=1) for v, h in met]
        )
        where = np.concatenate([np.full(len(residents[h]), h) for _, h in met])
        values = problem.risk(joined, where)
        for (v, w), h, value in zip(joined.tolist(), where.tolist(), values.tolist(), strict=True):
            risk_with[(v, w, h)] = value
    mig = s.migration_model()
    opt_vm: list[int] = []
    opt_host: list[int] = []
    opt_scaled: list[bool] = []
    opt_held: list[np.ndarray] = []
    opt_demand: list[np.ndarray] = []
    opt_cost: list[float] = []
    opt_move: list[bool] = []
    opt_risk: list[float] = []
    opt_violations: list[int] = []
    d_mid = problem.demand_or_held("mid")
    # a host whose migration lanes moves in flight all take can neither send nor receive a VM
    lane_open = problem.may_start_migration()
    dests_of = _spread_destinations(
        problem,
        [v for v in candidates if lane_open[int(problem.host_of[v])]],
        held_target,
        demand,
        [h for h in pool if lane_open[h]],
        residents,
        fixed_held_all,
        fixed_demand_all,
        limit_all,
        risk_with,
        exposure,
    )
    for pos, v in enumerate(candidates):
        home = int(problem.host_of[v])
        held_scaled = held_target[v]
        kept = np.minimum(problem.reservation[v], problem.target_reservation[v])
        held_plain = problem.held(problem.size[v : v + 1], kept[None, :])[0]
        modes = [(True, held_scaled)]
        if (held_scaled > held_plain + _EPS).any():
            modes.append((False, held_plain))
        dests = dests_of[v] if lane_open[int(problem.host_of[v])] else []
        move_cost = s.weight_migration * mig.seconds(problem.size[v, 1]) + s.migration_fixed_cost
        # destinations hold no VM the candidate may not meet; its home may
        home_violations = sum(problem.conflicting(v, int(w)) for w in residents[home])
        for h in [home, *dests]:
            # what v adds to the host's quantile: its median plus its share of the combined spread
            adds = mid[v] + (
                combined_spread(fixed_spread_sq[h] + spread[v] ** 2, fixed_spread[h] + spread[v], rho)
                - fixed_combined[h]
            )
            fixed_risk = sum(risk_with.get((v, int(w), h), 0.0) for w in residents[h])
            soft_count = sum(problem.soft_conflicting(v, int(w)) for w in residents[h])
            slowed = exposure.option_cost(v, h) if exposure is not None else 0.0
            for scaled, held in modes:
                cost = (
                    s.weight_risk * fixed_risk
                    + s.weight_soft_rule * soft_count
                    + s.weight_interference * slowed
                )
                if h != home:
                    cost += move_cost
                if problem.maintenance[h]:
                    cost += s.weight_maintenance
                if cap[h, cpu] > 0:
                    share = min(1.0, d_mid[v, cpu] / cap[h, cpu])
                    cost += s.weight_energy * (problem.power_max[h] - problem.power_idle[h]) * share
                usable = counted & ~np.isnan(problem.demand_mid[v])
                if usable.any():
                    idle = np.maximum(held[usable] - d_mid[v, usable], 0.0) / scale[h, usable]
                    short = np.maximum(demand[v, usable] - held[usable], 0.0) / scale[h, usable]
                    cost += s.weight_idle_allocation * idle.sum() + s.weight_overload * short.sum()
                opt_vm.append(pos)
                opt_host.append(host_pos[h])
                opt_scaled.append(scaled)
                opt_held.append(held)
                opt_demand.append(adds)
                opt_cost.append(cost)
                opt_move.append(h != home)
                opt_risk.append(fixed_risk)
                opt_violations.append(home_violations if h == home else 0)
    cand_hosts = _hosts_per_candidate(opt_vm, opt_host, len(candidates))
    pair_list, risky_pairs, forbidden = _candidate_pairs(problem, candidates, cand_hosts, model_hosts)
    host_pairs = risky_pairs + (
        _shared_host_interference(candidates, exposure, cand_hosts, model_hosts, s.weight_interference)
        if exposure is not None
        else []
    )
    n_r = cap.shape[1]
    cm = CandidateModel(
        problem=problem,
        candidates=candidates,
        reasons=reasons,
        hosts=model_hosts,
        fixed_held=fixed_held_all[model_hosts] if model_hosts else np.zeros((0, n_r)),
        fixed_demand=fixed_demand_all[model_hosts] if model_hosts else np.zeros((0, n_r)),
        has_fixed=fixed_count[model_hosts] > 0 if model_hosts else np.zeros(0, dtype=bool),
        limit=limit_all[model_hosts] if model_hosts else np.zeros((0, n_r)),
        overload_at=over_at_all[model_hosts] if model_hosts else np.zeros((0, n_r)),
        ceiling=_ceiling(
            problem, model_hosts, trigger, fixed_demand_all, opt_vm, opt_host, opt_demand, candidates
        ),
        opt_vm=np.array(opt_vm, dtype=int),
        opt_host=np.array(opt_host, dtype=int),
        opt_scaled=np.array(opt_scaled, dtype=bool),
        opt_held=np.array(opt_held).reshape(-1, n_r),
        opt_demand=np.array(opt_demand).reshape(-1, n_r),
        opt_cost=np.array(opt_cost, dtype=float),
        opt_move=np.array(opt_move, dtype=bool),
        opt_risk=np.array(opt_risk, dtype=float),
        opt_violations=np.array(opt_violations, dtype=int),
        cand_hosts=cand_hosts,
        pairs=pair_list,
        host_pairs=host_pairs,
        forbidden_pairs=forbidden,
        applied_size=applied_size,
        applied_reservation=applied_res,
        max_pair_risk=max_risk,
        riskiest_pair=riskiest,
        host_pos=host_pos,
    )
    cm.violation_weight = _violation_weight(cm)
    return cm


def _violation_weight(cm: CandidateModel) -> float:
    """Objective units of one pair kept apart by a hard rule that still shares a host: 1 more than
    an upper bound of every other cost the model can have, so a plan with fewer such pairs always
    costs less, and plans with as many are compared on the usual objective. 0 when no candidate
    starts beside a VM it may not meet (a plan then never keeps one: the model forbids joining)."""
    broken = cm.opt_violations.any() or any(cm.home_pos(a) == cm.home_pos(b) for a, b in cm.forbidden_pairs)
    if not broken:
        return 0.0
    problem = cm.problem
    s = problem.settings
    n_cand, n_r = len(cm.candidates), cm.opt_demand.shape[1]
    most_cost = np.zeros(n_cand)
    np.maximum.at(most_cost, cm.opt_vm, cm.opt_cost)
    most_demand = np.zeros((n_cand, n_r))
    np.maximum.at(most_demand, cm.opt_vm, cm.opt_demand)
    scale = problem.capacity_scale[cm.hosts]
    over = np.maximum(cm.fixed_demand + most_demand.sum(axis=0) - cm.overload_at, 0.0)
    overload = float((np.where(problem.counted[None, :], s.weight_overload * over / scale, 0.0)).sum())
    pairs = sum(p[2] for p in cm.pairs) + sum(p[3] for p in cm.host_pairs)
    idle = s.weight_energy * float(problem.power_idle[cm.hosts].sum())
    return 1.0 + float(most_cost.sum()) + overload + pairs + idle


def _can_repair(problem: PlanningProblem, vms: list[int]) -> set[int]:
    """The VMs of ``vms`` that some host in service other than their own would take without a VM
    they may not meet (a hard anti-affinity rule or a co-tenancy policy); room is not looked at."""
    n_h = len(problem.host_ids)
    placed = problem.host_of >= 0
    classes = problem.conflict_class
    n_classes = int(classes.max()) + 1 if len(classes) else 0
    presence = np.zeros((n_h, n_classes), dtype=bool)
    presence[problem.host_of[placed], classes[placed]] = True
    forbidden = np.zeros((n_classes, n_classes), dtype=bool)
    for a, b in problem.forbidden_classes:
        forbidden[a, b] = forbidden[b, a] = True
    members_at = []
    for group in problem.hard_anti_groups:
        members = np.asarray(group, dtype=int)
        members = members[problem.host_of[members] >= 0]
        members_at.append(np.bincount(problem.host_of[members], minlength=n_h))
    groups_of: dict[int, list[int]] = {}
    for g, group in enumerate(problem.hard_anti_groups):
        for v in group:
            groups_of.setdefault(v, []).append(g)
    able: set[int] = set()
    for v in vms:
        home = int(problem.host_of[v])
        blocked = (presence & forbidden[classes[v]][None, :]).any(axis=1) | problem.maintenance
        for g in groups_of.get(v, ()):
            blocked |= members_at[g] > 0
        blocked[home] = True
        if not blocked.all():
            able.add(v)
    return able


def _ceiling(
    problem: PlanningProblem,
    model_hosts: list[int],
    trigger: np.ndarray,
    fixed_demand: np.ndarray,
    opt_vm: list[int],
    opt_host: list[int],
    opt_demand: list[np.ndarray],
    candidates: list[int],
) -> np.ndarray:
    """Per model host, the predicted demand moves may fill it to: the trigger level, or what it
    carries now when that is more. A move past the trigger would only be undone next round. A
    host with none of a resource that other hosts report has a trigger level of 0."""
    n_r = trigger.shape[1]
    if not model_hosts:
        return np.zeros((0, n_r))
    counted = problem.counted[None, :]
    now = fixed_demand[model_hosts].copy()
    pos_of = {h: i for i, h in enumerate(model_hosts)}
    home = [pos_of[int(problem.host_of[v])] for v in candidates]
    seen: set[int] = set()
    for vm_pos, h, adds in zip(opt_vm, opt_host, opt_demand, strict=True):
        if h == home[vm_pos] and vm_pos not in seen:  # every option at home adds the same demand
            seen.add(vm_pos)
            now[h] += adds
    return np.where(counted, np.maximum(trigger[model_hosts], now), np.inf)


def _resource_name(r: int) -> str:
    from cotenancy.plan.problem import RESOURCES

    return RESOURCES[r].value


def _destination_pool(
    problem: PlanningProblem,
    fixed_held: np.ndarray,
    fixed_demand: np.ndarray,
    limit: np.ndarray,
    excluded: set[int],
    repairing: int = 0,
) -> list[int]:
    """Hosts with room, spread from roomiest to tightest, plus the cheapest empty hosts.

    One empty host of each shape is enough for energy, but VMs a hard rule keeps apart
    (``repairing`` of them leave a host they share) need one host each: that many more are offered.

    Spreading (rather than taking only the roomiest) leaves the solver best-fit choices, which is
    what consolidation needs; the empty hosts let it power one on when nothing else fits. Room is
    measured in what a host has: one without a resource other hosts report (disk I/O on Hyper-V)
    still takes VMs that do not need it, and :func:`_destinations` keeps away those that do.
    """
    s = problem.settings
    cap = problem.capacity
    scale = np.maximum(cap, _EPS)
    room_soft = np.where(problem.counted & (cap > 0), (s.pack_level * cap - fixed_demand) / scale, np.inf)
    room_hard = np.where(problem.hard & (cap > 0), (limit - fixed_held) / scale, np.inf)
    room = np.minimum(room_soft.min(axis=1), room_hard.min(axis=1))
    occupied = np.bincount(problem.occupancy()[1], minlength=len(problem.host_ids)) > 0
    usable = ~problem.maintenance & (room > 0.02)
    usable[list(excluded)] = False
    active = np.flatnonzero(usable & occupied)
    active = active[np.argsort(-room[active], kind="stable")]
    n_active = min(len(active), max(1, s.destination_pool - 2))
    # half spread from roomiest to tightest, half the tightest that still have room (best fit)
    n_spread = (n_active + 1) // 2
    picks = (
        set(np.linspace(0, len(active) - 1, n_spread).round().astype(int).tolist()) if len(active) else set()
    )
    for i in range(len(active) - 1, -1, -1):
        if len(picks) >= n_active:
            break
        picks.add(i)
    pool = [int(active[i]) for i in sorted(picks)]
    empty = np.flatnonzero(usable & ~occupied)
    if len(empty):
        per_watt = problem.power_idle[empty] / np.maximum(cap[empty, 0], _EPS)
        seen: set[tuple[float, ...]] = set()
        for h in empty[np.argsort(per_watt, kind="stable")]:
            key = tuple(cap[h])
            if key in seen:
                continue
            seen.add(key)
            pool.append(int(h))
            if len(seen) >= 2:
                break
        spare = [int(h) for h in empty[np.argsort(per_watt, kind="stable")] if int(h) not in pool]
        pool.extend(spare[: min(repairing, s.destination_pool)])
    return pool


def _spread_destinations(
    problem: PlanningProblem,
    candidates: list[int],
    held_target: np.ndarray,
    demand: np.ndarray,
    pool: list[int],
    residents: dict[int, np.ndarray],
    fixed_held: np.ndarray,
    fixed_demand: np.ndarray,
    limit: np.ndarray,
    risk_with: dict[tuple[int, int, int], float],
    exposure: HostExposure | None,
) -> dict[int, list[int]]:
    """Each candidate's destinations, chosen largest first as if each took its best one.

    Ranking every candidate against the same free room gives them all the same few best-fit hosts,
    which hold only a handful: when hundreds of VMs may move at once (a cloud consolidating from
    one VM per host) most would find no room among their options. Counting the room the larger
    candidates are expected to take spreads the options over enough hosts for all of them.
    ``held_target`` and ``demand`` are every VM's allocation after this round and predicted demand.
    """
    taken = _Taken(
        held=np.zeros_like(fixed_held),
        demand=fixed_demand.copy(),
        moves=np.zeros(len(fixed_held), dtype=int),
    )
    largest = np.maximum(np.max(problem.capacity, axis=0, initial=0.0), _EPS)
    chosen: dict[int, list[int]] = {}
    for v in sorted(candidates, key=lambda v: -float((held_target[v] / largest).sum())):
        dests = _destinations(
            problem,
            v,
            held_target[v],
            demand[v],
            pool,
            residents,
            fixed_held,
            limit,
            risk_with,
            exposure,
            taken,
        )
        chosen[v] = dests
        if dests:
            taken.held[dests[0]] += held_target[v]
            taken.demand[dests[0]] += demand[v]
            taken.moves[dests[0]] += 1
    return chosen


@dataclass(slots=True)
class _Taken:
    """Per host, what the candidates ranked so far are expected to take: allocations, predicted
    demand (with what stays there) and incoming moves."""

    held: np.ndarray
    demand: np.ndarray
    moves: np.ndarray


def _destinations(
    problem: PlanningProblem,
    v: int,
    held: np.ndarray,
    need: np.ndarray,
    pool: list[int],
    residents: dict[int, np.ndarray],
    fixed_held: np.ndarray,
    limit: np.ndarray,
    risk_with: dict[tuple[int, int, int], float],
    exposure: HostExposure | None,
    taken: _Taken,
) -> list[int]:
    """The best few pool hosts for ``v``: room for it, nobody it may not meet, low risk and
    interference, best fit. Hosts the VM would fill past what the other candidates' expected
    choices leave (allocations, the per-host migration budget, or predicted demand past the pack
    level, its residents' included) come after the others. Hosts with none of a compressible
    resource the VM needs are no destination. ``held`` is the VM's allocation after this round,
    ``need`` its predicted demand."""
    s = problem.settings
    home = int(problem.host_of[v])
    counted = problem.counted
    needed = counted & (need > _EPS)
    scored: list[tuple[bool, float, int]] = []
    for h in pool:
        if h == home or problem.maintenance[h]:
            continue
        free = limit[h] - fixed_held[h]
        if (held > free + _EPS).any():
            continue
        if any(problem.conflicting(v, int(w)) for w in residents[h]):
            continue
        cap = problem.capacity[h]
        if (cap[needed] <= 0).any():
            continue
        contested = bool(
            taken.moves[h] >= s.max_migrations_per_host
            or (held > free - taken.held[h] + _EPS).any()
            or (taken.demand[h] + need > s.pack_level * cap + _EPS)[counted].any()
        )
        risk = sum(risk_with.get((v, int(w), h), 0.0) for w in residents[h])
        slack = float(
            np.min(np.where(cap > 0, (free - taken.held[h] - held) / np.maximum(cap, _EPS), np.inf))
        )
        slowed = exposure.option_cost(v, h) if exposure is not None else 0.0
        scored.append((contested, s.weight_risk * risk + s.weight_interference * slowed + 10.0 * slack, h))
    scored.sort()
    return [h for _, _, h in scored[: s.destinations_per_vm]]


def _hosts_per_candidate(opt_vm: list[int], opt_host: list[int], n_candidates: int) -> list[frozenset[int]]:
    """Each candidate's model hosts, built once: the pair terms and the solver both ask which
    hosts two candidates share (and sort what they find, so their terms keep a reproducible order)."""
    hosts_of: list[set[int]] = [set() for _ in range(n_candidates)]
    for pos, h in zip(opt_vm, opt_host, strict=True):
        hosts_of[pos].add(h)
    return [frozenset(h) for h in hosts_of]


def _candidate_pairs(
    problem: PlanningProblem,
    candidates: list[int],
    host_sets: list[frozenset[int]],
    model_hosts: list[int],
) -> tuple[list[tuple[int, int, float, str]], list[tuple[int, int, int, float]], list[tuple[int, int]]]:
    """Pairs of candidates that could end on one host: ``(soft, risky, forbidden)``.

    ``soft`` costs a pair a soft rule keeps apart wherever they meet. ``risky`` is the conflict
    risk of a pair on each model host both may end on, scored for that host: the risk model judges
    a pair on the host it would share (its load, its other residents), and a pair that does not
    share a host today has no risk at all without one.
    """
    s = problem.settings
    shared: list[tuple[int, int]] = [
        (a, b)
        for a in range(len(candidates))
        for b in range(a + 1, len(candidates))
        if not host_sets[a].isdisjoint(host_sets[b])
    ]
    forbidden = [(a, b) for a, b in shared if problem.conflicting(candidates[a], candidates[b])]
    forbidden_set = set(forbidden)
    rest = [p for p in shared if p not in forbidden_set]
    soft = [
        (a, b, s.weight_soft_rule, "soft anti-affinity")
        for a, b in rest
        if problem.soft_conflicting(candidates[a], candidates[b])
    ]
    risky: list[tuple[int, int, int, float]] = []
    meetings = [(a, b, hp) for a, b in rest for hp in sorted(host_sets[a] & host_sets[b])]
    if meetings and problem.pair_risk is not None:
        idx = np.array([[candidates[a], candidates[b]] for a, b, _ in meetings], dtype=int)
        hosts = np.array([model_hosts[hp] for _, _, hp in meetings], dtype=int)
        for (a, b, hp), risk in zip(meetings, problem.risk(idx, hosts).tolist(), strict=True):
            if risk >= s.min_pair_risk:
                risky.append((a, b, hp, s.weight_risk * risk))
    return soft, risky, forbidden


def _shared_host_interference(
    candidates: list[int],
    exposure: HostExposure,
    hosts_of: list[frozenset[int]],
    model_hosts: list[int],
    weight: float,
) -> list[tuple[int, int, int, float]]:
    """What two candidates cost each other on a host they may both end on (staying home included).

    Each option charges its VM only against the VMs that stay, so without this term the model
    would send two quiet-host seekers to the same quiet host, or leave a sensitive candidate next to
    a busy one that also stays, as if neither felt the other. The cost is the rise in each one's
    chance of being slowed past the limit that the other's activity brings on top of the host's
    staying load, in objective units; terms under ``_MIN_PAIR_COST`` are dropped.
    """
    cand = np.asarray(candidates, dtype=int)
    at_host: dict[int, set[int]] = {}
    for pos, hosts in enumerate(hosts_of):
        for hp in sorted(hosts):
            at_host.setdefault(hp, set()).add(pos)
    terms: list[tuple[int, int, int, float]] = []
    for hp, members in at_host.items():
        if len(members) < 2:
            continue
        pos = np.array(sorted(members), dtype=int)
        mutual = weight * exposure.mutual_cost(cand[pos], model_hosts[hp])
        a, b = np.nonzero(np.triu(mutual, k=1) >= _MIN_PAIR_COST)
        for i, j in zip(a.tolist(), b.tolist(), strict=True):
            terms.append((int(pos[i]), int(pos[j]), hp, float(mutual[i, j])))
    return terms


def _hardest_pressing(
    problem: PlanningProblem, inter: VmInterference, vm: int, on_host: np.ndarray
) -> int | None:
    """The movable neighbour of ``vm`` (among ``on_host``, its host's VMs) whose predicted
    activity × pressure weighs most on it."""
    neighbours = on_host[~problem.pinned[on_host] & (on_host != vm)]
    if not len(neighbours):
        return None
    return int(neighbours[np.argmax(inter.activity[neighbours])])
