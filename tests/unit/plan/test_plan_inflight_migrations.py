"""A VM a live migration is taking to another host holds room on its source and on its target
until it lands, and is never moved again meanwhile."""

from __future__ import annotations

import numpy as np
from plan_builders import final_hosts, host, vm

from cotenancy.model import AffinityRule, Inventory, Resource, RuleKind, VMState
from cotenancy.plan.interference import VmInterference
from cotenancy.plan.planner import Planner
from cotenancy.plan.problem import DemandForecast, PlannerSettings, build_problem


def cpu_forecast(inventory: Inventory, share: dict[str, float]) -> DemandForecast:
    cpu = np.array([share.get(v.id, 0.1) * v.size.cpu for v in inventory.vms.values()])
    return DemandForecast({Resource.CPU: cpu}, {Resource.CPU: cpu}, "forecast p95")


def draining_cloud(**arriving) -> Inventory:
    """VM x must leave host a (maintenance). Host c is on (it runs y) and has memory for x unless
    the in-flight m lands there too; host d is empty (switching it on costs idle power)."""
    return Inventory(
        hosts={
            "a": host("a", maintenance=True),
            "b": host("b"),
            "c": host("c"),
            "d": host("d"),
        },
        vms={
            "x": vm("x", "a", memory=2048),
            "m": vm("m", "b", memory=2560, state=VMState.MIGRATING, **arriving),
            "y": vm("y", "c", memory=512),
        },
    )


def test_no_vm_is_planned_into_the_memory_a_migrating_vm_is_about_to_fill():
    settings = PlannerSettings(manage_allocations=False, underloaded_hosts=0)
    # without a migration in flight, the host that is already on takes x
    quiet = draining_cloud()
    assert final_hosts(quiet, Planner(settings).plan(quiet, cpu_forecast(quiet, {})))["x"] == "c"
    inventory = draining_cloud(migration_target="c")
    plan = Planner(settings).plan(inventory, cpu_forecast(inventory, {}), migrating={"m"})
    # c holds 512 + 2560 arriving of 4096 MiB: x (2048) goes to the empty host instead
    assert [(s.vm_id, s.target_host_id) for s in plan.migrations] == [("x", "d")]


def test_a_migrating_vm_holds_its_room_on_the_source_and_the_target_until_it_lands():
    inventory = draining_cloud(migration_target="d")
    inventory.vms["x"].size = inventory.vms["x"].size.replace(memory=2560)
    inventory.hosts["c"].maintenance = True
    inventory.vms["y"].host_id = "d"
    settings = PlannerSettings(manage_allocations=False, underloaded_hosts=0)
    plan = Planner(settings).plan(inventory, cpu_forecast(inventory, {}), migrating={"m"})
    # b still holds m (2560 of 4096 MiB) and d will (512 + 2560): neither has room for x's 2560
    assert plan.migrations == []


def test_the_predicted_demand_of_a_migrating_vm_counts_on_its_target():
    inventory = Inventory(
        hosts={"a": host("a", cpu=4000), "b": host("b", cpu=4000), "c": host("c", cpu=4000)},
        vms={
            "hot": vm("hot", "a", cpu=2000, memory=256),
            "busy": vm("busy", "a", cpu=2000, memory=256),
            "m": vm("m", "b", cpu=2500, memory=256, state=VMState.MIGRATING, migration_target="c"),
        },
    )
    forecast = cpu_forecast(inventory, {"hot": 0.9, "busy": 0.9, "m": 0.9})
    settings = PlannerSettings(manage_allocations=False, underloaded_hosts=0, demand_correlation=1.0)
    problem = build_problem(inventory, settings, forecast, migrating={"m"})
    demand = problem.host_demand()[:, 0]
    assert demand.tolist() == [3600.0, 2250.0, 2250.0]  # m on its source and on its target
    plan = Planner(settings).plan(inventory, forecast, migrating={"m"})
    # a is over its trigger (3600 > 85 % of 4000); c with m (2250) + 1800 would pass its pack
    # level, and b keeps m until it lands: nothing may go anywhere
    assert plan.migrations == []


def test_a_vm_is_not_sent_to_the_host_where_a_vm_it_may_not_meet_is_arriving():
    inventory = draining_cloud(migration_target="c")
    inventory.rules.append(AffinityRule("apart", RuleKind.ANTI_AFFINITY, frozenset({"x", "m"})))
    inventory.hosts["c"].capacity = inventory.hosts["c"].capacity.replace(memory=8192)
    settings = PlannerSettings(manage_allocations=False, underloaded_hosts=0)
    plan = Planner(settings).plan(inventory, cpu_forecast(inventory, {}), migrating={"m"})
    assert [(s.vm_id, s.target_host_id) for s in plan.migrations] == [("x", "d")]


def test_a_migrating_vm_is_never_a_candidate_nor_resized():
    inventory = draining_cloud(migration_target="c")
    inventory.hosts["b"].maintenance = True
    forecast = cpu_forecast(inventory, {"m": 1.0})
    plan = Planner(PlannerSettings(underloaded_hosts=0)).plan(inventory, forecast, migrating={"m"})
    assert all(s.vm_id != "m" for s in plan.actions)


def test_a_slowed_vm_is_not_sent_to_a_quiet_host_a_busy_vm_is_arriving_on():
    """``s`` is slowed by six busy neighbours on ``a``; ``b`` holds two quiet VMs, but ``m``, a
    hard cache presser, is on its way there; ``c`` is empty (switching it on costs idle power)."""
    vms = {"s": vm("s", "a", memory=512)}
    vms.update({f"busy{i}": vm(f"busy{i}", "a", memory=512) for i in range(6)})
    vms["m"] = vm("m", "a", memory=512, state=VMState.MIGRATING, migration_target="b")
    vms.update({f"quiet{i}": vm(f"quiet{i}", "b", memory=512) for i in range(2)})
    hosts = {h: host(h, cpu=8000) for h in ("a", "b", "c")}
    inventory = Inventory(hosts=hosts, vms=vms)
    sensitivity = np.array([0.5 if v == "s" else 0.01 for v in vms])
    activity = np.array([3.0 if v == "m" else 0.8 if v.startswith("busy") else 0.05 for v in vms])
    interference = VmInterference(sensitivity, activity, half_load=3.5)
    # a second lane on a: m leaving takes the first
    settings = PlannerSettings(
        underloaded_hosts=0, weight_interference=100.0, max_parallel_migrations_per_host=2
    )
    plan = Planner(settings).plan(
        inventory, cpu_forecast(inventory, {}), migrating={"m"}, interference=interference
    )
    assert [(s.vm_id, s.target_host_id) for s in plan.migrations] == [("s", "c")]


def roomy_draining_cloud() -> Inventory:
    """``draining_cloud`` with memory on c for x beside m arriving: only the lanes keep x off c."""
    inventory = draining_cloud(migration_target="c")
    inventory.hosts["c"].capacity = inventory.hosts["c"].capacity.replace(memory=8192)
    return inventory


def test_no_migration_starts_on_a_host_a_migration_in_flight_is_arriving_on():
    settings = PlannerSettings(manage_allocations=False, underloaded_hosts=0)
    quiet = draining_cloud()
    quiet.hosts["c"].capacity = quiet.hosts["c"].capacity.replace(memory=8192)
    assert final_hosts(quiet, Planner(settings).plan(quiet, cpu_forecast(quiet, {})))["x"] == "c"
    inventory = roomy_draining_cloud()
    plan = Planner(settings).plan(inventory, cpu_forecast(inventory, {}), migrating={"m"})
    # c's one lane (max_parallel_migrations_per_host = 1) is m's until it lands
    assert [(s.vm_id, s.target_host_id) for s in plan.migrations] == [("x", "d")]


def test_a_move_that_waits_for_its_window_holds_room_but_no_lane():
    """A relocation written as a vCenter scheduled task for the night moves nothing until then: a
    drain may use its hosts' lanes meanwhile, but not the room it will take on arrival."""
    settings = PlannerSettings(manage_allocations=False, underloaded_hosts=0)
    inventory = roomy_draining_cloud()
    inventory.vms["m"].migration_waits = True
    plan = Planner(settings).plan(inventory, cpu_forecast(inventory, {}), migrating={"m"})
    assert [(s.vm_id, s.target_host_id) for s in plan.migrations] == [("x", "c")]
    cramped = draining_cloud(migration_target="c", migration_waits=True)
    plan = Planner(settings).plan(cramped, cpu_forecast(cramped, {}), migrating={"m"})
    assert [(s.vm_id, s.target_host_id) for s in plan.migrations] == [("x", "d")]


def test_a_host_with_a_lane_left_beside_a_migration_in_flight_takes_a_new_one():
    settings = PlannerSettings(
        manage_allocations=False, underloaded_hosts=0, max_parallel_migrations_per_host=2
    )
    inventory = roomy_draining_cloud()
    plan = Planner(settings).plan(inventory, cpu_forecast(inventory, {}), migrating={"m"})
    assert [(s.vm_id, s.target_host_id) for s in plan.migrations] == [("x", "c")]


def test_no_vm_leaves_a_host_a_migration_in_flight_is_leaving():
    inventory = roomy_draining_cloud()
    inventory.vms["m"].host_id = "a"  # m leaves the host in maintenance too, for c
    settings = PlannerSettings(manage_allocations=False, underloaded_hosts=0)
    plan = Planner(settings).plan(inventory, cpu_forecast(inventory, {}), migrating={"m"})
    assert plan.migrations == []
    assert "unsatisfied" not in plan.stats  # the drain is under way: m is leaving


def test_migrations_in_flight_fill_the_cloud_wide_lanes():
    """m (b -> c) takes the only cloud-wide lane: x may not leave a for d, which is idle."""
    settings = PlannerSettings(manage_allocations=False, underloaded_hosts=0, max_parallel_migrations=1)
    inventory = roomy_draining_cloud()
    plan = Planner(settings).plan(inventory, cpu_forecast(inventory, {}), migrating={"m"})
    assert plan.migrations == []
    assert plan.stats["unsatisfied"] == (
        "drain of a: 1 VMs cannot leave (the migration lanes are all taken by moves in flight)"
    )


def test_a_plan_runs_its_migrations_in_the_cloud_wide_lanes_left_by_those_in_flight():
    """Two lanes in the cloud, one taken by m: the two VMs leaving a go one after the other."""
    settings = PlannerSettings(
        manage_allocations=False,
        underloaded_hosts=0,
        max_parallel_migrations=2,
        max_parallel_migrations_per_host=3,
    )
    inventory = roomy_draining_cloud()
    inventory.vms["x2"] = vm("x2", "a", memory=512)
    plan = Planner(settings).plan(inventory, cpu_forecast(inventory, {}), migrating={"m"})
    first, second = plan.migrations
    assert first.index in second.depends_on


def test_a_migrating_vm_whose_target_is_unknown_takes_its_source_lane():
    inventory = roomy_draining_cloud()
    inventory.vms["m"].host_id = "a"
    inventory.vms["m"].migration_target = None  # a vMotion DRS started: vCenter names no target
    settings = PlannerSettings(manage_allocations=False, underloaded_hosts=0)
    plan = Planner(settings).plan(inventory, cpu_forecast(inventory, {}), migrating={"m"})
    assert plan.migrations == []
