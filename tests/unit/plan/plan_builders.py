"""Builders for planner tests: small random clouds that obey their rules, and a stand-in risk model."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from cotenancy.model import (
    VM,
    ActionPlan,
    AffinityRule,
    Allocation,
    CoTenancyPolicy,
    Host,
    Inventory,
    PolicyAttribute,
    Resource,
    Resources,
    RuleKind,
    VMState,
    WorkloadClass,
)
from cotenancy.plan.problem import DemandForecast


def host(name: str, cpu: float = 4000.0, memory: float = 4096.0, maintenance: bool = False) -> Host:
    return Host(name, name, Resources(cpu=cpu, memory=memory), maintenance=maintenance, power_model="g4")


def vm(name: str, on: str, cpu: float = 1000.0, memory: float = 1024.0, **kw) -> VM:
    return VM(name, name, on, Resources(cpu=cpu, memory=memory), **kw)


def final_hosts(inventory: Inventory, plan: ActionPlan) -> dict[str, str | None]:
    where = inventory.placement()
    for step in plan.migrations:
        where[step.vm_id] = step.target_host_id
    return where


def noisy_pair_risk(inventory: Inventory):
    """Stand-in for the XGBoost risk model: two 'noisy' VMs together are a likely conflict."""
    noisy = np.array([v.attributes.get("noisy") == "yes" for v in inventory.vms.values()])

    def score(pairs: np.ndarray, hosts: np.ndarray | None) -> np.ndarray:
        both = noisy[pairs[:, 0]] & noisy[pairs[:, 1]]
        return np.where(both, 0.9, 0.02)

    return score


@st.composite
def clouds(draw, max_hosts: int = 4, max_vms: int = 6) -> Inventory:
    """A cloud whose placement satisfies its policies and rules (some hosts may be in maintenance
    afterwards, and compressible reservations may already be overcommitted)."""
    n_hosts = draw(st.integers(2, max_hosts))
    hosts = {}
    for i in range(n_hosts):
        cpu = draw(st.sampled_from([2000.0, 3000.0, 4000.0]))
        memory = draw(st.sampled_from([2048.0, 3072.0, 4096.0]))
        hosts[f"h{i}"] = Host(f"h{i}", f"h{i}", Resources(cpu=cpu, memory=memory))
    policies = [CoTenancyPolicy("isolate-secret", PolicyAttribute.SECURITY_LEVEL, "secret")]
    n_vms = draw(st.integers(1, max_vms))
    vms: dict[str, VM] = {}
    used = {h: np.zeros(2) for h in hosts}
    order = list(hosts)
    for i in range(n_vms):
        memory = draw(st.sampled_from([512.0, 1024.0, 1536.0]))
        cpu = draw(st.sampled_from([500.0, 1000.0, 2000.0]))
        reserved = draw(st.sampled_from([0.0, 0.5, 1.0])) * cpu
        level = draw(st.sampled_from(["internal", "internal", "secret"]))
        vm = VM(
            f"v{i}",
            f"v{i}",
            None,
            Resources(cpu=cpu, memory=memory),
            allocation=Allocation(reservation=Resources(cpu=reserved)),
            workload=WorkloadClass(security_level=level),
            critical=draw(st.booleans()),
            attributes={"noisy": draw(st.sampled_from(["yes", "no"]))},
        )
        start = draw(st.integers(0, n_hosts - 1))
        for h in order[start:] + order[:start]:
            fits = used[h][1] + memory <= hosts[h].capacity.memory
            neighbours = [other for other in vms.values() if other.host_id == h]
            allowed = all(not p.forbids(vm, other) for p in policies for other in neighbours)
            if fits and allowed:
                vm.host_id = h
                used[h] += [reserved, memory]
                break
        vms[vm.id] = vm
    rules = []
    placed = [v for v in vms.values() if v.host_id]
    if draw(st.booleans()) and len(placed) >= 2:
        by_host: dict[str, str] = {}
        for v in placed:
            by_host.setdefault(v.host_id, v.id)
        if len(by_host) >= 2:
            rules.append(AffinityRule("apart", RuleKind.ANTI_AFFINITY, frozenset(list(by_host.values())[:2])))
    for h in hosts.values():
        h.maintenance = draw(st.booleans()) and draw(st.booleans())
    return Inventory(hosts=hosts, vms=vms, policies=policies, rules=rules)


@st.composite
def clouds_in_flight(draw, max_hosts: int = 4, max_vms: int = 6) -> Inventory:
    """A cloud (:func:`clouds`) where some VMs are being live-migrated to another host, each
    arriving where its memory fits and no VM it may not meet is (as a cloud admits a move)."""
    inventory = draw(clouds(max_hosts, max_vms))
    taken = {h: inventory.allocated_on(h).memory for h in inventory.hosts}
    on = {h: [v for v in inventory.vms.values() if v.host_id == h] for h in inventory.hosts}
    for vm in list(inventory.vms.values()):
        if vm.host_id is None or not draw(st.booleans()):
            continue
        fits = [
            h
            for h, host in inventory.hosts.items()
            if h != vm.host_id
            and not host.maintenance
            and taken[h] + vm.size.memory <= host.capacity.memory
            and all(_may_meet(inventory, vm, other) for other in on[h])
        ]
        if fits:
            target = draw(st.sampled_from(fits))
            vm.state, vm.migration_target = VMState.MIGRATING, target
            taken[target] += vm.size.memory
            on[target].append(vm)
    return inventory


def _may_meet(inventory: Inventory, a: VM, b: VM) -> bool:
    if any(p.forbids(a, b) for p in inventory.policies):
        return False
    return not any(
        r.hard and r.kind is RuleKind.ANTI_AFFINITY and {a.id, b.id} <= r.vm_ids for r in inventory.rules
    )


@st.composite
def forecasts(draw, inventory: Inventory) -> DemandForecast:
    """Per-VM CPU forecasts anywhere from idle to the whole size."""
    shares = np.array([draw(st.floats(0.0, 1.0)) for _ in inventory.vms])
    cpu = np.array([v.size.cpu for v in inventory.vms.values()])
    high = {Resource.CPU: cpu * shares}
    return DemandForecast(high, {Resource.CPU: cpu * shares * 0.7}, "test forecast p95")


def noisy_pair_risk_where_they_meet(inventory: Inventory):
    """Stand-in for the XGBoost risk model as it treats hosts: two 'noisy' VMs are a likely conflict
    on the host they would share (``hosts``, or the one they share now); apart, they are none."""
    noisy = np.array([v.attributes.get("noisy") == "yes" for v in inventory.vms.values()])
    index = {h: i for i, h in enumerate(inventory.hosts)}
    host_of = np.array([index.get(v.host_id or "", -1) for v in inventory.vms.values()])

    def score(pairs: np.ndarray, hosts: np.ndarray | None) -> np.ndarray:
        if hosts is None:
            together = (host_of[pairs[:, 0]] >= 0) & (host_of[pairs[:, 0]] == host_of[pairs[:, 1]])
        else:
            together = np.asarray(hosts) >= 0
        return np.where(together & noisy[pairs[:, 0]] & noisy[pairs[:, 1]], 0.9, 0.0)

    return score
