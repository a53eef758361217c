"""The CP-SAT model over the candidate options.

One Boolean per option (VM, host, allocation mode), exactly one per candidate. Hard constraints:
what VMs hold fits every host on every resource, forbidden pairs never share a host, and the
migration budget holds per round and per host. The objective adds the option costs (migration
time, energy share, idle or missing allocation, risk with VMs that stay), the risk of candidate
pairs that end together, the predicted demand above target utilisation, and the idle power of
hosts the solution switches on. CP-SAT needs integers, so costs are scaled by ``SCALE``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model

from cotenancy.plan.candidates import CandidateModel
from cotenancy.plan.greedy import Assignment

#: objective units are multiplied by this and rounded
SCALE = 100
#: pair terms beyond this (the cheapest ones) are left out so the model stays small
MAX_PAIR_TERMS = 3000
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


def solve_cpsat(cm: CandidateModel, hint: Assignment | None = None) -> SolveResult:
    """Solve within ``time_limit``; the best solution found by then is returned with its gap."""
    started = time.perf_counter()
    s = cm.problem.settings
    model = cp_model.CpModel()
    n_opt = len(cm.opt_vm)
    x = [model.new_bool_var(f"x{o}") for o in range(n_opt)]
    chosen = set() if hint is None else {int(o) for o in hint.choice if o >= 0}
    hints: list[tuple[cp_model.IntVar, int]] = [(x[o], int(o in chosen)) for o in range(n_opt)]
    objective: list = []
    by_cand: dict[int, list[int]] = {}
    by_host: dict[int, list[int]] = {}
    by_cand_host: dict[tuple[int, int], list[int]] = {}
    for o in range(n_opt):
        pos, h = int(cm.opt_vm[o]), int(cm.opt_host[o])
        by_cand.setdefault(pos, []).append(o)
        by_host.setdefault(h, []).append(o)
        by_cand_host.setdefault((pos, h), []).append(o)
    for opts in by_cand.values():
        model.add_exactly_one(x[o] for o in opts)
    for o in range(n_opt):
        coef = round(SCALE * cm.opt_cost[o])
        if coef:
            objective.append(coef * x[o])

    cap = cm.problem.capacity
    soft = ~cm.problem.hard
    for h, opts in by_host.items():
        host_cap = cap[cm.hosts[h]]
        for r in range(cap.shape[1]):
            amounts = [math.ceil(cm.opt_held[o, r] - _EPS) for o in opts]
            if any(amounts):
                room = max(0, math.floor(cm.limit[h, r] - cm.fixed_held[h, r] + _EPS))
                model.add(sum(a * x[o] for a, o in zip(amounts, opts, strict=True) if a) <= room)
            if not soft[r] or host_cap[r] <= 0:
                continue
            demands = [math.ceil(cm.opt_demand[o, r] - _EPS) for o in opts]
            per_unit = round(SCALE * s.weight_overload / host_cap[r])
            if not any(demands) or per_unit == 0:
                continue
            allowed = math.floor(cm.overload_at[h, r] - cm.fixed_demand[h, r])
            top = int(sum(demands)) + max(0, -allowed)
            excess = model.new_int_var(0, max(0, top), f"over{h}_{r}")
            used = sum(d for d, o in zip(demands, opts, strict=True) if o in chosen)
            hints.append((excess, max(0, used - allowed)))
            model.add(sum(d * x[o] for d, o in zip(demands, opts, strict=True) if d) - excess <= allowed)
            objective.append(per_unit * excess)
        if not cm.has_fixed[h]:
            active = model.new_bool_var(f"on{h}")
            hints.append((active, int(any(o in chosen for o in opts))))
            for o in opts:
                model.add_implication(x[o], active)
            objective.append(round(SCALE * s.weight_energy * cm.problem.power_idle[cm.hosts[h]]) * active)

    def together(a: int, b: int) -> list[int]:
        hosts_a = {int(cm.opt_host[o]) for o in by_cand.get(a, [])}
        return [h for h in {int(cm.opt_host[o]) for o in by_cand.get(b, [])} if h in hosts_a]

    for a, b in cm.forbidden_pairs:
        for h in together(a, b):
            model.add(sum(x[o] for o in by_cand_host[(a, h)] + by_cand_host[(b, h)]) <= 1)
    pair_vars = 0
    for a, b, cost, _ in sorted(cm.pairs, key=lambda p: -p[2]):
        coef = round(SCALE * cost)
        if coef <= 0 or pair_vars >= MAX_PAIR_TERMS:
            continue
        for h in together(a, b):
            pair_vars += 1
            both = model.new_bool_var(f"p{a}_{b}_{h}")
            hints.append((both, int(any(o in chosen for o in by_cand_host[(a, h)] + by_cand_host[(b, h)]))))
            model.add(sum(x[o] for o in by_cand_host[(a, h)] + by_cand_host[(b, h)]) - both <= 1)
            objective.append(coef * both)
            if len(by_cand_host[(a, h)]) + len(by_cand_host[(b, h)]) and hints[-1][1]:
                both_a = any(o in chosen for o in by_cand_host[(a, h)])
                both_b = any(o in chosen for o in by_cand_host[(b, h)])
                hints[-1] = (both, int(both_a and both_b))

    moves = [o for o in range(n_opt) if cm.opt_move[o]]
    if moves:
        model.add(sum(x[o] for o in moves) <= s.max_migrations)
        touching: dict[int, list[int]] = {}
        for o in moves:
            home = cm.host_pos[int(cm.problem.host_of[cm.candidates[int(cm.opt_vm[o])]])]
            touching.setdefault(int(cm.opt_host[o]), []).append(o)
            touching.setdefault(home, []).append(o)
        for opts in touching.values():
            if len(opts) > s.max_migrations_per_host:
                model.add(sum(x[o] for o in opts) <= s.max_migrations_per_host)

    model.minimize(sum(objective))
    if hint is not None:
        for var, value in hints:
            model.add_hint(var, value)

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = s.time_limit
    solver.parameters.num_workers = max(1, min(2, s.workers))
    # presolve pays off on hard models; ours are small and must answer within a second on busy cores
    solver.parameters.cp_model_presolve = False
    solver.parameters.symmetry_level = 0
    status = solver.solve(model)
    wall = time.perf_counter() - started
    name = solver.status_name(status)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return SolveResult(None, name, math.nan, math.nan, math.nan, wall)
    choice = np.full(len(cm.candidates), -1, dtype=int)
    for o in range(n_opt):
        if solver.boolean_value(x[o]):
            choice[int(cm.opt_vm[o])] = o
    objective_value = solver.objective_value / SCALE
    bound = max(0.0, solver.best_objective_bound / SCALE)  # every cost term is non-negative
    gap = 0.0 if status == cp_model.OPTIMAL else _relative_gap(objective_value, bound)
    return SolveResult(Assignment(choice, objective_value), name, objective_value, bound, gap, wall)
