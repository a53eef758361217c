"""Live migration, resize, allocation and maintenance change the Hyper-V site's state."""

from __future__ import annotations

import math

import pytest

from cotenancy.exceptions import Unsupported
from cotenancy.model import Allocation, Resources

MIB = 1024 * 1024


def vm_named(site, name):
    return next(vm for vm in site.vms.values() if vm.name == name)


def test_live_migration_with_move_vm_changes_what_get_vm_returns(make_driver, site):
    driver = make_driver()
    web = vm_named(site, "web01")

    driver.live_migrate(web.id, "HV02")

    assert web.host == "HV02"
    assert "Move-VM" in site.calls
    assert "Move-ClusterVirtualMachineRole" not in site.calls
    assert driver.get_inventory().vms[web.id].host_id == "HV02"
    events = driver.get_events(0, float("inf"))
    assert [(e.kind, e.vm_ids, e.host_id) for e in events] == [("migration", (web.id,), "HV02")]


def test_clustered_vm_moves_as_a_cluster_role(make_driver, site):
    for host in site.hosts.values():
        host.cluster = "HVCLU"
    db = vm_named(site, "db01")
    db.clustered = True
    driver = make_driver(hosts=[], cluster="HVCLU")

    driver.live_migrate(db.id, "HV02")

    assert db.host == "HV02"
    assert "Move-ClusterVirtualMachineRole" in site.calls
    assert "Move-VM" not in site.calls


def test_resize_static_memory_of_a_running_vm(make_driver, site):
    driver = make_driver()
    web = vm_named(site, "web01")

    driver.resize(web.id, Resources(cpu=2 * 2500, memory=6000))

    assert web.startup_bytes == 6000 * MIB
    assert web.processor_count == 2
    assert driver.get_inventory().vms[web.id].size.memory == 6000


def test_resize_rounds_memory_up_to_whole_2_mb_blocks(make_driver, site):
    web = vm_named(site, "web01")
    make_driver().resize(web.id, Resources(cpu=0, memory=5001))
    assert web.startup_bytes == 5002 * MIB


def test_resize_dynamic_memory_changes_the_maximum(make_driver, site):
    db = vm_named(site, "db01")
    make_driver().resize(db.id, Resources(cpu=4 * 2500, memory=12288))
    assert db.maximum_bytes == 12288 * MIB
    assert db.startup_bytes == 8192 * MIB
    assert db.minimum_bytes == 2048 * MIB


def test_processor_count_of_a_running_vm_is_unsupported_and_nothing_changes(make_driver, site):
    web = vm_named(site, "web01")
    with pytest.raises(Unsupported, match="ProcessorCountWhileRunning"):
        make_driver().resize(web.id, Resources(cpu=4 * 2500, memory=8192))
    assert (web.processor_count, web.startup_bytes, web.state) == (2, 4096 * MIB, "Running")


def test_processor_count_changes_with_a_restart_when_allowed(make_driver, site):
    web = vm_named(site, "web01")
    make_driver(restart_for_processor_change=True).resize(web.id, Resources(cpu=3 * 2500 - 1, memory=4096))
    assert web.processor_count == 3
    assert web.state == "Running"
    assert site.calls.count("Stop-VM") == 1 and site.calls.count("Start-VM") == 1


def test_set_allocation_maps_onto_reserve_maximum_and_relative_weight(make_driver, site):
    driver = make_driver()
    db = vm_named(site, "db01")

    driver.set_allocation(
        db.id,
        Allocation(reservation=Resources(cpu=2500, memory=4096), limit=Resources(cpu=7500), shares=2000),
    )

    assert (db.reserve, db.maximum, db.relative_weight) == (25, 75, 200)
    assert db.minimum_bytes == 4096 * MIB
    assert db.memory_priority == 100
    seen = driver.get_inventory().vms[db.id].allocation
    assert seen.reservation.cpu == pytest.approx(2500)
    assert seen.limit is not None and seen.limit.cpu == pytest.approx(7500)
    assert seen.shares == 2000


def test_set_allocation_without_limit_removes_the_cap(make_driver, site):
    web = vm_named(site, "web01")
    web.maximum = 50
    make_driver().set_allocation(web.id, Allocation())
    assert (web.reserve, web.maximum, web.relative_weight) == (0, 100, 100)


def test_set_allocation_with_an_unlimited_cpu_and_capped_memory_removes_the_cpu_cap(make_driver, site):
    web = vm_named(site, "web01")
    web.maximum = 50
    make_driver().set_allocation(
        web.id, Allocation(reservation=Resources(cpu=1000), limit=Resources(cpu=math.inf, memory=4096))
    )
    assert web.maximum == 100


def test_standalone_maintenance_is_a_registry_marker_the_inventory_reads(make_driver, site):
    driver = make_driver()

    driver.set_host_maintenance("HV02", True)
    assert site.hosts["hv02"].registry["hklm:\\software\\cotenancy"]["Maintenance"] == 1
    assert driver.get_inventory().hosts["HV02"].maintenance

    driver.set_host_maintenance("HV02", False)
    assert not driver.get_inventory().hosts["HV02"].maintenance
    assert [vm.host for vm in site.vms.values()] == ["HV01", "HV01", "HV02"], "nothing moved"


def test_cluster_maintenance_suspends_and_resumes_the_node(make_driver, site):
    for host in site.hosts.values():
        host.cluster = "HVCLU"
    driver = make_driver(hosts=[], cluster="HVCLU")

    driver.set_host_maintenance("HV01", True)
    assert site.hosts["hv01"].node_state == "Paused"
    assert driver.get_inventory().hosts["HV01"].maintenance
    driver.set_host_maintenance("HV01", False)
    assert site.hosts["hv01"].node_state == "Up"
    assert not driver.get_inventory().hosts["HV01"].maintenance


def test_cluster_maintenance_with_drain_moves_clustered_vms_away(make_driver, site):
    for host in site.hosts.values():
        host.cluster = "HVCLU"
    for vm in site.vms.values():
        vm.clustered = True
    driver = make_driver(hosts=[], cluster="HVCLU", drain_on_maintenance=True)

    driver.set_host_maintenance("HV01", True)

    assert {vm.host for vm in site.vms.values()} == {"HV02"}
    assert all(vm.host_id == "HV02" for vm in driver.get_inventory().vms.values())
