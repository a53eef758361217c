"""An independent checker of plan safety, written from the step semantics, not from the planner.

Semantics: a step may start once all its ``depends_on`` succeeded; unrelated steps may overlap.
A migration puts the VM on its target when it starts and takes it off its source when it ends;
an allocation or size change takes increases when it starts and gives decreases back when it ends.
A VM a live migration in flight is taking elsewhere (``migration_target``) is on both hosts, and
that migration runs at every moment (it ends at a moment no step waits for): it counts against the
parallelism limits on its source, on its target and in the whole cloud.

Every reachable moment is "the steps of a dependency-closed set C have finished and any subset of
the steps whose dependencies are all in C are running". Loads only grow with more running steps
and residents only grow too, so checking "all of them running" for every closed set C covers
every moment. Steps that can start together are unrelated, so they may all run at once: the
parallelism limits are checked on the same sets. The checker enumerates the closed sets, so it
is meant for small plans.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cotenancy.model import VM, ActionKind, ActionPlan, Inventory, Resource, VMState, policies_allow
from cotenancy.model.policy import RuleKind

RESOURCES = tuple(Resource)
EPS = 1e-6


def _vec(resources) -> np.ndarray:
    return np.array([resources[r] for r in RESOURCES], dtype=float)


@dataclass
class _Effect:
    adds: dict[str, np.ndarray]
    releases: dict[str, np.ndarray]
    arrive: tuple[str, str] | None = None  # (host, vm)
    leave: tuple[str, str] | None = None


def held(size: np.ndarray, reservation: np.ndarray, hard: np.ndarray) -> np.ndarray:
    return np.where(hard, size, np.minimum(reservation, size))


def _ancestors(plan: ActionPlan) -> list[set[int]]:
    anc: list[set[int]] = []
    for action in plan.actions:
        mine: set[int] = set()
        for d in action.depends_on:
            assert 0 <= d < action.index, f"step {action.index} depends on a later or unknown step {d}"
            mine |= {d} | anc[d]
        anc.append(mine)
    return anc


def check_plan_safe(
    inventory: Inventory,
    plan: ActionPlan,
    hard_resources: tuple[str, ...] = ("memory", "gpu"),
    max_parallel_per_host: int | None = None,
    max_parallel: int | None = None,
    max_states: int = 50_000,
) -> int:
    """Raise AssertionError at the first unsafe moment; return the number of moments checked."""
    hard = np.array([r.value in hard_resources for r in RESOURCES])
    anc = _ancestors(plan)
    by_vm: dict[str, list[int]] = {}
    for a in plan.actions:
        by_vm.setdefault(a.vm_id, []).append(a.index)
    for vm_id, idx in by_vm.items():
        for i, j in zip(idx, idx[1:], strict=False):
            assert i in anc[j], f"steps {i} and {j} of {vm_id} may overlap"
    size = {v.id: _vec(v.size) for v in inventory.vms.values()}
    res = {v.id: _vec(v.allocation.reservation) for v in inventory.vms.values()}
    where = {v.id: v.host_id for v in inventory.vms.values()}
    effects: list[_Effect] = []
    for a in plan.actions:
        vm = a.vm_id
        before = held(size[vm], res[vm], hard)
        if a.kind is ActionKind.LIVE_MIGRATE:
            assert where[vm] == a.source_host_id, f"step {a.index}: {vm} is not on {a.source_host_id}"
            assert not inventory.hosts[a.target_host_id].maintenance, f"step {a.index} targets maintenance"
            effects.append(
                _Effect(
                    {a.target_host_id: before},
                    {a.source_host_id: before},
                    (a.target_host_id, vm),
                    (a.source_host_id, vm),
                )
            )
            where[vm] = a.target_host_id
            continue
        if a.kind is ActionKind.SET_ALLOCATION:
            res[vm] = _vec(a.allocation.reservation)
        elif a.kind is ActionKind.RESIZE:
            size[vm] = _vec(a.size)
        else:
            raise AssertionError(f"unexpected step kind {a.kind}")
        delta = held(size[vm], res[vm], hard) - before
        host = where[vm]
        effects.append(_Effect({host: np.maximum(delta, 0)}, {host: np.maximum(-delta, 0)}))

    init_load: dict[str, np.ndarray] = {h: np.zeros(len(RESOURCES)) for h in inventory.hosts}
    init_res: dict[str, set[str]] = {h: set() for h in inventory.hosts}
    for v in inventory.vms.values():
        for h in _occupied(inventory, v):
            init_load[h] = init_load[h] + held(_vec(v.size), _vec(v.allocation.reservation), hard)
            init_res[h].add(v.id)
    limit = {h: np.maximum(_vec(host.capacity), init_load[h]) for h, host in inventory.hosts.items()}
    initial_bad = {frozenset(p) for h in inventory.hosts for p in _bad_pairs(inventory, init_res[h])}
    in_flight = [_occupied(inventory, v) for v in inventory.vms.values() if _in_flight(v)]
    deps = [set(a.depends_on) for a in plan.actions]
    n = len(plan.actions)
    seen: set[frozenset[int]] = set()
    stack: list[frozenset[int]] = [frozenset()]
    while stack:
        done = stack.pop()
        if done in seen:
            continue
        seen.add(done)
        assert len(seen) <= max_states, "plan too large for the exhaustive checker"
        running = [i for i in range(n) if i not in done and deps[i] <= done]
        _check_moment(inventory, plan, effects, done, running, init_load, init_res, limit, initial_bad)
        if max_parallel is not None or max_parallel_per_host is not None:
            moving = [i for i in running if plan.actions[i].kind is ActionKind.LIVE_MIGRATE]
            # moves in flight may already pass a limit (started by someone else): none may join them
            if max_parallel is not None and moving:
                assert len(moving) + len(in_flight) <= max_parallel, (
                    f"{len(moving)} migrations may run at once beside {len(in_flight)} in flight: {moving}"
                )
            if max_parallel_per_host is not None:
                for h in inventory.hosts:
                    touching = [
                        i
                        for i in moving
                        if h in (plan.actions[i].source_host_id, plan.actions[i].target_host_id)
                    ]
                    busy = sum(h in hosts for hosts in in_flight)
                    assert not touching or len(touching) + busy <= max_parallel_per_host, (
                        f"more than {max_parallel_per_host} migrations may touch {h} at once: "
                        f"{touching} and {busy} in flight"
                    )
        for i in running:
            stack.append(done | {i})
    return len(seen)


def _in_flight(vm: VM) -> bool:
    return vm.state is VMState.MIGRATING and vm.host_id is not None


def _occupied(inventory: Inventory, vm: VM) -> list[str]:
    """The hosts ``vm`` takes room on: its own and, while a live migration takes it elsewhere,
    that host too (the migration started before the plan and ends at an unknown moment)."""
    hosts = [vm.host_id] if vm.host_id is not None else []
    target = vm.migration_target
    if vm.state is VMState.MIGRATING and target in inventory.hosts and target != vm.host_id:
        hosts.append(target)
    return hosts


def _bad_pairs(inventory: Inventory, vms: set[str]) -> list[tuple[str, str]]:
    bad = []
    ids = sorted(vms)
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            va, vb = inventory.vms[a], inventory.vms[b]
            if not policies_allow(inventory.policies, va, vb):
                bad.append((a, b))
                continue
            for rule in inventory.rules:
                if rule.hard and rule.kind is RuleKind.ANTI_AFFINITY and {a, b} <= rule.vm_ids:
                    bad.append((a, b))
    return bad


def _check_moment(inventory, plan, effects, done, running, init_load, init_res, limit, initial_bad) -> None:
    load = {h: v.copy() for h, v in init_load.items()}
    residents = {h: set(v) for h, v in init_res.items()}
    for i in list(done) + running:
        for h, add in effects[i].adds.items():
            load[h] = load[h] + add
        if effects[i].arrive:
            residents[effects[i].arrive[0]].add(effects[i].arrive[1])
    for i in done:
        for h, rel in effects[i].releases.items():
            load[h] = load[h] - rel
        if effects[i].leave:
            residents[effects[i].leave[0]].discard(effects[i].leave[1])
    where = f"after {sorted(done)} with {running} running"
    for h in inventory.hosts:
        over = load[h] > limit[h] + EPS
        assert not over.any(), f"host {h} over capacity {where}: {load[h]} > {limit[h]}"
        for pair in _bad_pairs(inventory, residents[h]):
            assert frozenset(pair) in initial_bad, f"{pair} together on {h} {where}"
    placed = {}
    for h, vms in residents.items():
        for v in vms:
            placed.setdefault(v, []).append(h)
    for rule in inventory.rules:
        if rule.hard and rule.kind is RuleKind.AFFINITY:
            hosts = {h for v in rule.vm_ids for h in placed.get(v, [])}
            initial = {inventory.vms[v].host_id for v in rule.vm_ids if v in inventory.vms}
            assert hosts <= initial, f"affinity {rule.name} broken {where}"
