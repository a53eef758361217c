"""The baseline strategies (``reactive-threshold``, ``lr-mmt``) obey the hard rules an operator sets.

They can run against real clouds, so their plans must never put two VMs a co-tenancy policy or a
hard anti-affinity rule keeps apart on one host, nor move a member of a hard affinity group away
from it. Soft rules are preferences they do not weigh; hosts in maintenance receive nothing.
A VM a live migration is taking to another host counts there too (load, memory, company) until it
lands, so neither overfills the host it is about to land on.
"""

from __future__ import annotations

import numpy as np
import pytest

from cotenancy.conf import make_conf
from cotenancy.model import (
    VM,
    ActionPlan,
    AffinityRule,
    ClusterState,
    CoTenancyPolicy,
    Host,
    Inventory,
    PolicyAttribute,
    Resources,
    RuleKind,
    TelemetryWindow,
    VMState,
    WorkloadClass,
    policies_allow,
)
from cotenancy.strategies.base import Strategy
from cotenancy.strategies.lr_mmt import LrMmtStrategy
from cotenancy.strategies.reactive import ReactiveThresholdStrategy

ISOLATE_SECRET = CoTenancyPolicy("isolate-secret", PolicyAttribute.SECURITY_LEVEL, "secret")
RED_APART_FROM_BLUE = CoTenancyPolicy("red-apart-from-blue", PolicyAttribute.TENANT, "red", ("blue",))


def vm(
    vm_id: str,
    host: str,
    demand: float,
    memory: float = 512.0,
    security: str = "internal",
    tenant: str = "default",
) -> VM:
    """A 1000 MHz VM; its CPU demand (MHz) is kept in ``attributes`` for :func:`cloud`."""
    return VM(
        id=vm_id,
        name=vm_id,
        host_id=host,
        size=Resources(cpu=1000.0, memory=memory),
        tenant=tenant,
        workload=WorkloadClass(security_level=security),
        attributes={"demand": str(demand)},
    )


def cloud(
    hosts: dict[str, float],
    vms: list[VM],
    policies: list[CoTenancyPolicy] | None = None,
    rules: list[AffinityRule] | None = None,
    maintenance: frozenset[str] = frozenset(),
) -> ClusterState:
    """Single-core hosts of the given MHz and one telemetry sample per VM (its demand)."""
    inventory = Inventory(
        hosts={
            host: Host(
                id=host,
                name=host,
                capacity=Resources(cpu=mhz, memory=8192.0),
                maintenance=host in maintenance,
                power_model="hp-proliant-ml110-g4",
                attributes={"cores": "1"},
            )
            for host, mhz in hosts.items()
        },
        vms={v.id: v for v in vms},
        policies=policies or [],
        rules=rules or [],
    )
    demand = np.array([[float(v.attributes["demand"])] for v in vms])
    telemetry = TelemetryWindow(
        vm_ids=[v.id for v in vms],
        timestamps=np.array([0.0]),
        values={"cpu_demand": demand, "cpu": demand.copy()},
        step_seconds=300.0,
    )
    return ClusterState(now=300.0, inventory=inventory, telemetry=telemetry)


def reactive() -> Strategy:
    return ReactiveThresholdStrategy(make_conf([], config_files=[]))


def lr_mmt() -> Strategy:
    return LrMmtStrategy(make_conf([], config_files=[]))


def moves(plan: ActionPlan) -> dict[str, str]:
    """VM id -> the host it ends on, for the VMs the plan moves."""
    return {a.vm_id: a.target_host_id for a in plan.migrations}


def end_placement(state: ClusterState, plan: ActionPlan) -> dict[str, str | None]:
    return state.inventory.placement() | moves(plan)


def new_forbidden_pairs(state: ClusterState, plan: ActionPlan) -> set[frozenset[str]]:
    """Pairs a policy keeps apart that share a host after the plan but did not before."""

    def forbidden(placement: dict[str, str | None]) -> set[frozenset[str]]:
        vms = state.inventory.vms
        return {
            frozenset((a, b))
            for a in vms
            for b in vms
            if a < b
            and placement[a] == placement[b]
            and not policies_allow(state.inventory.policies, vms[a], vms[b])
        }

    return forbidden(end_placement(state, plan)) - forbidden(state.inventory.placement())


#: each baseline with a busy VM that makes its host overloaded by that baseline's own rule
#: (reactive-threshold: demand above 90 % of the host; lr-mmt: its regression's overload test),
#: and a load for a third host that leaves it the only place the rules allow
EACH_BASELINE_OVERLOADING = [
    pytest.param(lambda: reactive(), 800.0, 300.0, id="reactive-threshold"),
    pytest.param(lambda: lr_mmt(), 500.0, 100.0, id="lr-mmt"),
]


@pytest.mark.parametrize(("strategy", "busy", "third"), EACH_BASELINE_OVERLOADING)
def test_a_vm_is_moved_only_to_a_host_its_policies_allow(strategy, busy, third):
    state = cloud(
        {"a": 1000.0, "b": 1000.0, "c": 1000.0},
        [
            vm("secret-1", "a", 300.0, memory=256.0, security="secret"),
            vm("busy", "a", busy, memory=2048.0),
            vm("public-1", "b", 100.0, security="public"),
            vm("secret-2", "c", third, security="secret"),
        ],
        policies=[ISOLATE_SECRET],
    )
    plan = strategy().plan(state)
    assert moves(plan)["secret-1"] == "c"
    assert new_forbidden_pairs(state, plan) == set()


@pytest.mark.parametrize(("strategy", "busy", "third"), EACH_BASELINE_OVERLOADING)
def test_members_of_a_hard_anti_affinity_rule_are_kept_apart(strategy, busy, third):
    apart = AffinityRule("web-apart", RuleKind.ANTI_AFFINITY, frozenset({"web-1", "web-2"}))
    state = cloud(
        {"a": 1000.0, "b": 1000.0, "c": 1000.0},
        [
            vm("web-1", "a", 300.0, memory=256.0),
            vm("busy", "a", busy, memory=2048.0),
            vm("web-2", "b", 100.0),
            vm("other", "c", third),
        ],
        rules=[apart],
    )
    plan = strategy().plan(state)
    assert moves(plan)["web-1"] == "c"
    assert apart.satisfied_by(end_placement(state, plan))


@pytest.mark.parametrize(("strategy", "busy", "_third"), EACH_BASELINE_OVERLOADING)
def test_members_of_a_hard_affinity_group_stay_and_another_vm_moves_instead(strategy, busy, _third):
    together = AffinityRule("db-with-web", RuleKind.AFFINITY, frozenset({"db-1", "web-1"}))
    state = cloud(
        {"a": 1000.0, "b": 1000.0},
        [
            vm("db-1", "a", 200.0, memory=256.0),
            vm("web-1", "a", 100.0, memory=512.0),
            vm("busy", "a", busy, memory=2048.0),
        ],
        rules=[together],
    )
    plan = strategy().plan(state)
    assert moves(plan) == {"busy": "b"}
    assert together.satisfied_by(end_placement(state, plan))


# --- reactive-threshold ---------------------------------------------------------------------------


def test_reactive_counts_vms_planned_earlier_in_the_round_as_tenants_of_their_target():
    state = cloud(
        {"a": 1000.0, "b": 1000.0, "big": 4000.0, "small": 1000.0},
        [
            vm("red-1", "a", 200.0, memory=256.0, tenant="red"),
            vm("busy-a", "a", 850.0, memory=2048.0),
            vm("blue-1", "b", 200.0, memory=256.0, tenant="blue"),
            vm("busy-b", "b", 800.0, memory=2048.0),
        ],
        policies=[RED_APART_FROM_BLUE],
    )
    plan = reactive().plan(state)
    assert moves(plan) == {"red-1": "big", "blue-1": "small"}


# --- lr-mmt ---------------------------------------------------------------------------------------


def test_lr_mmt_does_not_drain_a_host_that_holds_a_hard_affinity_group():
    together = AffinityRule("db-with-web", RuleKind.AFFINITY, frozenset({"db-1", "web-1"}))
    state = cloud(
        {"a": 1000.0, "b": 1000.0},
        [
            vm("db-1", "a", 100.0),
            vm("web-1", "a", 100.0),
            vm("other", "b", 300.0),
        ],
        rules=[together],
    )
    plan = lr_mmt().plan(state)
    assert moves(plan) == {"other": "a"}


def test_lr_mmt_counts_vms_planned_earlier_in_the_round_as_tenants_of_their_target():
    state = cloud(
        {"x": 1000.0, "y": 1000.0, "big": 4000.0, "spare": 4000.0},
        [
            vm("red-1", "x", 100.0, tenant="red"),
            vm("blue-1", "y", 150.0, tenant="blue"),
            vm("other", "big", 2400.0),
            vm("other-2", "spare", 1200.0),
        ],
        policies=[RED_APART_FROM_BLUE],
    )
    plan = lr_mmt().plan(state)
    assert moves(plan) == {"red-1": "big", "blue-1": "spare"}


# --- both: what the rules leave as it was ---------------------------------------------------------


@pytest.mark.parametrize("strategy", [reactive, lr_mmt])
def test_soft_rules_do_not_constrain_the_baselines(strategy):
    state = cloud(
        {"a": 1000.0, "b": 1000.0},
        [
            vm("web-1", "a", 300.0, memory=256.0),
            vm("busy", "a", 700.0, memory=2048.0),
            vm("web-2", "b", 100.0),
        ],
        rules=[AffinityRule("web-apart", RuleKind.ANTI_AFFINITY, frozenset({"web-1", "web-2"}), hard=False)],
    )
    plan = strategy().plan(state)
    assert moves(plan)["web-1"] == "b"


@pytest.mark.parametrize("strategy", [reactive, lr_mmt])
def test_hosts_in_maintenance_receive_no_vm_while_policies_are_checked(strategy):
    state = cloud(
        {"a": 1000.0, "drained": 4000.0, "b": 1000.0},
        [
            vm("web-1", "a", 300.0, memory=256.0),
            vm("busy", "a", 700.0, memory=2048.0),
            vm("public-1", "b", 100.0, security="public"),
        ],
        policies=[ISOLATE_SECRET],
        maintenance=frozenset({"drained"}),
    )
    plan = strategy().plan(state)
    assert moves(plan)["web-1"] == "b"
    assert "drained" not in moves(plan).values()


# --- both: a VM in flight counts on the host it is arriving on -------------------------------------


def in_flight(v: VM, target: str) -> VM:
    v.state, v.migration_target = VMState.MIGRATING, target
    return v


def test_reactive_does_not_fill_the_cpu_a_migrating_vm_is_about_to_take():
    """``b`` looks the coolest, but ``m`` (700 MHz) is landing there: ``small`` goes to ``c``."""
    vms = [
        vm("small", "a", 300.0, memory=256.0),
        vm("busy", "a", 700.0, memory=2048.0),
        vm("other", "c", 400.0),
        vm("m", "x", 700.0),
    ]
    hosts = {"a": 1000.0, "b": 1000.0, "c": 1000.0, "x": 1000.0}
    assert moves(reactive().plan(cloud(hosts, vms))) == {"small": "b"}
    in_flight(vms[3], "b")
    assert moves(reactive().plan(cloud(hosts, vms))) == {"small": "c"}


def test_reactive_does_not_fill_the_memory_a_migrating_vm_is_about_to_take():
    vms = [
        vm("small", "a", 300.0, memory=4096.0),
        vm("busy", "a", 700.0, memory=4096.0),
        vm("other", "c", 400.0),
        in_flight(vm("m", "x", 100.0, memory=6144.0), "b"),
    ]
    plan = reactive().plan(cloud({"a": 1000.0, "b": 1000.0, "c": 1000.0, "x": 1000.0}, vms))
    assert moves(plan) == {"small": "c"}  # b has 8192 MiB: 6144 arriving leave no room for 4096


def test_lr_mmt_does_not_fill_the_cpu_a_migrating_vm_is_about_to_take():
    """``small`` leaves overloaded ``a``; ``b`` is the cheapest in power to fill, unless ``m``
    (300 MHz) landing there counts: then ``b`` would pass the 70 % static threshold."""
    vms = [
        vm("small", "a", 300.0, memory=256.0),
        vm("busy", "a", 500.0, memory=2048.0),
        vm("resident", "b", 250.0, memory=2048.0),
        vm("light", "c", 100.0, memory=2048.0),
        vm("m", "x", 300.0, memory=2048.0),
        vm("other", "x", 150.0, memory=2048.0),
    ]
    hosts = {"a": 1000.0, "b": 1000.0, "c": 1000.0, "x": 1000.0}
    assert moves(lr_mmt().plan(cloud(hosts, vms)))["small"] == "b"
    in_flight(vms[4], "b")
    assert moves(lr_mmt().plan(cloud(hosts, vms)))["small"] == "c"


def test_lr_mmt_does_not_drain_a_host_a_vm_is_migrating_in_to():
    """As CloudSim (``areAllVmsMigratingOutOrAnyVmMigratingIn``): emptying ``b`` saves nothing
    while ``m`` is landing on it."""
    vms = [vm("resident", "b", 100.0), vm("other", "c", 500.0), vm("m", "x", 300.0)]
    hosts = {"b": 1000.0, "c": 1000.0, "x": 1000.0}
    assert "resident" in moves(lr_mmt().plan(cloud(hosts, vms)))
    in_flight(vms[2], "b")
    assert "resident" not in moves(lr_mmt().plan(cloud(hosts, vms)))


@pytest.mark.parametrize(("strategy", "busy", "third"), EACH_BASELINE_OVERLOADING)
def test_a_vm_is_not_sent_where_a_vm_its_policies_keep_it_from_is_arriving(strategy, busy, third):
    state = cloud(
        {"a": 1000.0, "b": 1000.0, "c": 1000.0, "x": 1000.0},
        [
            vm("secret-1", "a", 300.0, memory=256.0, security="secret"),
            vm("busy", "a", busy, memory=2048.0),
            vm("public-1", "x", 100.0, security="public"),
            vm("secret-2", "c", third, security="secret"),
        ],
        policies=[ISOLATE_SECRET],
    )
    assert moves(strategy().plan(state))["secret-1"] == "b"
    in_flight(state.inventory.vms["public-1"], "b")
    plan = strategy().plan(state)
    assert moves(plan)["secret-1"] == "c"


@pytest.mark.parametrize(("strategy", "busy", "third"), EACH_BASELINE_OVERLOADING)
def test_a_vm_is_not_sent_where_a_member_of_its_anti_affinity_rule_is_arriving(strategy, busy, third):
    apart = AffinityRule("web-apart", RuleKind.ANTI_AFFINITY, frozenset({"web-1", "web-2"}))
    state = cloud(
        {"a": 1000.0, "b": 1000.0, "c": 1000.0, "x": 1000.0},
        [
            vm("web-1", "a", 300.0, memory=256.0),
            vm("busy", "a", busy, memory=2048.0),
            vm("web-2", "x", 100.0),
            vm("other", "c", third),
        ],
        rules=[apart],
    )
    assert moves(strategy().plan(state))["web-1"] == "b"
    in_flight(state.inventory.vms["web-2"], "b")
    assert moves(strategy().plan(state))["web-1"] == "c"
