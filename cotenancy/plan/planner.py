"""The planner: candidates -> CP-SAT (greedy hint and fallback) -> ordered, explained plan."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import numpy as np

from cotenancy.model import ActionPlan, Inventory
from cotenancy.plan.candidates import CandidateModel, build_candidate_model
from cotenancy.plan.greedy import Assignment, LoadTracker, greedy_solve
from cotenancy.plan.model import solve_cpsat
from cotenancy.plan.ordering import VMChange, order_changes
from cotenancy.plan.problem import (
    RESOURCES,
    DemandForecast,
    PairRiskFn,
    PlannerSettings,
    PlanningProblem,
    build_problem,
)

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
    ) -> ActionPlan:
        started = time.perf_counter()
        problem = build_problem(inventory, self.settings, forecast, pair_risk, migrating)
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
            if result.assignment is not None:
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
        return plan


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
    changes: list[VMChange] = []
    high = problem.demand_or_held("high")
    mid = problem.demand_or_held("mid")
    for v in range(len(problem.vm_ids)):
        moved = target_host[v] != problem.host_of[v]
        resized = bool((np.abs(target_size[v] - problem.size[v]) > _EPS).any())
        realloc = bool((np.abs(target_res[v] - problem.reservation[v]) > _EPS).any())
        if not (moved or resized or realloc):
            continue
        reason, benefit = move_reason.get(v, ("", 0.0))
        alloc_reason, alloc_benefit = "", 0.0
        if resized or realloc:
            alloc_reason, alloc_benefit = _allocation_reason(
                problem, v, target_size[v], target_res[v], high[v], mid[v], s
            )
        changes.append(
            VMChange(
                v,
                int(target_host[v]),
                target_size[v],
                target_res[v],
                reason,
                benefit,
                alloc_reason,
                alloc_benefit,
            )
        )
    return changes


def _allocation_reason(
    problem: PlanningProblem,
    v: int,
    size: np.ndarray,
    reservation: np.ndarray,
    high: np.ndarray,
    mid: np.ndarray,
    s: PlannerSettings,
) -> tuple[str, float]:
    parts: list[str] = []
    benefit = 0.0
    h = int(problem.host_of[v])
    cap = problem.capacity[h] if h >= 0 else np.ones(len(RESOURCES))
    for r, resource in enumerate(RESOURCES):
        old_size, old_res = problem.size[v, r], problem.reservation[v, r]
        if abs(size[r] - old_size) > _EPS:
            parts.append(f"{resource.value} size {old_size:.0f} -> {size[r]:.0f}")
        if abs(reservation[r] - old_res) > _EPS:
            parts.append(f"{resource.value} reservation {old_res:.0f} -> {reservation[r]:.0f}")
        else:
            continue
        scale = cap[r] if cap[r] > 0 else 1.0
        shortfall_before = max(0.0, high[r] - old_res)
        shortfall_after = max(0.0, high[r] - reservation[r])
        idle_before = max(0.0, old_res - mid[r])
        idle_after = max(0.0, reservation[r] - mid[r])
        benefit += s.weight_overload * (shortfall_before - shortfall_after) / scale
        benefit += s.weight_idle_allocation * (idle_before - idle_after) / scale
    q = f"p{round(s.quantile * 100)}"
    demand = ", ".join(
        f"{resource.value} {q} {high[r]:.0f}"
        for r, resource in enumerate(RESOURCES)
        if not problem.hard[r] and not np.isnan(problem.demand_high[v, r])
    )
    return f"{problem.forecast_description} ({demand}): {'; '.join(parts)}", benefit
