"""What a plan leaves unsatisfied of what operators asked for: hard rules, policies, drains and
critical marks the cloud cannot honour (this round or ever).

The planner does not stop for them: it plans everything else, never makes a broken hard rule worse
and repairs what it can. This names what is left, so the operator learns why from the plan itself
(``plan.stats``, the ``cotenancy plan`` table, the API's plan view) instead of from a missing step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from cotenancy.model import ActionKind, ActionPlan, RuleKind
from cotenancy.plan.problem import RESOURCES, PlanningProblem


@dataclass(slots=True)
class Unsatisfied:
    """``violations``: pairs of VMs a hard anti-affinity rule or co-tenancy policy keeps apart that
    share a host after the plan, summed over rules and policies. ``items``: one sentence each."""

    violations: int = 0
    items: list[str] = field(default_factory=list)


def unsatisfied(problem: PlanningProblem, plan: ActionPlan) -> Unsatisfied:
    """Everything ``plan`` leaves unsatisfied, judged on the placement it ends with."""
    host_of = problem.host_of.copy()
    moved_off: set[int] = set()
    for step in plan.migrations:
        v = problem.vm_index[step.vm_id]
        moved_off.add(int(problem.host_of[v]))
        host_of[v] = problem.host_index[step.target_host_id]
    found = Unsatisfied()
    _rules(problem, host_of, found)
    _policies(problem, host_of, found)
    _drains(problem, host_of, moved_off, found)
    _critical(problem, plan, found)
    return found


def _rules(problem: PlanningProblem, host_of: np.ndarray, found: Unsatisfied) -> None:
    for rule in problem.inventory.rules:
        if not rule.hard:
            continue
        members = [problem.vm_index[v] for v in sorted(rule.vm_ids) if v in problem.vm_index]
        hosts = host_of[members]
        hosts = hosts[hosts >= 0]
        if not len(hosts):
            continue
        counts = np.unique(hosts, return_counts=True)[1]
        if rule.kind is RuleKind.AFFINITY:
            if len(counts) > 1:
                found.items.append(
                    f"affinity rule {rule.name}: its {len(hosts)} VMs are on {len(counts)} hosts"
                )
            continue
        pairs = int((counts * (counts - 1) // 2).sum())
        if pairs:
            found.violations += pairs
            found.items.append(
                f"anti-affinity rule {rule.name}: {pairs} VM pairs share a host "
                f"({len(hosts)} VMs on {len(counts)} hosts)"
            )


def _policies(problem: PlanningProblem, host_of: np.ndarray, found: Unsatisfied) -> None:
    if not problem.forbidden_classes:
        return
    classes = problem.conflict_class
    bad_classes = {c for pair in problem.forbidden_classes for c in pair}
    # only VMs of a class some policy keeps apart can break one: look at their hosts alone
    concerned = np.flatnonzero(np.isin(classes, sorted(bad_classes)) & (host_of >= 0))
    by_host: dict[int, list[int]] = {}
    for v in concerned.tolist():
        by_host.setdefault(int(host_of[v]), []).append(v)
    vms = list(problem.inventory.vms.values())
    count: dict[str, int] = {}
    for members in by_host.values():
        for a, b in combinations(members, 2):
            if (int(classes[a]), int(classes[b])) not in problem.forbidden_classes:
                continue
            for policy in problem.inventory.policies:
                if policy.forbids(vms[a], vms[b]):
                    count[policy.name] = count.get(policy.name, 0) + 1
    for name, pairs in count.items():
        found.violations += pairs
        found.items.append(f"policy {name}: {pairs} VM pairs share a host")


def _drains(problem: PlanningProblem, host_of: np.ndarray, moved_off: set[int], found: Unsatisfied) -> None:
    """Drains none of whose VMs leave in this plan nor are leaving now (a drain under way is not
    reported)."""
    every_host = bool(problem.maintenance.all())
    lane_open = problem.may_start_migration()
    for h in np.flatnonzero(problem.maintenance).tolist():
        staying = np.flatnonzero(host_of == h)
        if not len(staying) or h in moved_off or problem.in_flight[staying].any():
            continue
        if every_host:
            why = "every host is in maintenance"
        elif not lane_open[h]:
            why = "the migration lanes are all taken by moves in flight"
        elif problem.pinned[staying].all():
            why = "they may not move: hard affinity, stopped or migrating"
        else:
            why = "no host with room and migration budget takes them this round"
        found.items.append(f"drain of {problem.host_ids[h]}: {len(staying)} VMs cannot leave ({why})")


def _critical(problem: PlanningProblem, plan: ActionPlan, found: Unsatisfied) -> None:
    """Critical VMs whose raised reservation or size is not in the plan: it did not fit."""
    changed = {a.vm_id for a in plan.actions if a.kind in (ActionKind.SET_ALLOCATION, ActionKind.RESIZE)}
    for v in np.flatnonzero(problem.critical).tolist():
        vm_id = problem.vm_ids[v]
        if vm_id in changed:
            continue
        parts = [
            f"{RESOURCES[r].value} size {problem.size[v, r]:.0f} -> {problem.target_size[v, r]:.0f}"
            for r in np.flatnonzero(problem.target_size[v] > problem.size[v] + 1e-6)
        ] + [
            f"{RESOURCES[r].value} reservation {problem.reservation[v, r]:.0f} -> "
            f"{problem.target_reservation[v, r]:.0f}"
            for r in np.flatnonzero(problem.target_reservation[v] > problem.reservation[v] + 1e-6)
        ]
        if parts:
            found.items.append(f"critical {vm_id}: {', '.join(parts)} does not fit this round")
