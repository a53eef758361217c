"""A live migration in flight shows in the inventory: the VM is migrating, stays on its source
and names its destination, whoever started the move; a move of the driver's own that outlived
its timeout is told once it ends."""

from __future__ import annotations

import logging
import time

import pytest

from cotenancy.exceptions import TimedOut
from cotenancy.model import VMState


def vm_named(site, name):
    return next(vm for vm in site.vms.values() if vm.name == name)


def wait_until(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the harness did not get there in time"
        time.sleep(0.05)


def test_a_vm_someone_else_is_live_migrating_is_migrating_towards_its_destination(make_driver, site):
    web = vm_named(site, "web01")
    job = site.begin_migration(web.id, "HV02", percent=45)
    driver = make_driver()

    inventory = driver.get_inventory()

    vm = inventory.vms[web.id]
    assert (vm.state, vm.host_id, vm.migration_target) == (VMState.MIGRATING, "HV01", "HV02")
    assert "45%" in vm.attributes["migration"]
    assert web.id in [v.id for v in inventory.running_on()["HV02"]]

    site.end_migration(job, "HV02")
    vm = driver.get_inventory().vms[web.id]
    assert (vm.state, vm.host_id, vm.migration_target) == (VMState.ACTIVE, "HV02", None)
    assert "migration" not in vm.attributes


def test_a_destination_named_by_its_fqdn_is_the_inventory_host(make_driver, site):
    web = vm_named(site, "web01")
    site.begin_migration(web.id, "HV02", destination="hv02.corp.example.com")

    vm = make_driver().get_inventory().vms[web.id]

    assert (vm.state, vm.migration_target) == (VMState.MIGRATING, "HV02")


def test_a_vm_moving_to_a_host_outside_the_inventory_is_migrating_without_a_target(make_driver, site):
    web = vm_named(site, "web01")
    site.begin_migration(web.id, "HV02", destination="hv77.corp.example.com")

    vm = make_driver().get_inventory().vms[web.id]

    assert (vm.state, vm.host_id, vm.migration_target) == (VMState.MIGRATING, "HV01", None)
    assert "hv77.corp.example.com" in vm.attributes["migration"]


def test_a_migration_that_failed_leaves_the_vm_settled_where_it_was(make_driver, site):
    web = vm_named(site, "web01")
    site.end_migration(site.begin_migration(web.id, "HV02"), None)

    vm = make_driver().get_inventory().vms[web.id]

    assert (vm.state, vm.host_id, vm.migration_target) == (VMState.ACTIVE, "HV01", None)


def test_a_failover_cluster_live_migration_shows_on_the_cluster_inventory(make_driver, site):
    for host in site.hosts.values():
        host.cluster = "HVCLU"
    db = vm_named(site, "db01")
    db.clustered = True
    site.begin_migration(db.id, "HV02")

    vm = make_driver(hosts=[], cluster="HVCLU").get_inventory().vms[db.id]

    assert (vm.state, vm.host_id, vm.migration_target) == (VMState.MIGRATING, "HV01", "HV02")


def test_a_stopped_vm_being_moved_stays_stopped(make_driver, site):
    web = vm_named(site, "web01")
    web.state = "Off"
    site.begin_migration(web.id, "HV02")

    vm = make_driver().get_inventory().vms[web.id]

    assert (vm.state, vm.migration_target) == (VMState.STOPPED, None)


@pytest.fixture
def timed_out_move(make_driver, site):
    """The driver's own Move-VM, still running in Hyper-V after the driver stopped waiting."""
    site.migration_seconds = 2.5
    web = vm_named(site, "web01")
    driver = make_driver(operation_timeout=1)
    with pytest.raises(TimedOut):
        driver.live_migrate(web.id, "HV02", timeout=1.0)
    return driver, web


def test_a_move_that_outlived_the_timeout_keeps_the_vm_migrating_and_its_success_is_logged_once(
    timed_out_move, site, caplog
):
    driver, web = timed_out_move
    caplog.set_level(logging.INFO, logger="cotenancy.drivers.hyperv.driver")

    vm = driver.get_inventory().vms[web.id]
    assert (vm.state, vm.host_id, vm.migration_target) == (VMState.MIGRATING, "HV01", "HV02")

    wait_until(lambda: not any(job.running for job in site.migration_jobs))
    vm = driver.get_inventory().vms[web.id]
    driver.get_inventory()

    assert (vm.state, vm.host_id, vm.migration_target) == (VMState.ACTIVE, "HV02", None)
    told = [r for r in caplog.records if "timed out earlier" in r.getMessage()]
    assert [r.levelno for r in told] == [logging.INFO]
    assert web.id in told[0].getMessage() and "HV02" in told[0].getMessage()
    events = driver.get_events(0, float("inf"))
    assert [(e.kind, e.vm_ids, e.host_id) for e in events] == [("migration", (web.id,), "HV02")]


def test_a_move_that_outlived_the_timeout_and_failed_is_logged_as_a_warning(timed_out_move, site, caplog):
    driver, web = timed_out_move
    site.host("HV02").node_state = "Paused"

    wait_until(lambda: not any(job.running for job in site.migration_jobs))
    with caplog.at_level(logging.INFO, logger="cotenancy.drivers.hyperv.driver"):
        vm = driver.get_inventory().vms[web.id]
        driver.get_inventory()

    assert (vm.state, vm.host_id) == (VMState.ACTIVE, "HV01")
    told = [r for r in caplog.records if "timed out earlier" in r.getMessage()]
    assert [r.levelno for r in told] == [logging.WARNING]
    assert "HV01" in told[0].getMessage()
    assert driver.get_events(0, float("inf")) == []


def test_a_timed_out_move_whose_job_names_the_target_by_address_goes_to_the_host_it_was_sent_to(
    make_driver, site
):
    for host in site.hosts.values():
        host.cluster = "HVCLU"
    db = vm_named(site, "db01")
    db.clustered = True
    site.job_destinations["HV02"] = "192.0.2.12"
    site.migration_seconds = 2.5
    driver = make_driver(hosts=[], cluster="HVCLU", operation_timeout=1)
    with pytest.raises(TimedOut):
        driver.live_migrate(db.id, "HV02", timeout=1.0)

    vm = driver.get_inventory().vms[db.id]

    assert (vm.state, vm.host_id, vm.migration_target) == (VMState.MIGRATING, "HV01", "HV02")
    assert "192.0.2.12" in vm.attributes["migration"]
