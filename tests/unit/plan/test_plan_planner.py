"""What the planner decides, and why, on small clouds where the right answer is clear."""

from __future__ import annotations

import numpy as np
import pytest
from plan_builders import final_hosts, host, noisy_pair_risk, noisy_pair_risk_where_they_meet, vm
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
from cotenancy.plan.interference import HostExposure, VmInterference, conflict_chance
from cotenancy.plan.migration_cost import MigrationCostModel
from cotenancy.plan.model import solve_cpsat
from cotenancy.plan.ordering import VMChange, order_changes
from cotenancy.plan.planner import Planner
from cotenancy.plan.problem import DemandForecast, PlannerSettings, build_problem


def cpu_forecast(inventory: Inventory, share: dict[str, float]) -> DemandForecast:
    cpu = np.array([share.get(v.id, 0.1) * v.size.cpu for v in inventory.vms.values()])
    return DemandForecast({Resource.CPU: cpu}, {Resource.CPU: cpu * 0.8}, "forecast p95")


def test_a_swap_between_full_hosts_goes_through_a_staging_host(settings):
    inventory = Inventory(
        hosts={"a": host("a", memory=2048), "b": host("b", memory=2048), "c": host("c", memory=2048)},
        vms={"x": vm("x", "a", memory=2048), "y": vm("y", "b", memory=2048)},
    )
    problem = build_problem(inventory, settings)
    changes = [
        VMChange(0, 1, problem.size[0], problem.reservation[0], "swap x", 1.0),
        VMChange(1, 0, problem.size[1], problem.reservation[1], "swap y", 1.0),
    ]
    result = order_changes(problem, changes, "test")
    assert result.staged == 1
    assert len(result.plan.migrations) == 3
    assert final_hosts(inventory, result.plan) == {"x": "b", "y": "a"}
    check_plan_safe(inventory, result.plan)


def test_a_swap_with_no_room_anywhere_is_dropped_not_forced(settings):
    inventory = Inventory(
        hosts={"a": host("a", memory=2048), "b": host("b", memory=2048)},
        vms={"x": vm("x", "a", memory=2048), "y": vm("y", "b", memory=2048)},
    )
    problem = build_problem(inventory, settings)
    changes = [
        VMChange(0, 1, problem.size[0], problem.reservation[0], "swap x", 1.0),
        VMChange(1, 0, problem.size[1], problem.reservation[1], "swap y", 1.0),
    ]
    result = order_changes(problem, changes, "test")
    assert result.plan.migrations == []
    assert len(result.dropped) == 2


def test_the_safety_checker_rejects_a_swap_without_room():
    inventory = Inventory(
        hosts={"a": host("a", memory=2048), "b": host("b", memory=2048)},
        vms={"x": vm("x", "a", memory=2048), "y": vm("y", "b", memory=2048)},
    )
    unsafe = ActionPlan("test")
    unsafe.add(ActionKind.LIVE_MIGRATE, vm_id="x", source_host_id="a", target_host_id="b")
    unsafe.add(ActionKind.LIVE_MIGRATE, vm_id="y", source_host_id="b", target_host_id="a")
    with pytest.raises(AssertionError, match="over capacity"):
        check_plan_safe(inventory, unsafe)


def test_vms_leave_a_host_in_maintenance_and_say_why(settings):
    inventory = Inventory(
        hosts={"a": host("a", maintenance=True), "b": host("b")},
        vms={"x": vm("x", "a"), "y": vm("y", "b")},
    )
    plan = Planner(settings).plan(inventory, cpu_forecast(inventory, {}), strategy="test")
    assert [(s.vm_id, s.target_host_id) for s in plan.migrations] == [("x", "b")]
    assert "maintenance" in plan.migrations[0].reason
    assert plan.migrations[0].expected_benefit > 0
    check_plan_safe(inventory, plan)


def test_the_riskiest_pair_is_separated_proactively():
    settings = PlannerSettings(underloaded_hosts=0)
    noisy = {"noisy": "yes"}
    inventory = Inventory(
        hosts={"a": host("a"), "b": host("b"), "c": host("c")},
        vms={
            "x": vm("x", "a", attributes=noisy),
            "y": vm("y", "a", attributes=noisy),
            "z": vm("z", "b"),
            "w": vm("w", "c"),
        },
    )
    plan = Planner(settings).plan(inventory, cpu_forecast(inventory, {}), noisy_pair_risk(inventory))
    where = final_hosts(inventory, plan)
    assert where["x"] != where["y"]
    assert plan.migrations and {s.vm_id for s in plan.migrations} <= {"x", "y"}
    assert all("pair risk 0.90 of x with y" in s.reason for s in plan.migrations)
    assert plan.stats["max_pair_risk"] == pytest.approx(0.9)
    check_plan_safe(inventory, plan)


def test_two_risky_vms_that_must_move_are_not_sent_to_one_host():
    """Neither shares a host with the other today, so their risk together exists only on the host
    they would share: the planner asks the model for that host instead of packing them there."""
    settings = PlannerSettings(underloaded_hosts=0)
    noisy = {"noisy": "yes"}
    inventory = Inventory(
        hosts={
            "a": host("a", maintenance=True),
            "b": host("b", maintenance=True),
            "c": host("c"),
            "d": host("d"),
        },
        vms={"x": vm("x", "a", attributes=noisy), "y": vm("y", "b", attributes=noisy), "z": vm("z", "c")},
    )
    risk = noisy_pair_risk_where_they_meet(inventory)
    plan = Planner(settings).plan(inventory, cpu_forecast(inventory, {}), risk, strategy="test")
    where = final_hosts(inventory, plan)
    assert where["x"] in ("c", "d") and where["y"] in ("c", "d")
    assert where["x"] != where["y"]
    check_plan_safe(inventory, plan)


def test_a_host_predicted_to_overload_is_relieved(settings):
    inventory = Inventory(
        hosts={"a": host("a", cpu=3000), "b": host("b", cpu=3000)},
        vms={"x": vm("x", "a", cpu=2000), "y": vm("y", "a", cpu=2000), "z": vm("z", "b", cpu=500)},
    )
    forecast = cpu_forecast(inventory, {"x": 0.9, "y": 0.9, "z": 0.5})
    plan = Planner(PlannerSettings(manage_allocations=False, demand_correlation=1.0)).plan(
        inventory, forecast
    )
    assert len(plan.migrations) == 1
    assert plan.migrations[0].source_host_id == "a"
    assert "host a cpu 3600 > 85% of 3000" in plan.migrations[0].reason
    check_plan_safe(inventory, plan)


def bursty_host(n_vms: int) -> Inventory:
    """One host with ``n_vms`` small VMs (median 100 MHz, p95 400 MHz) and an empty neighbour."""
    vms = {f"v{i}": vm(f"v{i}", "a", cpu=500, memory=64) for i in range(n_vms)}
    return Inventory(hosts={"a": host("a", cpu=3000), "b": host("b", cpu=3000)}, vms=vms)


def bursty_forecast(inventory: Inventory) -> DemandForecast:
    high = np.full(len(inventory.vms), 400.0)
    return DemandForecast({Resource.CPU: high}, {Resource.CPU: high / 4}, "forecast p95")


@pytest.mark.parametrize(
    ("correlation", "host_p95"),
    [
        (1.0, 8 * 400.0),
        (0.0, 8 * 100.0 + 300.0 * np.sqrt(8)),
        (0.3, 8 * 100.0 + 300.0 * np.sqrt(0.7 * 8 + 0.3 * 64)),
    ],
)
def test_a_host_quantile_adds_medians_and_combines_spreads(correlation, host_p95):
    inventory = bursty_host(8)
    problem = build_problem(
        inventory, PlannerSettings(demand_correlation=correlation), bursty_forecast(inventory)
    )
    assert problem.host_demand()[0, 0] == pytest.approx(host_p95)


def test_bursty_vms_that_rarely_peak_together_share_a_host(settings):
    """Eight VMs whose p95s add up to 107 % of the host: independent bursts stay well under it."""
    inventory = bursty_host(8)
    independent = PlannerSettings(manage_allocations=False, demand_correlation=0.0)
    assert not Planner(independent).plan(inventory, bursty_forecast(inventory)).migrations
    together = PlannerSettings(manage_allocations=False, demand_correlation=1.0)
    plan = Planner(together).plan(inventory, bursty_forecast(inventory))
    assert plan.migrations and all(s.target_host_id == "b" for s in plan.migrations)
    check_plan_safe(inventory, plan)


def test_policies_are_never_broken_to_relieve_a_host(settings):
    secret = WorkloadClass(security_level="secret")
    inventory = Inventory(
        hosts={"a": host("a", cpu=3000), "b": host("b", cpu=3000)},
        vms={
            "x": vm("x", "a", cpu=2000, workload=secret),
            "y": vm("y", "a", cpu=2000, workload=secret),
            "z": vm("z", "b", cpu=500),
        },
        policies=[CoTenancyPolicy("isolate", PolicyAttribute.SECURITY_LEVEL, "secret")],
    )
    forecast = cpu_forecast(inventory, {"x": 0.9, "y": 0.9})
    plan = Planner(PlannerSettings(manage_allocations=False)).plan(inventory, forecast)
    assert plan.migrations == []


def test_an_underloaded_host_is_emptied_to_save_energy():
    inventory = Inventory(
        hosts={"a": host("a"), "b": host("b")},
        vms={"x": vm("x", "a"), "y": vm("y", "b")},
    )
    plan = Planner(PlannerSettings(manage_allocations=False)).plan(inventory, cpu_forecast(inventory, {}))
    assert len(plan.migrations) == 1
    assert "emptying it saves 86 W" in plan.migrations[0].reason
    check_plan_safe(inventory, plan)


@pytest.mark.parametrize(
    ("demand", "critical", "expected"),
    [
        (1050.0, False, None),  # inside the hysteresis band: leave it alone
        (750.0, False, None),
        (1200.0, False, 1320.0),  # up by more than 10 %: demand plus 10 % headroom
        (600.0, False, 660.0),  # down by more than 30 %
        (1200.0, True, 1560.0),  # critical VMs get 30 % headroom
    ],
)
def test_allocations_follow_demand_with_hysteresis(demand, critical, expected):
    inventory = Inventory(
        hosts={"a": host("a"), "b": host("b")},
        vms={
            "x": vm(
                "x",
                "a",
                cpu=2000,
                critical=critical,
                allocation=Allocation(reservation=Resources(cpu=1000.0)),
            ),
            "y": vm("y", "b", cpu=2000, allocation=Allocation(reservation=Resources(cpu=1000.0))),
        },
    )
    forecast = DemandForecast(
        {Resource.CPU: np.array([demand, 1000.0])}, {Resource.CPU: np.array([demand, 1000.0])}, "forecast"
    )
    plan = Planner(PlannerSettings(underloaded_hosts=0)).plan(inventory, forecast)
    steps = [s for s in plan.actions if s.kind is ActionKind.SET_ALLOCATION]
    if expected is None:
        assert steps == []
    else:
        assert [(s.vm_id, s.allocation.reservation.cpu) for s in steps] == [("x", expected)]
        assert "cpu reservation 1000 -> " in steps[0].reason and "p95" in steps[0].reason
        assert steps[0].expected_benefit > 0


def test_cp_sat_is_never_worse_than_its_greedy_hint_and_reports_a_gap():
    rng = np.random.default_rng(7)
    hosts = {f"h{i}": host(f"h{i}", cpu=3000) for i in range(12)}
    vms = {f"v{i}": vm(f"v{i}", f"h{i % 12}", cpu=1000, memory=512) for i in range(40)}
    inventory = Inventory(hosts=hosts, vms=vms)
    share = {v: float(s) for v, s in zip(vms, rng.uniform(0.2, 1.0, len(vms)), strict=True)}
    settings = PlannerSettings(time_limit=2.0, max_migrations=8, underloaded_hosts=2)
    problem = build_problem(inventory, settings, cpu_forecast(inventory, share))
    model = build_candidate_model(problem)
    greedy = greedy_solve(model)
    result = solve_cpsat(model, hint=greedy)
    assert result.assignment is not None
    assert result.objective <= greedy.objective + 1e-6
    assert 0.0 <= result.gap <= 1.0 and result.bound <= result.objective + 1e-6


def test_migration_time_grows_with_memory_and_stays_finite_when_dirtying_outruns_the_link():
    model = MigrationCostModel(dirty_rate=0.02, bandwidth=125.0)
    assert model.seconds(2048) > model.seconds(512) > 512 / 125.0
    hopeless = MigrationCostModel(dirty_rate=1.0, bandwidth=10.0, precopy_rounds=5)
    assert np.isfinite(hopeless.seconds(1024)) and hopeless.seconds(1024) <= 6 * 1024 / 10.0


def test_a_maintenance_drain_wins_over_consolidation_for_the_migration_budget():
    """Under-used hosts would be emptied too, but the operator's drain gets the whole budget."""
    settings = PlannerSettings(max_migrations=3, max_migrations_per_host=3)
    inventory = Inventory(
        hosts={name: host(name, memory=8192) for name in "mabcd"},
        vms={
            **{f"m{i}": vm(f"m{i}", "m") for i in range(3)},
            **{f"{h}{i}": vm(f"{h}{i}", h) for h in "abcd" for i in range(2)},
        },
    )
    inventory.hosts["m"].maintenance = True
    plan = Planner(settings).plan(inventory, cpu_forecast(inventory, {}), strategy="test")
    assert sorted(s.vm_id for s in plan.migrations) == ["m0", "m1", "m2"]
    assert all("maintenance" in s.reason for s in plan.migrations)
    check_plan_safe(inventory, plan)


def test_consolidation_resumes_once_nothing_is_left_in_maintenance():
    settings = PlannerSettings(max_migrations=3, max_migrations_per_host=3)
    inventory = Inventory(
        hosts={name: host(name, memory=8192) for name in "mabcd"},
        vms={f"{h}{i}": vm(f"{h}{i}", h) for h in "abcd" for i in range(2)},
    )
    inventory.hosts["m"].maintenance = True
    plan = Planner(settings).plan(inventory, cpu_forecast(inventory, {}), strategy="test")
    assert plan.migrations and all("emptying it saves" in s.reason for s in plan.migrations)


def test_memory_is_not_held_against_hosts_that_do_not_admit_by_memory():
    """CloudSim's reference hosts overcommit memory (``memory_admission = none``): the planner
    plays by that cloud's rule and empties an idle host it could not empty under memory admission."""

    def cloud(attributes: dict[str, str]) -> Inventory:
        hosts = {name: host(name, memory=2048) for name in "ab"}
        for h in hosts.values():
            h.attributes.update(attributes)
        return Inventory(hosts=hosts, vms={"x": vm("x", "a", memory=1536), "y": vm("y", "b", memory=1536)})

    settings = PlannerSettings(underloaded_hosts=2)
    strict = cloud({})
    assert Planner(settings).plan(strict, cpu_forecast(strict, {}), strategy="test").migrations == []
    loose = cloud({"memory_admission": "none"})
    plan = Planner(settings).plan(loose, cpu_forecast(loose, {}), strategy="test")
    assert len(plan.migrations) == 1 and "emptying it saves" in plan.migrations[0].reason


def test_a_host_between_the_pack_and_the_trigger_level_is_left_alone():
    inventory = Inventory(
        hosts={"a": host("a"), "b": host("b")},
        vms={"x": vm("x", "a", cpu=2000), "y": vm("y", "a", cpu=2000)},
    )
    forecast = cpu_forecast(inventory, {"x": 0.8, "y": 0.8})  # host a at 80 %: above 75 %, below 85 %
    settings = PlannerSettings(manage_allocations=False, demand_correlation=1.0, underloaded_hosts=0)
    assert Planner(settings).plan(inventory, forecast).migrations == []


def test_a_relieved_vm_lands_where_the_host_stays_under_the_pack_level():
    inventory = Inventory(
        hosts={
            "a": host("a", memory=8192),
            "b": host("b"),
            "c": Host("c", "c", Resources(cpu=4000.0, memory=4096.0), power_model="g5"),
        },
        vms={
            "x": vm("x", "a", cpu=1000),
            "y": vm("y", "a", cpu=3000, memory=4096),  # fits nowhere else: a is not emptied
            "z": vm("z", "b", cpu=2300),
            "w": vm("w", "c", cpu=500),
        },
    )
    forecast = cpu_forecast(inventory, {"x": 0.9, "y": 0.9, "z": 1.0, "w": 0.1})
    settings = PlannerSettings(manage_allocations=False, demand_correlation=1.0, underloaded_hosts=0)
    # b would end at 80 %, under the 85 % trigger and on the cheaper power model, but over the pack level
    assert [(s.vm_id, s.target_host_id) for s in Planner(settings).plan(inventory, forecast).migrations] == [
        ("x", "c")
    ]
    loose = PlannerSettings(
        manage_allocations=False, demand_correlation=1.0, underloaded_hosts=0, pack_utilisation=0.85
    )
    assert [(s.vm_id, s.target_host_id) for s in Planner(loose).plan(inventory, forecast).migrations] == [
        ("x", "b")
    ]


def test_consolidation_never_fills_a_host_past_the_level_that_would_move_vms_off_it_again():
    inventory = Inventory(
        hosts={"a": host("a"), "b": host("b")},
        vms={"x": vm("x", "a", cpu=2400), "y": vm("y", "b", cpu=1400)},
    )
    forecast = cpu_forecast(inventory, {"x": 1.0, "y": 1.0})  # a at 60 %, b at 35 %: together 95 %
    # emptying b saves 10 x 86 W, far more than 500 x the 20 % over the pack level costs
    settings = PlannerSettings(
        manage_allocations=False,
        demand_correlation=1.0,
        weight_energy=10.0,
        underload_threshold=0.5,
    )
    assert Planner(settings).plan(inventory, forecast).migrations == []
    roomy = PlannerSettings(
        manage_allocations=False,
        demand_correlation=1.0,
        weight_energy=10.0,
        underload_threshold=0.5,
        target_utilisation=1.0,
    )
    assert [(s.vm_id, s.target_host_id) for s in Planner(roomy).plan(inventory, forecast).migrations] == [
        ("y", "a")
    ]


def _interference_cloud() -> tuple[Inventory, VmInterference]:
    """A cache-sensitive VM among six busy neighbours on ``a``; two quiet VMs on ``b``."""
    vms = {"s": vm("s", "a", memory=512)}
    vms.update({f"busy{i}": vm(f"busy{i}", "a", memory=512) for i in range(6)})
    vms.update({f"quiet{i}": vm(f"quiet{i}", "b", memory=512) for i in range(2)})
    inventory = Inventory(hosts={"a": host("a", cpu=8000), "b": host("b", cpu=8000)}, vms=vms)
    sensitivity = np.array([0.5 if v == "s" else 0.01 for v in vms])
    activity = np.array([0.8 if v.startswith("busy") else 0.05 for v in vms])
    return inventory, VmInterference(sensitivity, activity, half_load=3.5)


@pytest.mark.parametrize("weight", [20.0, 0.0])
def test_a_vm_slowed_by_its_busy_neighbours_moves_to_a_quiet_host(weight):
    inventory, interference = _interference_cloud()
    settings = PlannerSettings(underloaded_hosts=0, weight_interference=weight)
    plan = Planner(settings).plan(
        inventory, cpu_forecast(inventory, {}), strategy="test", interference=interference
    )
    if weight:
        assert [(s.vm_id, s.target_host_id) for s in plan.migrations] == [("s", "b")]
        assert "predicted slowdown 29% from the activity of its neighbours on a" in plan.migrations[0].reason
        assert plan.migrations[0].expected_benefit > 0
    else:
        assert plan.migrations == []


@pytest.mark.parametrize("offer_neighbours", [True, False])
def test_a_slowed_vm_that_may_not_move_is_relieved_by_moving_its_hardest_pressing_neighbour(offer_neighbours):
    """``s`` is held on ``a`` by a hard affinity rule with ``busy5``; ``busy0`` presses hard
    enough to slow it past the limit, the other neighbours together do not."""
    inventory, interference = _interference_cloud()
    inventory.rules.append(AffinityRule("together", RuleKind.AFFINITY, frozenset({"s", "busy5"})))
    names = list(inventory.vms)
    interference.sensitivity[names.index("s")] = 0.3
    interference.activity[[names.index(f"busy{i}") for i in range(6)]] = [3.0, 0.1, 0.1, 0.1, 0.1, 0.1]
    settings = PlannerSettings(underloaded_hosts=0, interference_offer_neighbours=offer_neighbours)
    plan = Planner(settings).plan(
        inventory, cpu_forecast(inventory, {}), strategy="test", interference=interference
    )
    if offer_neighbours:
        assert [(s.vm_id, s.target_host_id) for s in plan.migrations] == [("busy0", "b")]
        assert plan.migrations[0].reason.startswith("presses hardest on s (predicted slowdown")
    else:
        assert plan.migrations == []


def test_a_busy_vm_is_not_sent_among_sensitive_ones():
    """Joining a host is charged for the slowdown it adds to the sensitive VMs staying there."""
    inventory, interference = _interference_cloud()
    problem = build_problem(inventory, PlannerSettings(), interference=interference)
    staying = np.isin(problem.vm_ids, ["s", "busy0"])
    exposure = HostExposure(interference, problem.host_of, staying, 2, 0.1)
    busy, quiet = problem.vm_index["busy1"], problem.vm_index["quiet0"]
    to_a = problem.host_index["a"]
    assert exposure.option_cost(busy, to_a) > exposure.option_cost(quiet, to_a) + 0.3


def test_the_chance_of_a_conflict_rises_through_the_slowdown_limit():
    chance = conflict_chance(np.array([0.05, 0.1, 0.2]), 0.1)
    assert chance.tolist() == pytest.approx([0.076, 0.5, 0.993], abs=0.01)


def _two_sensitive_busy_vms_cloud() -> tuple[Inventory, VmInterference]:
    """``s1`` and ``s2`` are sensitive and busy among six busy VMs on ``a``; ``b`` holds a very
    quiet VM, ``c`` a slightly busier one. Alone, each of ``s1`` and ``s2`` would pick ``b``."""
    vms = {name: vm(name, "a", memory=512) for name in ("s1", "s2")}
    vms.update({f"busy{i}": vm(f"busy{i}", "a", memory=512) for i in range(6)})
    vms["quiet_b"] = vm("quiet_b", "b", memory=512)
    vms["quiet_c"] = vm("quiet_c", "c", memory=512)
    hosts = {name: host(name, cpu=8000) for name in ("a", "b", "c")}
    inventory = Inventory(hosts=hosts, vms=vms)
    sensitivity = np.array([0.5 if v.startswith("s") else 0.01 for v in vms])
    activity = np.array([2.0 if v.startswith("s") else 0.8 if v.startswith("busy") else 0.05 for v in vms])
    activity[list(vms).index("quiet_c")] = 0.3
    return inventory, VmInterference(sensitivity, activity, half_load=3.5)


def test_two_candidates_that_would_slow_each_other_are_not_sent_to_the_same_quiet_host():
    inventory, interference = _two_sensitive_busy_vms_cloud()
    settings = PlannerSettings(underloaded_hosts=0)
    problem = build_problem(inventory, settings, cpu_forecast(inventory, {}), interference=interference)
    cm = build_candidate_model(problem)
    s1, s2 = cm.candidates.index(problem.vm_index["s1"]), cm.candidates.index(problem.vm_index["s2"])
    on_b = {(a, b) for a, b, h, _ in cm.host_pairs if cm.hosts[h] == problem.host_index["b"]}
    assert (min(s1, s2), max(s1, s2)) in on_b
    for assignment in (greedy_solve(cm), solve_cpsat(cm).assignment):
        ends = sorted(problem.host_ids[cm.hosts[cm.opt_host[assignment.choice[p]]]] for p in (s1, s2))
        assert ends == ["b", "c"]


def test_what_two_candidates_cost_each_other_on_a_host_is_the_rise_in_their_conflict_chances():
    inventory, interference = _two_sensitive_busy_vms_cloud()
    settings = PlannerSettings(underloaded_hosts=0)
    problem = build_problem(inventory, settings, cpu_forecast(inventory, {}), interference=interference)
    cm = build_candidate_model(problem)
    b = problem.host_index["b"]
    (cost,) = [c for _, _, h, c in cm.host_pairs if cm.hosts[h] == b]
    quiet = interference.activity[problem.vm_index["quiet_b"]]
    alone = conflict_chance(interference.slowdown(np.array([0]), np.array([quiet])), 0.1)[0]
    joined = conflict_chance(interference.slowdown(np.array([0]), np.array([quiet + 2.0])), 0.1)[0]
    assert cost == pytest.approx(settings.weight_interference * 2 * (joined - alone))
