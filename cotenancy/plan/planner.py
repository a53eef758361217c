"""The planner: candidates -> CP-SAT (greedy hint and fallback) -> ordered, explained plan."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import numpy as np

from cotenancy.model import ActionPlan, Inventory
from cotenancy.plan.candidates import CandidateModel, build_candidate_model
from cotenancy.plan.greedy import Assignment, LoadTracker, greedy_solve
from cotenancy.plan.interference import VmInterference
from cotenancy.plan.model import SCALE, solve_cpsat
from cotenancy.plan.ordering import VMChange, order_changes
from cotenancy.plan.problem import (
    RESOURCES,
    DemandForecast,
    PairRiskFn,
    PlannerSettings,
    PlanningProblem,
    build_problem,
)
from cotenancy.plan.unsatisfied import unsatisfied

LOG = logging.getLogger(__name__)
_EPS = 1e-6


class Planner:
    """Plans one round. Stateless between rounds: hysteresis lives in the allocation thresholds."""

    def __init__(self, settings: PlannerSettings | None = None) -> None:
        self.settings = settings or PlannerSettings()

    def plan(
        self,
        inventory: Inventory,
        forecast: DemandForecast | None = None,
        pair_risk: PairRiskFn | None = None,
        migrating: Iterable[str] = (),
        strategy: str = "predictive",
        interference: VmInterference | None = None,
    ) -> ActionPlan:
        started = time.perf_counter()
        problem = build_problem(inventory, self.settings, forecast, pair_risk, migrating, interference)
        cm = build_candidate_model(problem)
        built = time.perf_counter()
        stats: dict[str, float | str] = {
            "candidates": float(len(cm.candidates)),
            "options": float(len(cm.opt_vm)),
            "model_hosts": float(len(cm.hosts)),
            "max_pair_risk": round(cm.max_pair_risk, 4),
        }
        assignment: Assignment | None = None
        if cm.candidates:
            greedy = greedy_solve(cm)
            result = solve_cpsat(cm, hint=greedy)
            stats["greedy_objective"] = round(greedy.objective, 3)
            stats["solver_status"] = result.status
            stats["solve_seconds"] = round(result.wall_seconds, 4)
            # the integer model rounds costs and amounts; a hint it rounded out could leave CP-SAT
            # with a plan the exact costs rate worse than the greedy one, which then wins (by more
            # than what rounding every option and host term to 1 / SCALE can explain)
            rounding = (len(cm.candidates) + len(cm.hosts)) / SCALE
            if (
                result.assignment is not None
                and not np.array_equal(result.assignment.choice, greedy.choice)
                and _exact_objective(cm, result.assignment) > _exact_objective(cm, greedy) + rounding
                and _within_limits(cm, greedy)
            ):
                LOG.info("the greedy plan beats CP-SAT's (%s) on the exact costs; using it", result.status)
                stats["cpsat_objective"] = round(result.objective, 3)
                assignment = greedy
                stats.update(solver="greedy", objective=round(greedy.objective, 3))
            elif result.assignment is not None:
                assignment = result.assignment
                stats.update(
                    solver="cp-sat",
                    objective=round(result.objective, 3),
                    bound=round(result.bound, 3),
                    optimality_gap=round(result.gap, 5),
                )
            else:
                LOG.warning("CP-SAT found no plan in time (%s); using the greedy plan", result.status)
                assignment = greedy
                stats.update(solver="greedy", objective=round(greedy.objective, 3))
        else:
            stats.update(solver="none", objective=0.0, optimality_gap=0.0)
        changes = _changes(problem, cm, assignment)
        ordered = order_changes(problem, changes, strategy)
        plan = ordered.plan
        stats["dropped_steps"] = float(len(ordered.dropped))
        stats["staged_migrations"] = float(ordered.staged)
        stats["build_seconds"] = round(built - started, 4)
        stats["wall_seconds"] = round(time.perf_counter() - started, 4)
        stats["migrations"] = float(len(plan.migrations))
        plan.stats.update(stats)
        if ordered.dropped:
            LOG.info("plan dropped steps that never fit safely: %s", "; ".join(ordered.dropped))
        left = unsatisfied(problem, plan)
        plan.stats["hard_violations"] = float(left.violations)
        if left.items:
            plan.stats["unsatisfied"] = "; ".join(left.items)
            LOG.warning("the plan cannot satisfy: %s", plan.stats["unsatisfied"])
        return plan


def _exact_objective(cm: CandidateModel, assignment: Assignment) -> float:
    """The objective of ``assignment`` in floating point, as the greedy rates its own plan."""
    return LoadTracker(cm, assignment.choice).objective()


def _within_limits(cm: CandidateModel, assignment: Assignment) -> bool:
    """True when ``assignment`` keeps every hard constraint of the model (capacity, forbidden
    pairs, migration budgets); the greedy keeps a candidate where it is even when that is over."""
    tracker = LoadTracker(cm, assignment.choice)
    s = cm.problem.settings
    if (tracker.held > cm.limit + _EPS).any() or tracker.moves_total > s.max_migrations:
        return False
    if (tracker.moves_at > s.max_migrations_per_host).any():
        return False
    host = cm.opt_host[assignment.choice]
    # a pair already together at home may stay so; none may meet anywhere else
    return all(
        host[a] != host[b] or host[a] == cm.home_pos(a) == cm.home_pos(b) for a, b in cm.forbidden_pairs
    )


def _changes(problem: PlanningProblem, cm: CandidateModel, assignment: Assignment | None) -> list[VMChange]:
    """The wanted end state of every VM that changes, with the reasons and benefits of each change."""
    s = problem.settings
    target_host = problem.host_of.copy()
    target_size = cm.applied_size.copy()
    target_res = cm.applied_reservation.copy()
    move_reason: dict[int, tuple[str, float]] = {}
    if assignment is not None and cm.candidates:
        tracker = LoadTracker(cm, assignment.choice)
        for pos, v in enumerate(cm.candidates):
            opt = int(assignment.choice[pos])
            target_host[v] = cm.hosts[int(cm.opt_host[opt])]
            if cm.opt_scaled[opt]:
                target_size[v] = problem.target_size[v]
                target_res[v] = problem.target_reservation[v]
            else:
                target_size[v] = problem.size[v]
                target_res[v] = np.minimum(problem.reservation[v], problem.target_reservation[v])
            if cm.opt_move[opt]:
                stay = cm.stay_option(pos)
                tracker.remove(pos)
                benefit = tracker.incremental_cost(pos, stay) - tracker.incremental_cost(pos, opt)
                tracker.place(pos, opt)
                dest = problem.host_ids[target_host[v]]
                detail = f"to {dest}"
                if problem.pair_risk is not None:
                    detail += f" (risk with VMs there {cm.opt_risk[opt]:.2f})"
                move_reason[v] = (f"{cm.reasons[v]}; {detail}", benefit)
    high = problem.demand_or_held("high")
    mid = problem.demand_or_held("mid")
    size_changed = np.abs(target_size - problem.size) > _EPS
    res_changed = np.abs(target_res - problem.reservation) > _EPS
    benefits = _allocation_benefits(problem, target_res, high, mid)
    changing = np.flatnonzero(
        (target_host != problem.host_of) | size_changed.any(axis=1) | res_changed.any(axis=1)
    )
    names = [r.value for r in RESOURCES]
    label = f"p{round(s.quantile * 100)}"
    forecast_known = ~problem.hard[None, :] & ~np.isnan(problem.demand_high)
    changes: list[VMChange] = []
    for v in changing.tolist():
        reason, benefit = move_reason.get(v, ("", 0.0))
        alloc_reason = ""
        if size_changed[v].any() or res_changed[v].any():
            parts = [
                f"{names[r]} size {problem.size[v, r]:.0f} -> {target_size[v, r]:.0f}"
                for r in np.flatnonzero(size_changed[v])
            ] + [
                f"{names[r]} reservation {problem.reservation[v, r]:.0f} -> {target_res[v, r]:.0f}"
                for r in np.flatnonzero(res_changed[v])
            ]
            demand = ", ".join(
                f"{names[r]} {label} {high[v, r]:.0f}" for r in np.flatnonzero(forecast_known[v])
            )
            alloc_reason = f"{problem.forecast_description} ({demand}): {'; '.join(parts)}"
        changes.append(
            VMChange(
                v,
                int(target_host[v]),
                target_size[v],
                target_res[v],
                reason,
                benefit,
                alloc_reason,
                float(benefits[v]),
            )
        )
    return changes


def _allocation_benefits(
    problem: PlanningProblem, reservation: np.ndarray, high: np.ndarray, mid: np.ndarray
) -> np.ndarray:
    """Objective drop of each VM's new reservations: demand newly covered, idle allocation freed."""
    s = problem.settings
    if not problem.host_ids:
        return np.zeros(len(problem.vm_ids))  # no host: every VM is unplaced and keeps what it has
    host = np.maximum(problem.host_of, 0)
    cap = problem.capacity_scale[host]
    old = problem.reservation
    covered = np.maximum(high - old, 0.0) - np.maximum(high - reservation, 0.0)
    freed = np.maximum(old - mid, 0.0) - np.maximum(reservation - mid, 0.0)
    gain = (s.weight_overload * covered + s.weight_idle_allocation * freed) / cap
    soft = ~problem.hard[None, :]
    return np.where(soft & (np.abs(reservation - old) > _EPS), gain, 0.0).sum(axis=1)
