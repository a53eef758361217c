"""The CP-SAT model over the candidate options.

One Boolean per option (VM, host, allocation mode), exactly one per candidate. Hard constraints:
what VMs hold fits every host on every resource, forbidden pairs never share a host, and the
migration budget holds per round and per host. A pair kept apart by a hard rule or policy that
already shares a host may stay together (at a cost larger than all the rest), but no VM joins one
it may not meet. The objective adds the option costs (migration
time, energy share, idle or missing allocation, risk with VMs that stay), the risk of candidate
pairs that end together (on any host, or on one host for what they add to each other's
interference), the predicted demand above target utilisation, and the idle power of
hosts the solution switches on. CP-SAT needs integers, so costs are scaled by ``SCALE``.

Integer units are chosen so the integer model agrees with the greedy's floating-point view of the
same costs: overload is counted in objective units (not in MHz or KiB/s, where a per-unit cost of
``SCALE × weight_overload / capacity`` would round to 0 on big hosts and be ignored), and a
resource held in fractions (GPU shares) is counted in thousandths.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model

from cotenancy.plan.candidates import CandidateModel, index_groups
from cotenancy.plan.greedy import Assignment

#: objective units are multiplied by this and rounded
SCALE = 100
#: pair terms beyond this (the cheapest ones) are left out so the model stays small
MAX_PAIR_TERMS = 3000
#: integer steps per unit of a resource held in fractions (GPU shares)
_FRACTION_STEPS = 1000
_EPS = 1e-6


@dataclass(slots=True)
class SolveResult:
    assignment: Assignment | None
    status: str
    objective: float
    bound: float
    gap: float
    wall_seconds: float


def _relative_gap(objective: float, bound: float) -> float:
    return abs(objective - bound) / max(1.0, abs(objective))


def _unit_steps(*arrays: np.ndarray) -> np.ndarray:
    """(R,) integer steps per resource unit: 1 where every amount is whole, else ``_FRACTION_STEPS``."""
    steps = np.ones(arrays[0].shape[-1])
    for values in arrays:
        flat = values.reshape(-1, values.shape[-1])
        fractional = (np.abs(flat - np.round(flat)) > _EPS).any(axis=0)
        steps[fractional] = _FRACTION_STEPS
    return steps


def _max_per_candidate(amounts: np.ndarray, cands: np.ndarray) -> int:
    """Largest total the options can add: each candidate contributes at most its largest option."""
    best: dict[int, int] = {}
    for amount, cand in zip(amounts.tolist(), cands.tolist(), strict=True):
        if amount > best.get(cand, 0):
            best[cand] = amount
    return sum(best.values())


def solve_cpsat(cm: CandidateModel, hint: Assignment | None = None) -> SolveResult:
    """Solve within ``time_limit``; the best solution found by then is returned with its gap."""
    started = time.perf_counter()
    problem = cm.problem
    s = problem.settings
    if not (np.isfinite(cm.opt_held).all() and np.isfinite(cm.opt_demand).all()):
        raise ValueError("candidate options hold or demand an unknown (NaN or infinite) amount")
    model = cp_model.CpModel()
    n_opt, n_cand, n_hosts = len(cm.opt_vm), len(cm.candidates), len(cm.hosts)
    x = [model.new_bool_var(f"x{o}") for o in range(n_opt)]
    chosen = np.zeros(n_opt, dtype=bool)
    if hint is not None:
        chosen[hint.choice[hint.choice >= 0]] = True
    hints: list[tuple[cp_model.IntVar, int]] = [(x[o], int(chosen[o])) for o in range(n_opt)]
    terms: list[cp_model.IntVar] = []
    weights: list[int] = []
    #: the largest value of each term, for a bound of the objective without hard-rule pairs
    uppers: list[int] = []

    by_cand = index_groups(cm.opt_vm, n_cand)
    by_host = index_groups(cm.opt_host, n_hosts)
    for opts in by_cand:
        model.add_exactly_one(x[o] for o in opts.tolist())
    option_coef = np.rint(SCALE * cm.opt_cost).astype(np.int64)
    for o in np.flatnonzero(option_coef).tolist():
        terms.append(x[o])
        weights.append(int(option_coef[o]))
        uppers.append(1)

    cap = problem.capacity[cm.hosts] if n_hosts else np.zeros((0, problem.capacity.shape[1]))
    steps = _unit_steps(cm.opt_held, cm.limit, cm.fixed_held)
    held_units = np.ceil(cm.opt_held * steps - _EPS).astype(np.int64)
    room_units = np.maximum(0, np.floor((cm.limit - cm.fixed_held) * steps + _EPS)).astype(np.int64)
    # overload in objective integers: SCALE × weight_overload × (demand above the target) / capacity;
    # a host with none of a counted resource is scaled as the smallest host that has some
    scale = problem.capacity_scale[cm.hosts] if n_hosts else np.ones_like(cap)
    per_unit = np.where(problem.counted[None, :], SCALE * s.weight_overload / scale, 0.0)
    for h, opts in enumerate(by_host):
        if not len(opts):
            continue
        opt_list = opts.tolist()
        host_x = [x[o] for o in opt_list]
        for r in range(cap.shape[1]):
            amounts = held_units[opts, r]
            if amounts.any() and amounts.sum() > room_units[h, r]:
                model.add(cp_model.LinearExpr.weighted_sum(host_x, amounts.tolist()) <= int(room_units[h, r]))
            if per_unit[h, r] <= 0:
                continue
            demands = np.ceil(cm.opt_demand[opts, r] * per_unit[h, r] - _EPS).astype(np.int64)
            if np.isfinite(cm.ceiling[h, r]) and demands.any():
                # moves stop at the trigger level; staying is always allowed (rounding included):
                # a candidate's options at home all add the same demand
                stay = ~cm.opt_move[opts]
                _, first = np.unique(cm.opt_vm[opts][stay], return_index=True)
                home_units = int(demands[stay][first].sum())
                allowed_in = math.floor((cm.ceiling[h, r] - cm.fixed_demand[h, r]) * per_unit[h, r] + _EPS)
                ceiling = max(allowed_in, home_units)
                if demands.sum() > ceiling:
                    model.add(cp_model.LinearExpr.weighted_sum(host_x, demands.tolist()) <= ceiling)
            allowed = math.floor((cm.overload_at[h, r] - cm.fixed_demand[h, r]) * per_unit[h, r] + _EPS)
            most = _max_per_candidate(demands, cm.opt_vm[opts])
            if not demands.any() or most <= allowed:
                continue  # this host cannot pass its target whatever the candidates do
            excess = model.new_int_var(0, most - allowed, f"over{h}_{r}")
            hints.append((excess, max(0, int(demands[chosen[opts]].sum()) - allowed)))
            model.add(cp_model.LinearExpr.weighted_sum(host_x, demands.tolist()) - excess <= allowed)
            terms.append(excess)
            weights.append(1)
            uppers.append(most - allowed)
        if not cm.has_fixed[h]:
            active = model.new_bool_var(f"on{h}")
            hints.append((active, int(chosen[opts].any())))
            for var in host_x:
                model.add_implication(var, active)
            idle = round(SCALE * s.weight_energy * problem.power_idle[cm.hosts[h]])
            if idle:
                terms.append(active)
                weights.append(idle)
                uppers.append(1)

    at: dict[tuple[int, int], list[int]] = {}
    for o, (pos, h) in enumerate(zip(cm.opt_vm.tolist(), cm.opt_host.tolist(), strict=True)):
        at.setdefault((pos, h), []).append(o)

    def together(a: int, b: int) -> list[int]:
        return sorted(cm.cand_hosts[a] & cm.cand_hosts[b])

    # a pair kept apart by a hard rule may not meet on a host, unless both are there already (the
    # rule is broken now): staying is allowed and costs, joining never, so no plan makes it worse
    kept_together: list[tuple[int, int, int]] = []
    for a, b in cm.forbidden_pairs:
        home = cm.home_pos(a)
        for h in together(a, b):
            if h == home == cm.home_pos(b):
                kept_together.append((a, b, h))
            else:
                model.add_at_most_one(x[o] for o in at[(a, h)] + at[(b, h)])
    together_cost: dict[tuple[int, int, int], float] = {}
    for a, b, cost, _ in cm.pairs:
        for h in together(a, b):
            together_cost[(a, b, h)] = together_cost.get((a, b, h), 0.0) + cost
    for a, b, h, cost in cm.host_pairs:
        together_cost[(a, b, h)] = together_cost.get((a, b, h), 0.0) + cost
    for (a, b, h), cost in sorted(together_cost.items(), key=lambda kv: -kv[1])[:MAX_PAIR_TERMS]:
        coef = round(SCALE * cost)
        if coef <= 0:
            break
        both = model.new_bool_var(f"p{a}_{b}_{h}")
        hints.append((both, int(chosen[at[(a, h)]].any() and chosen[at[(b, h)]].any())))
        model.add(sum(x[o] for o in at[(a, h)] + at[(b, h)]) - both <= 1)
        terms.append(both)
        weights.append(coef)
        uppers.append(1)

    moves = np.flatnonzero(cm.opt_move)
    if len(moves):
        model.add(sum(x[o] for o in moves.tolist()) <= s.max_migrations)
        home = np.array([cm.host_pos[int(problem.host_of[v])] for v in cm.candidates], dtype=int)
        touched = np.concatenate([cm.opt_host[moves], home[cm.opt_vm[moves]]])
        touching = np.concatenate([moves, moves])
        for opts in index_groups(touched, n_hosts):
            if len(opts) > s.max_migrations_per_host:
                model.add(sum(x[o] for o in touching[opts].tolist()) <= s.max_migrations_per_host)

    if cm.violation_weight > 0:
        # each pair left together outweighs everything else the objective counts
        bound = sum(w * u for w, u in zip(weights, uppers, strict=True))
        violation = max(math.ceil(SCALE * cm.violation_weight), bound + 1)
        for o in np.flatnonzero(cm.opt_violations).tolist():
            terms.append(x[o])
            weights.append(violation * int(cm.opt_violations[o]))
        for a, b, h in kept_together:
            both = model.new_bool_var(f"v{a}_{b}")
            hints.append((both, int(chosen[at[(a, h)]].any() and chosen[at[(b, h)]].any())))
            model.add(sum(x[o] for o in at[(a, h)] + at[(b, h)]) - both <= 1)
            terms.append(both)
            weights.append(violation)
    model.minimize(cp_model.LinearExpr.weighted_sum(terms, weights))
    if hint is not None:
        for var, value in hints:
            model.add_hint(var, value)

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = s.time_limit
    solver.parameters.num_workers = max(1, min(2, s.workers))
    if s.deterministic_time > 0:
        # reproducible plans: a work budget instead of the clock, and one worker (parallel
        # workers race each other, which the clock decides)
        solver.parameters.max_deterministic_time = s.deterministic_time
        solver.parameters.num_workers = 1
    # presolve pays off on hard models; ours are small and must answer within a second on busy cores
    solver.parameters.cp_model_presolve = False
    solver.parameters.symmetry_level = 0
    status = solver.solve(model)
    wall = time.perf_counter() - started
    name = solver.status_name(status)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return SolveResult(None, name, math.nan, math.nan, math.nan, wall)
    choice = np.full(n_cand, -1, dtype=int)
    for o in range(n_opt):
        if solver.boolean_value(x[o]):
            choice[int(cm.opt_vm[o])] = o
    objective_value = solver.objective_value / SCALE
    bound = max(0.0, solver.best_objective_bound / SCALE)  # every cost term is non-negative
    gap = 0.0 if status == cp_model.OPTIMAL else _relative_gap(objective_value, bound)
    return SolveResult(Assignment(choice, objective_value), name, objective_value, bound, gap, wall)
