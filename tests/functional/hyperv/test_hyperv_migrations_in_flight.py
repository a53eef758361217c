"""A live migration in flight shows in the inventory: the VM is migrating, stays on its source
and names its destination, whoever started the move."""

from __future__ import annotations

from cotenancy.model import VMState


def vm_named(site, name):
    return next(vm for vm in site.vms.values() if vm.name == name)


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
