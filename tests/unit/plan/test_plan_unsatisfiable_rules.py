"""Hard rules, policies, drains and critical marks the cloud cannot satisfy do not stop the plan.

Operators and API clients add rules the planner must keep. When the cloud cannot keep one (twenty
VMs that must not share a host on five hosts) or it is broken already and cannot be repaired this
round, the planner still makes every other step, never makes the broken rule worse (no VM joins
one it must not meet), repairs what it can, and says in ``plan.stats`` and in one WARNING per
round what it could not satisfy.
"""

from __future__ import annotations

import logging
from itertools import combinations

import numpy as np
from plan_builders import final_hosts, vm
from plan_builders import host as small_host
from plan_safety import check_plan_safe

from cotenancy.model import (
    ActionKind,
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
    WorkloadClass,
)
from cotenancy.plan.candidates import build_candidate_model
from cotenancy.plan.greedy import greedy_solve
from cotenancy.plan.model import solve_cpsat
from cotenancy.plan.planner import Planner
from cotenancy.plan.problem import DemandForecast, PlannerSettings, build_problem
from cotenancy.plan.report import format_plan


def host(name: str, maintenance: bool = False, **size: float) -> Host:
    """A host big enough for every VM of these tests unless ``size`` says otherwise."""
    return small_host(name, **{"cpu": 40000.0, "memory": 65536.0, **size}, maintenance=maintenance)


def busy_forecast(inventory: Inventory, share: float = 0.8) -> DemandForecast:
    """Every VM busy enough that its CPU reservation (0 now) is raised: one step per VM."""
    cpu = np.array([share * v.size.cpu for v in inventory.vms.values()])
    return DemandForecast({Resource.CPU: cpu}, {Resource.CPU: cpu * 0.9}, "forecast p95")


def spread_rule(n: int = 20) -> AffinityRule:
    return AffinityRule("spread", RuleKind.ANTI_AFFINITY, frozenset(f"r{i}" for i in range(n)))


def pairs_together(inventory: Inventory, where: dict[str, str | None], members: frozenset[str]) -> set:
    return {
        frozenset((a, b)) for a, b in combinations(sorted(members), 2) if where[a] and where[a] == where[b]
    }


def steps(plan: ActionPlan) -> set[tuple]:
    return {(a.kind, a.vm_id, a.source_host_id, a.target_host_id) for a in plan.actions}


def cloud_with_a_drain() -> Inventory:
    """h0 is drained (its VM ``d`` must leave); twenty VMs sit five to a host on h1..h4."""
    hosts = {f"h{i}": host(f"h{i}", maintenance=i == 0) for i in range(5)}
    vms = {"d": vm("d", "h0")}
    for i in range(20):
        vms[f"r{i}"] = vm(f"r{i}", f"h{1 + i % 4}")
    return Inventory(hosts=hosts, vms=vms)


def test_an_anti_affinity_rule_over_more_vms_than_hosts_leaves_every_other_step(caplog):
    settings = PlannerSettings(time_limit=5.0, max_allocation_steps=0)
    free = cloud_with_a_drain()
    ruled = cloud_with_a_drain()
    ruled.rules.append(spread_rule())
    expected = Planner(settings).plan(free, busy_forecast(free), strategy="test")
    with caplog.at_level(logging.WARNING):
        plan = Planner(settings).plan(ruled, busy_forecast(ruled), strategy="test")
    assert ("d", "h0") in {(s.vm_id, s.source_host_id) for s in plan.migrations}
    assert steps(plan) == steps(expected)
    assert len([a for a in plan.actions if a.kind is ActionKind.SET_ALLOCATION]) == 21
    assert plan.stats["solver"] == "cp-sat"
    assert plan.stats["hard_violations"] == 40.0  # C(5, 2) pairs on each of 4 hosts
    assert "anti-affinity rule spread: 40 VM pairs share a host" in plan.stats["unsatisfied"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "spread" in warnings[0], warnings


def test_a_satisfiable_plan_reports_no_violation(settings):
    plan = Planner(settings).plan(cloud_with_a_drain(), strategy="test")
    assert plan.stats["hard_violations"] == 0.0
    assert "unsatisfied" not in plan.stats


def test_a_broken_rule_is_spread_over_every_host_without_a_new_pair():
    """Ten VMs on each of two hosts, three hosts free: one VM goes to each free host (9/8/1/1/1,
    64 pairs sharing a host, from 90). A second VM on a free host would put it beside one it must
    not meet, which no step does, even one that leaves more of them behind."""
    settings = PlannerSettings(
        time_limit=5.0, max_migrations=10, max_migrations_per_host=10, underloaded_hosts=0
    )
    hosts = {f"h{i}": host(f"h{i}") for i in range(5)}
    vms = {f"r{i}": vm(f"r{i}", f"h{i % 2}") for i in range(20)}
    inventory = Inventory(hosts=hosts, vms=vms, rules=[spread_rule()])
    plan = Planner(settings).plan(inventory, strategy="test")
    rule = spread_rule()
    where = final_hosts(inventory, plan)
    before = pairs_together(inventory, inventory.placement(), rule.vm_ids)
    after = pairs_together(inventory, where, rule.vm_ids)
    assert after <= before
    assert len(after) == 64 and set(where.values()) == set(hosts)
    assert plan.stats["hard_violations"] == 64.0
    assert "spread: 64 VM pairs share a host (20 VMs on 5 hosts)" in plan.stats["unsatisfied"]
    assert plan.stats["solver"] == "cp-sat"
    check_plan_safe(inventory, plan)


def test_a_broken_rule_is_never_made_worse_to_save_energy():
    """``r3`` is alone on an idle host the planner would like to empty, but every other host holds
    a VM it must not meet: it stays, and the pair already sharing ``h1`` is not counted twice."""
    settings = PlannerSettings(time_limit=5.0, underloaded_hosts=4)
    hosts = {f"h{i}": host(f"h{i}") for i in range(1, 4)}
    vms = {"r0": vm("r0", "h1"), "r1": vm("r1", "h1"), "r2": vm("r2", "h2"), "r3": vm("r3", "h3")}
    rule = AffinityRule("spread", RuleKind.ANTI_AFFINITY, frozenset(vms))
    inventory = Inventory(hosts=hosts, vms=vms, rules=[rule])
    plan = Planner(settings).plan(inventory, busy_forecast(inventory, 0.05), strategy="test")
    after = pairs_together(inventory, final_hosts(inventory, plan), rule.vm_ids)
    assert after <= {frozenset(("r0", "r1"))}
    assert plan.stats["solver"] == "cp-sat"
    check_plan_safe(inventory, plan)


def test_the_solvers_relax_a_broken_rule_instead_of_failing():
    """CP-SAT has a plan (not INFEASIBLE) and the greedy agrees that nobody may join a VM it must
    not meet, while staying beside one is allowed."""
    settings = PlannerSettings(time_limit=5.0)
    inventory = cloud_with_a_drain()
    inventory.rules.append(spread_rule())
    inventory.hosts["h1"].maintenance = False
    for i in range(4):  # give the rule's VMs a reason to move: they must all become candidates
        inventory.vms[f"r{i}"].attributes["noisy"] = "yes"
    problem = build_problem(inventory, settings, busy_forecast(inventory))
    cm = build_candidate_model(problem)
    greedy = greedy_solve(cm)
    result = solve_cpsat(cm, hint=greedy)
    assert result.status in {"OPTIMAL", "FEASIBLE"}
    for assignment in (greedy, result.assignment):
        host_of = {cm.candidates[pos]: int(cm.opt_host[o]) for pos, o in enumerate(assignment.choice)}
        for a, b in cm.forbidden_pairs:
            va, vb = cm.candidates[a], cm.candidates[b]
            if host_of[va] == host_of[vb]:
                home = cm.host_pos[int(problem.host_of[va])]
                assert host_of[va] == home == cm.host_pos[int(problem.host_of[vb])]


def secret_cloud() -> Inventory:
    """One host with two secret VMs and an internal one: the policy cannot hold anywhere."""
    secret = WorkloadClass(security_level="secret")
    vms = {"s0": vm("s0", "h0", workload=secret), "s1": vm("s1", "h0", workload=secret), "i0": vm("i0", "h0")}
    policy = CoTenancyPolicy("isolate-secret", PolicyAttribute.SECURITY_LEVEL, "secret")
    return Inventory(hosts={"h0": host("h0")}, vms=vms, policies=[policy])


def test_a_policy_no_placement_satisfies_leaves_the_allocation_steps():
    inventory = secret_cloud()
    plan = Planner(PlannerSettings(time_limit=5.0)).plan(inventory, busy_forecast(inventory), strategy="test")
    raised = {a.vm_id for a in plan.actions if a.kind is ActionKind.SET_ALLOCATION}
    assert raised == {"s0", "s1", "i0"}
    assert plan.migrations == []
    assert plan.stats["hard_violations"] == 2.0
    assert "policy isolate-secret: 2 VM pairs share a host" in plan.stats["unsatisfied"]
    check_plan_safe(inventory, plan)


def test_a_hard_affinity_rule_whose_vms_do_not_fit_on_one_host_is_reported():
    hosts = {"h0": host("h0", memory=4096), "h1": host("h1", memory=4096), "h2": host("h2", maintenance=True)}
    vms = {"a": vm("a", "h0", memory=3072), "b": vm("b", "h1", memory=3072), "d": vm("d", "h2")}
    rule = AffinityRule("together", RuleKind.AFFINITY, frozenset({"a", "b"}))
    inventory = Inventory(hosts=hosts, vms=vms, rules=[rule])
    plan = Planner(PlannerSettings(time_limit=5.0)).plan(inventory, strategy="test")
    assert [(s.vm_id, s.source_host_id) for s in plan.migrations] == [("d", "h2")]
    assert "affinity rule together: its 2 VMs are on 2 hosts" in plan.stats["unsatisfied"]
    check_plan_safe(inventory, plan)


def test_draining_every_host_keeps_the_allocation_steps_and_says_why(caplog):
    hosts = {"h0": host("h0", maintenance=True), "h1": host("h1", maintenance=True)}
    vms = {"a": vm("a", "h0"), "b": vm("b", "h1")}
    inventory = Inventory(hosts=hosts, vms=vms)
    with caplog.at_level(logging.WARNING):
        plan = Planner(PlannerSettings(time_limit=5.0)).plan(
            inventory, busy_forecast(inventory), strategy="test"
        )
    assert {a.vm_id for a in plan.actions if a.kind is ActionKind.SET_ALLOCATION} == {"a", "b"}
    assert plan.migrations == []
    text = plan.stats["unsatisfied"]
    assert "drain of h0: 1 VMs cannot leave (every host is in maintenance)" in text
    assert "drain of h1" in text
    assert sum("drain of h0" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING) == 1


def test_a_critical_reservation_that_cannot_fit_is_reported_and_the_rest_goes_on():
    """``c`` is critical on a host whose CPU is reserved by others; the only other host is too small
    for its memory. Its raise waits; ``x``'s raise on another host still happens."""
    hosts = {"h0": host("h0", cpu=4000, memory=8192), "h1": host("h1", cpu=4000, memory=1024)}
    reserved = Allocation(reservation=Resources(cpu=3000.0))
    vms = {
        "c": vm("c", "h0", cpu=2000, memory=2048, critical=True),
        "full": vm("full", "h0", cpu=3000, memory=2048, allocation=reserved),
        "x": vm("x", "h1", cpu=1000, memory=512),
    }
    inventory = Inventory(hosts=hosts, vms=vms)
    cpu = np.array([1500.0, 3000.0, 800.0])
    forecast = DemandForecast({Resource.CPU: cpu}, {Resource.CPU: cpu * 0.9}, "forecast p95")
    plan = Planner(PlannerSettings(time_limit=5.0)).plan(inventory, forecast, strategy="test")
    raised = {a.vm_id for a in plan.actions if a.kind is ActionKind.SET_ALLOCATION}
    assert "x" in raised and "c" not in raised
    assert "critical c: cpu reservation 0 -> 1950 does not fit this round" in plan.stats["unsatisfied"]
    check_plan_safe(inventory, plan)


def test_the_plan_table_shows_what_could_not_be_satisfied():
    inventory = secret_cloud()
    plan = Planner(PlannerSettings(time_limit=5.0)).plan(inventory, busy_forecast(inventory), strategy="test")
    lines = format_plan(plan).splitlines()
    assert any(line.startswith("not satisfied: policy isolate-secret: 2 VM pairs") for line in lines), lines
