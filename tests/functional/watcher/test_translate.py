"""The Watcher <-> cotenancy translation rules that need no Watcher: units, time grid, flavor
choice and conflict counting. (They run in the project venv; the Watcher side is in
test_watcher_plugin.py.)"""

from __future__ import annotations

import datetime as dt
import logging
import math

import numpy as np
import pytest

from cotenancy.model import VM, ActionKind, ActionPlan, Host, Inventory, Resources, VMState
from cotenancy.plugins.watcher import translate

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z, a multiple of 300


def _inventory() -> Inventory:
    inventory = Inventory()
    for name in ("a", "b"):
        inventory.hosts[name] = Host(id=name, name=f"host-{name}", capacity=Resources(cpu=4000, memory=4096))
    inventory.vms["v1"] = VM(id="v1", name="v1", host_id="a", size=Resources(cpu=2000, memory=1024), vcpus=1)
    inventory.vms["v2"] = VM(id="v2", name="v2", host_id="a", size=Resources(cpu=4000, memory=1024), vcpus=2)
    inventory.vms["v3"] = VM(
        id="v3",
        name="v3",
        host_id="b",
        size=Resources(cpu=2000, memory=1024),
        vcpus=1,
        attributes={"disk_gb": "20"},
    )
    return inventory


def test_instance_cpu_percent_becomes_mhz_of_the_instance_size():
    vm = _inventory().vms["v2"]

    assert translate.watcher_value_to_cotenancy("instance_cpu_usage", 50.0, vm) == 2000.0
    assert translate.watcher_value_to_cotenancy("instance_ram_usage", 700.0, vm) == 700.0


def test_series_land_on_a_grid_of_the_steps_before_now_labelled_by_step_start_with_gaps_kept_as_nan():
    # Gnocchi stamps an aggregate with the start of its step: the newest full step is NOW - 300.
    inventory = _inventory()
    stamp = dt.datetime.fromtimestamp(NOW - 300, tz=dt.UTC)
    series = {
        "v1": {
            "instance_cpu_usage": {
                (stamp - dt.timedelta(seconds=600)).isoformat(): 10.0,  # ISO string, as Gnocchi returns
                stamp - dt.timedelta(seconds=300): 50.0,  # datetime
                NOW - 300: 100.0,  # POSIX seconds
                NOW: 75.0,  # the step that starts now has not happened yet: ignored
            }
        },
        "v2": {"instance_cpu_usage": None},
    }

    window = translate.telemetry_from_series(inventory, series, NOW, 300, 4)

    assert window.vm_ids == ["v1", "v2", "v3"]
    assert window.timestamps.tolist() == [NOW - 1200, NOW - 900, NOW - 600, NOW - 300]
    cpu = window.values["cpu"]
    assert math.isnan(cpu[0, 0])
    assert cpu[0, 1:].tolist() == [200.0, 1000.0, 2000.0]
    assert np.isnan(cpu[1]).all() and np.isnan(window.values["memory"]).all()


def test_samples_in_one_step_are_averaged():
    series = {"v1": {"instance_cpu_usage": {NOW - 100: 20.0, NOW - 200: 40.0, NOW - 301: 90.0}}}

    window = translate.telemetry_from_series(_inventory(), series, NOW, 300, 1)

    assert window.timestamps.tolist() == [NOW - 300]
    assert window.values["cpu"][0, 0] == pytest.approx(600.0)


def test_samples_that_cannot_be_a_usage_are_left_out_and_a_step_of_only_such_samples_stays_a_gap():
    # Gnocchi's rate:mean of a cumulative counter goes negative when an instance reboots and the
    # counter resets: that is no usage, and must not pull the VM's demand below zero.
    series = {
        "v1": {
            "instance_cpu_usage": {
                NOW - 1200: 25.0,
                NOW - 900: math.inf,
                NOW - 600: -900.0,
                NOW - 300: 50.0,
                NOW - 200: -900.0,
            }
        },
        "v2": {"instance_ram_usage": {NOW - 300: -5.0}},
    }

    window = translate.telemetry_from_series(_inventory(), series, NOW, 300, 4)

    cpu = window.values["cpu"]
    assert cpu[0, 0] == 500.0 and cpu[0, 3] == 1000.0
    assert np.isnan(cpu[0, 1:3]).all()
    assert np.isnan(window.values["memory"][1]).all()


def test_dropped_samples_are_counted_by_reason_and_warned_of_but_gaps_are_not(caplog):
    broken = {"v1": {"instance_cpu_usage": {NOW - 300: -900.0, NOW - 200: -1.0, NOW - 100: math.inf}}}
    gaps = {"v1": {"instance_cpu_usage": {NOW - 300: None, NOW - 200: math.nan}}}

    with caplog.at_level(logging.DEBUG, logger=translate.__name__):
        translate.telemetry_from_series(_inventory(), broken, NOW, 300, 1)
        translate.telemetry_from_series(_inventory(), gaps, NOW, 300, 1)

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["dropped 3 datasource samples that cannot be a usage: 1 infinite, 2 negative"]


def test_resize_picks_the_smallest_flavor_that_holds_the_size_without_shrinking_the_disk():
    flavors = [
        translate.Flavor("tiny", 1, 512, 1),
        translate.Flavor("small", 2, 2048, 10),
        translate.Flavor("medium", 2, 2048, 40),
        translate.Flavor("large", 4, 8192, 80),
    ]
    vm = _inventory().vms["v3"]  # 20 GB disk

    chosen = translate.smallest_flavor(Resources(cpu=3000, memory=1500), vm, flavors, 2000.0)

    assert chosen is not None and chosen.name == "medium"
    assert translate.smallest_flavor(Resources(cpu=9000, memory=1), vm, flavors, 2000.0) is None


def test_unmovable_vms_are_never_migrated():
    inventory = _inventory()
    inventory.vms["v1"].attributes["movable"] = "false"
    plan = ActionPlan(strategy="test")
    plan.add(ActionKind.LIVE_MIGRATE, vm_id="v1", source_host_id="a", target_host_id="b")
    plan.add(ActionKind.LIVE_MIGRATE, vm_id="v2", source_host_id="a", target_host_id="b")

    result = translate.actions_from_plan(plan, inventory)

    assert [a.resource_id for a in result.actions] == ["v2"]
    assert result.actions[0].input_parameters["destination_node"] == "host-b"
    assert "excluded" in result.dropped[0]


def test_a_host_is_in_conflict_when_its_vms_demand_more_than_it_has():
    inventory = _inventory()
    demand = {"v1": Resources(cpu=1500, memory=100), "v2": Resources(cpu=3000, memory=100)}
    placement = inventory.placement()

    assert translate.host_conflicts(inventory, demand, placement) == {"a"}
    assert translate.host_conflicts(inventory, demand, {**placement, "v2": "b"}) == set()


def test_a_vm_in_flight_weighs_on_the_host_it_is_landing_on_in_the_conflict_count():
    inventory = _inventory()
    inventory.vms["v3"].state, inventory.vms["v3"].migration_target = VMState.MIGRATING, "a"
    demand = {"v1": Resources(cpu=1500, memory=100), "v3": Resources(cpu=3000, memory=100)}

    assert translate.host_conflicts(inventory, demand, inventory.placement()) == {"a"}


def test_nova_migration_records_mark_the_vms_they_move_as_in_flight():
    inventory = _inventory()
    records = [
        {"instance_uuid": "v1", "status": "running", "dest_compute": "host-b"},
        {"instance_uuid": "v2", "status": "completed", "dest_compute": "host-b"},
        {"instance_uuid": "v3", "status": "preparing", "dest_compute": "host-elsewhere"},
        {"instance_uuid": "gone", "status": "running", "dest_compute": "host-a"},
    ]

    translate.apply_migrations_in_flight(inventory, records)

    vms = inventory.vms
    assert (vms["v1"].state, vms["v1"].migration_target) == (VMState.MIGRATING, "b")
    assert (vms["v2"].state, vms["v2"].migration_target) == (VMState.ACTIVE, None)
    # a target outside the audit's scope: moving, to a host the planner does not know
    assert (vms["v3"].state, vms["v3"].migration_target) == (VMState.MIGRATING, None)


def test_peak_demand_uses_a_high_quantile_and_treats_unknown_as_full_size():
    inventory = _inventory()
    series = {"v1": {"instance_cpu_usage": {NOW - 300 * k: float(10 * k) for k in range(1, 11)}}}
    window = translate.telemetry_from_series(inventory, series, NOW, 300, 10)

    demand = translate.peak_demand(inventory, window)

    assert demand["v1"].cpu == pytest.approx(np.quantile([200.0 * k for k in range(1, 11)], 0.95))
    assert demand["v2"] == Resources(cpu=4000, memory=1024)


def test_risky_hosts_are_those_holding_a_pair_above_the_threshold():
    inventory = _inventory()

    def score(pairs: np.ndarray, hosts: np.ndarray | None) -> np.ndarray:
        # v1 (index 0) and v2 (index 1) are risky together anywhere
        return np.array([0.9 if set(p) == {0, 1} else 0.1 for p in pairs.tolist()])

    assert translate.risky_hosts(inventory, inventory.placement(), score, 0.5) == {"a"}
    apart = {**inventory.placement(), "v2": "b"}
    assert translate.risky_hosts(inventory, apart, score, 0.5) == set()


def test_risky_hosts_can_be_limited_to_pairs_a_plan_forms():
    inventory = _inventory()

    def score(pairs: np.ndarray, hosts: np.ndarray | None) -> np.ndarray:
        return np.full(len(pairs), 0.9)

    everything_on_b = {"v1": "b", "v2": "a", "v3": "b"}

    assert translate.risky_hosts(inventory, everything_on_b, score, 0.5, involving={"v1"}) == {"b"}
    assert translate.risky_hosts(inventory, everything_on_b, score, 0.5, involving={"v2"}) == set()
