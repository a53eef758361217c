"""Turn "where every VM should end and what it should hold" into a safe graph of steps.

Semantics the executor follows (and the property tests check): a step may start once every step
in its ``depends_on`` has succeeded; steps with no path between them may run at the same time. A
step *adds* to a host when it starts (a migration reserves the VM on its target, a raise takes
the new allocation) and *releases* when it finishes (the VM leaves its source, a lowering frees).

The steps are first put in one sequence in which, after each step's additions, every host still
fits (and no two VMs a policy or rule keeps apart are on one host); a step that never fits is
dropped, and a cycle of swaps that blocks the sequence is broken through a staging host. The
graph then keeps only the orderings safety needs: a step that adds to a host waits for every
earlier step that releases on that host, and the steps of one VM run in order. In any execution
the VMs and load on a host are then at most those of a prefix of the sequence, which fits.
Finally lanes limit how many migrations run at once, per host and in total. A live migration
already in flight holds a lane on its source, on its target and in the cloud until it lands; no
step can wait for it (it is not one), so a plan uses only the lanes left, and no step migrates to
or from a host whose lanes are all taken.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cotenancy.model import ActionKind, ActionPlan, Allocation, Resources
from cotenancy.plan.problem import RESOURCES, PlanningProblem

_EPS = 1e-6


@dataclass(slots=True)
class VMChange:
    """What the planner wants for one VM, and why."""

    vm: int
    target_host: int
    target_size: np.ndarray
    target_reservation: np.ndarray
    reason: str
    benefit: float = 0.0
    allocation_reason: str = ""
    allocation_benefit: float = 0.0


@dataclass(slots=True)
class _Step:
    kind: ActionKind
    vm: int
    adds: dict[int, np.ndarray] = field(default_factory=dict)
    releases: dict[int, np.ndarray] = field(default_factory=dict)
    source: int = -1
    target: int = -1
    size: np.ndarray | None = None
    reservation: np.ndarray | None = None
    reason: str = ""
    benefit: float = 0.0


@dataclass(slots=True)
class OrderingResult:
    plan: ActionPlan
    dropped: list[str]
    staged: int


def _resources(values: np.ndarray) -> Resources:
    return Resources(**{r.value: float(v) for r, v in zip(RESOURCES, values, strict=True)})


class _Sequencer:
    """Applies steps one after another to a copy of the cloud, refusing any that would not fit."""

    def __init__(self, problem: PlanningProblem) -> None:
        self.p = problem
        self.host_of = problem.host_of.copy()
        self.size = problem.size.copy()
        self.reservation = problem.reservation.copy()
        self.held = problem.held(self.size, self.reservation)
        self.load = problem.host_sum(self.held)
        self.limit = np.maximum(problem.capacity, self.load)
        # a VM in flight is a resident of its target too: it takes room there and meets its VMs
        self.residents: list[set[int]] = [set(on.tolist()) for on in problem.occupants()]
        self.lane_open = problem.may_start_migration()
        self.steps: list[_Step] = []

    def fits(self, h: int, extra: np.ndarray) -> bool:
        return bool((self.load[h] + extra <= self.limit[h] + _EPS).all())

    def may_join(self, v: int, h: int) -> bool:
        return not self.p.maintenance[h] and not any(self.p.conflicting(v, w) for w in self.residents[h])

    def set_allocation(self, v: int, reservation: np.ndarray, reason: str, benefit: float) -> bool:
        new_held = self.p.held(self.size[v : v + 1], reservation[None, :])[0]
        return self._change_holding(
            _Step(
                ActionKind.SET_ALLOCATION, v, reservation=reservation.copy(), reason=reason, benefit=benefit
            ),
            new_held,
            reservation=reservation,
        )

    def resize(self, v: int, size: np.ndarray, reason: str, benefit: float) -> bool:
        new_held = self.p.held(size[None, :], self.reservation[v : v + 1])[0]
        return self._change_holding(
            _Step(ActionKind.RESIZE, v, size=size.copy(), reason=reason, benefit=benefit), new_held, size=size
        )

    def _change_holding(
        self,
        step: _Step,
        new_held: np.ndarray,
        *,
        reservation: np.ndarray | None = None,
        size: np.ndarray | None = None,
    ) -> bool:
        v = step.vm
        h = int(self.host_of[v])
        delta = new_held - self.held[v]
        up, down = np.maximum(delta, 0.0), np.maximum(-delta, 0.0)
        if up.any() and down.any():
            raise ValueError("a holding change must only grow or only shrink")
        if h >= 0:
            if up.any() and not self.fits(h, up):
                return False
            if up.any():
                step.adds[h] = up
            if down.any():
                step.releases[h] = down
            self.load[h] += delta
        self.held[v] = new_held
        if reservation is not None:
            self.reservation[v] = reservation
        if size is not None:
            self.size[v] = size
        self.steps.append(step)
        return True

    def migrate(self, v: int, target: int, reason: str, benefit: float) -> bool:
        source = int(self.host_of[v])
        if target == source or not (self.lane_open[source] and self.lane_open[target]):
            return False
        if not self.fits(target, self.held[v]) or not self.may_join(v, target):
            return False
        self.steps.append(
            _Step(
                ActionKind.LIVE_MIGRATE,
                v,
                adds={target: self.held[v].copy()},
                releases={source: self.held[v].copy()},
                source=source,
                target=target,
                reason=reason,
                benefit=benefit,
            )
        )
        self.load[target] += self.held[v]
        self.load[source] -= self.held[v]
        self.residents[source].discard(v)
        self.residents[target].add(v)
        self.host_of[v] = target
        return True


def order_changes(
    problem: PlanningProblem,
    changes: list[VMChange],
    strategy: str,
    max_migrations: int | None = None,
) -> OrderingResult:
    """Build the step graph that takes the cloud from now to ``changes``, never unsafe on the way."""
    s = problem.settings
    budget = s.max_migrations if max_migrations is None else max_migrations
    seq = _Sequencer(problem)
    dropped: list[str] = []
    # 1. lowerings only release: do them first so their room is there for everyone else
    for c in changes:
        lowered = np.minimum(seq.reservation[c.vm], c.target_reservation)
        if (lowered < seq.reservation[c.vm] - _EPS).any():
            seq.set_allocation(c.vm, lowered, c.allocation_reason, c.allocation_benefit)
    pending_moves = [c for c in changes if c.target_host != problem.host_of[c.vm] and c.target_host >= 0]
    pending_raises = [
        c
        for c in changes
        if (c.target_size > seq.size[c.vm] + _EPS).any()
        or (c.target_reservation > seq.reservation[c.vm] + _EPS).any()
    ]
    staged: set[int] = set()
    migrations = 0
    while pending_moves or pending_raises:
        progress = False
        still_moving: list[VMChange] = []
        for c in pending_moves:
            if migrations < budget and seq.migrate(c.vm, c.target_host, c.reason, c.benefit):
                migrations += 1
                progress = True
            else:
                still_moving.append(c)
        pending_moves = still_moving
        waiting_to_move = {m.vm for m in pending_moves}
        still_raising: list[VMChange] = []
        for c in pending_raises:
            if c.vm not in waiting_to_move and _raise(seq, c):
                progress = True
            else:
                still_raising.append(c)
        pending_raises = still_raising
        if progress:
            continue
        if migrations < budget - 1 and _stage_one(seq, pending_moves, staged):
            migrations += 1
            continue
        for c in pending_moves:
            dropped.append(f"migrate {problem.vm_ids[c.vm]} to {problem.host_ids[c.target_host]}")
        for c in pending_raises:
            dropped.append(f"raise allocation of {problem.vm_ids[c.vm]}")
        break
    plan = _to_plan(problem, seq.steps, strategy)
    return OrderingResult(plan, dropped, len(staged))


def _raise(seq: _Sequencer, c: VMChange) -> bool:
    """Grow the size, then the reservation; either may wait for room (or be dropped)."""
    if (c.target_size > seq.size[c.vm] + _EPS).any():
        size = np.maximum(seq.size[c.vm], c.target_size)
        if not seq.resize(c.vm, size, c.allocation_reason, c.allocation_benefit):
            return False
    if (c.target_reservation > seq.reservation[c.vm] + _EPS).any():
        reservation = np.maximum(seq.reservation[c.vm], c.target_reservation)
        if not seq.set_allocation(c.vm, reservation, c.allocation_reason, c.allocation_benefit):
            return False
    return True


def _stage_one(seq: _Sequencer, pending: list[VMChange], staged: set[int]) -> bool:
    """Break a blocked cycle: move one waiting VM to a host with room, to go on from there later."""
    p = seq.p
    for c in sorted(pending, key=lambda c: float(seq.held[c.vm, 1])):
        if c.vm in staged:
            continue
        source = int(seq.host_of[c.vm])
        order = np.argsort(-(seq.limit - seq.load).min(axis=1))
        for h in order:
            h = int(h)
            if h in (source, c.target_host):
                continue
            if seq.migrate(
                c.vm, h, f"staging host on the way to {p.host_ids[c.target_host]}: {c.reason}", 0.0
            ):
                staged.add(c.vm)
                return True
    return False


def _to_plan(problem: PlanningProblem, steps: list[_Step], strategy: str) -> ActionPlan:
    deps: list[set[int]] = [set() for _ in steps]
    last_of_vm: dict[int, int] = {}
    releases_on: dict[int, list[int]] = {}
    host_lanes: dict[int, list[int | None]] = {}
    # the lanes moves in flight leave free (the sequencer only moves between hosts with one)
    free_at, free_total = problem.free_lanes()
    global_lanes: list[int | None] = [None] * free_total
    n_migrations = 0
    for i, step in enumerate(steps):
        if step.vm in last_of_vm:
            deps[i].add(last_of_vm[step.vm])
        last_of_vm[step.vm] = i
        for h in step.adds:
            deps[i].update(releases_on.get(h, ()))
        if step.kind is ActionKind.LIVE_MIGRATE:
            for h in (step.source, step.target):
                lanes = host_lanes.setdefault(h, [None] * int(free_at[h]))
                free = _lane_for(lanes)
                if lanes[free] is not None:
                    deps[i].add(lanes[free])
                lanes[free] = i
            lane = n_migrations % len(global_lanes)
            if global_lanes[lane] is not None:
                deps[i].add(global_lanes[lane])
            global_lanes[lane] = i
            n_migrations += 1
        for h in step.releases:
            releases_on.setdefault(h, []).append(i)
    plan = ActionPlan(strategy=strategy)
    for i, step in enumerate(steps):
        vm = problem.inventory.vms[problem.vm_ids[step.vm]]
        common = {
            "vm_id": vm.id,
            "depends_on": tuple(sorted(deps[i])),
            "reason": step.reason,
            "expected_benefit": round(float(step.benefit), 3),
        }
        if step.kind is ActionKind.LIVE_MIGRATE:
            plan.add(
                step.kind,
                source_host_id=problem.host_ids[step.source],
                target_host_id=problem.host_ids[step.target],
                **common,
            )
        elif step.kind is ActionKind.RESIZE:
            plan.add(step.kind, size=_resources(step.size), **common)
        else:
            allocation = Allocation(
                reservation=_resources(step.reservation),
                limit=vm.allocation.limit,
                shares=vm.allocation.shares,
            )
            plan.add(step.kind, allocation=allocation, **common)
    return plan


def _lane_for(lanes: list[int | None]) -> int:
    """The lane whose last step is oldest (an empty lane first), so lanes fill round-robin."""
    best, best_key = 0, None
    for i, last in enumerate(lanes):
        key = -1 if last is None else last
        if best_key is None or key < best_key:
            best, best_key = i, key
    return best
