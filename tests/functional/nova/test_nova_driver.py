"""The nova driver against a real Nova (API, conductor, scheduler, placement, fake computes)."""

from __future__ import annotations

import time

import pytest

from cotenancy.drivers.nova.driver import NovaDriver
from cotenancy.exceptions import ActionFailed, NotFound, TimedOut, Unsupported
from cotenancy.loading import DRIVERS, load_plugin
from cotenancy.model import EventKind, Metric, Resources, RuleKind, VMState


def _usable(inventory: dict, resource_class: str) -> float:
    inv = inventory[resource_class]
    return (inv["total"] - inv["reserved"]) * inv["allocation_ratio"]


def _migrations(admin, server_id: str) -> list:
    return list(admin.compute.migrations(server_id=server_id))


def test_the_entry_point_loads_the_nova_driver(nova_conf) -> None:
    driver = load_plugin(DRIVERS, "nova", nova_conf)
    try:
        assert isinstance(driver, NovaDriver)
        assert set(driver.get_inventory().hosts) >= {"host1", "host2", "host3"}
    finally:
        driver.close()


def test_inventory_takes_host_capacity_and_usage_from_placement(driver, admin, make_server):
    probe = make_server("usage-probe", "host1", flavor="m1.small")
    inventory = driver.get_inventory()
    mhz = driver.options.mhz_per_vcpu
    providers = {rp.name: rp.id for rp in admin.placement.resource_providers()}
    for name in ("host1", "host2", "host3"):
        base = f"/resource_providers/{providers[name]}"
        inv = admin.placement.get(f"{base}/inventories").json()["inventories"]
        usages = admin.placement.get(f"{base}/usages").json()["usages"]
        host = inventory.hosts[name]
        assert host.capacity.cpu == pytest.approx(_usable(inv, "VCPU") * mhz)
        assert host.capacity.memory == pytest.approx(_usable(inv, "MEMORY_MB"))
        assert host.maintenance is False
        assert host.attributes["resource_provider"] == providers[name]
        assert host.attributes["used_memory_mb"] == str(usages["MEMORY_MB"])
        assert host.attributes["used_vcpu"] == str(usages["VCPU"])
    # The probe's m1.small (1 vCPU, 2048 MiB) is part of host1's placement usage.
    assert int(inventory.hosts["host1"].attributes["used_memory_mb"]) >= 2048
    assert inventory.vms[probe.id].host_id == "host1"


def test_inventory_maps_servers_flavors_zones_and_server_groups(driver, admin, make_server):
    group = admin.compute.create_server_group(name="spread", policy="anti-affinity")
    rack = zone = None
    try:
        web1 = make_server(
            "web1",
            "host1",
            metadata={
                "cotenancy:app_type": "web",
                "cotenancy:priority": "8",
                "cotenancy:security_level": "public",
                "cotenancy:critical": "true",
            },
            scheduler_hints={"group": group.id},
        )
        web2 = make_server("web2", "host2", flavor="m1.medium", scheduler_hints={"group": group.id})
        rack = admin.compute.create_aggregate(name="rack-a")
        admin.compute.add_host_to_aggregate(rack, "host1")
        # Nova refuses to change the zone of a host with servers, so the zone goes to idle host3.
        zone = admin.compute.create_aggregate(name="zone-b", availability_zone="az-b")
        admin.compute.add_host_to_aggregate(zone, "host3")

        inventory = driver.get_inventory()
    finally:
        for aggregate, host in ((rack, "host1"), (zone, "host3")):
            if aggregate is not None:
                admin.compute.remove_host_from_aggregate(aggregate, host)
                admin.compute.delete_aggregate(aggregate)
        admin.compute.delete_server_group(group)

    mhz = driver.options.mhz_per_vcpu
    vm1, vm2 = inventory.vms[web1.id], inventory.vms[web2.id]
    assert (vm1.host_id, vm2.host_id) == ("host1", "host2")
    assert vm1.size == Resources(cpu=1 * mhz, memory=512)
    assert vm2.size == Resources(cpu=2 * mhz, memory=4096)
    assert (vm1.flavor, vm2.flavor, vm1.vcpus, vm2.vcpus) == ("m1.tiny", "m1.medium", 1, 2)
    assert vm1.state is VMState.ACTIVE
    assert vm1.tenant == web1.project_id
    assert (vm1.workload.app_type, vm1.workload.priority, vm1.workload.security_level) == ("web", 8, "public")
    assert vm1.critical is True and vm2.critical is False

    host1, host3 = inventory.hosts["host1"], inventory.hosts["host3"]
    assert (host1.cluster, host1.attributes["aggregates"]) == ("nova", "rack-a")
    assert (host3.cluster, host3.attributes["aggregates"]) == ("az-b", "zone-b")
    assert "aggregates" not in inventory.hosts["host2"].attributes

    spread = [r for r in inventory.rules if r.name == "server-group:spread"]
    assert len(spread) == 1
    assert spread[0].kind is RuleKind.ANTI_AFFINITY and spread[0].hard
    assert spread[0].vm_ids == {web1.id, web2.id}


def test_live_migration_moves_the_server_and_nova_shows_the_new_host(driver, admin, make_server):
    server = make_server("mover", "host1")
    start = time.time() - 1

    driver.live_migrate(server.id, "host2")

    assert admin.compute.get_server(server.id).compute_host == "host2"
    migration = _migrations(admin, server.id)[0]
    assert (migration.migration_type, migration.status) == ("live-migration", "completed")
    assert (migration.source_compute, migration.dest_compute) == ("host1", "host2")
    assert driver.get_inventory().vms[server.id].host_id == "host2"

    events = [e for e in driver.get_events(start, time.time() + 1) if server.id in e.vm_ids]
    assert [(e.kind, e.host_id, e.details["status"]) for e in events] == [
        (EventKind.MIGRATION, "host2", "completed")
    ]


def test_live_migration_to_the_current_host_does_nothing(driver, admin, make_server):
    server = make_server("stayer", "host3")
    driver.live_migrate(server.id, "host3")
    assert _migrations(admin, server.id) == []


def test_resize_chooses_the_smallest_flavor_that_fits_and_confirms(driver, admin, make_server):
    server = make_server("grower", "host1")
    mhz = driver.options.mhz_per_vcpu
    # 1.5 vCPUs and 3000 MiB: m1.small (1 vCPU, 2048) is too small, m1.medium (2, 4096) fits,
    # m1.large and m1.xlarge fit too but are bigger.
    driver.resize(server.id, Resources(cpu=1.5 * mhz, memory=3000))

    resized = admin.compute.get_server(server.id)
    assert resized.status == "ACTIVE"
    assert resized.flavor["original_name"] == "m1.medium"
    resize = [m for m in _migrations(admin, server.id) if m.migration_type == "resize"]
    assert [m.status for m in resize] == ["confirmed"]
    assert driver.get_inventory().vms[server.id].size == Resources(cpu=2 * mhz, memory=4096)


def test_a_stopped_server_is_resized_and_stays_stopped(driver, admin, make_server):
    server = make_server("sleeper", "host2")
    admin.compute.stop_server(server)
    admin.compute.wait_for_server(server, status="SHUTOFF", wait=30, interval=0.1)

    driver.resize(server.id, Resources(cpu=1.0, memory=1024))

    resized = admin.compute.get_server(server.id)
    assert (resized.status, resized.flavor["original_name"]) == ("SHUTOFF", "m1.small")


def test_a_size_no_flavor_holds_is_unsupported_and_changes_nothing(driver, admin, make_server):
    server = make_server("giant", "host3")
    with pytest.raises(Unsupported, match="no flavor holds"):
        driver.resize(server.id, Resources(cpu=64 * driver.options.mhz_per_vcpu, memory=512))
    assert admin.compute.get_server(server.id).flavor["original_name"] == "m1.tiny"
    assert _migrations(admin, server.id) == []


def test_a_live_migration_nova_fails_raises_action_failed(driver, admin, make_server, nova):
    server = make_server("unlucky", "host1")
    nova.fail_next_live_migrations(1)

    with pytest.raises(ActionFailed, match="live migration"):
        driver.live_migrate(server.id, "host2")

    after = admin.compute.get_server(server.id)
    assert (after.compute_host, after.status) == ("host1", "ACTIVE")
    assert [m.status for m in _migrations(admin, server.id)] == ["failed"]


def test_a_live_migration_refused_by_the_destination_raises_action_failed(driver, admin, make_server, nova):
    server = make_server("refused", "host1")
    nova.fail_next_live_migrations(1, at_precheck=True)

    with pytest.raises(ActionFailed):
        driver.live_migrate(server.id, "host2")

    assert admin.compute.get_server(server.id).compute_host == "host1"
    assert [m.status for m in _migrations(admin, server.id)] == ["error"]


def test_a_deleted_server_is_not_found(driver, admin, make_server):
    server = make_server("ghost", "host1")
    admin.compute.delete_server(server.id)
    admin.compute.wait_for_delete(server, wait=30, interval=0.1)

    with pytest.raises(NotFound):
        driver.live_migrate(server.id, "host2")
    with pytest.raises(NotFound):
        driver.resize(server.id, Resources(cpu=1.0, memory=600))
    assert server.id not in driver.get_inventory().vms


def test_a_migration_slower_than_the_timeout_raises_timed_out(driver, admin, make_server, nova):
    server = make_server("slow", "host1")
    nova.slow_live_migrations(2.0)

    with pytest.raises(TimedOut, match="migrations API"):
        driver.live_migrate(server.id, "host2", timeout=0.5)

    # Nova carries on; the next call waits for that move to finish instead of starting another.
    nova.clear_faults()
    driver.live_migrate(server.id, "host2", timeout=30)
    assert admin.compute.get_server(server.id).compute_host == "host2"


def test_a_server_in_a_live_migration_is_migrating_to_its_target_host_until_it_lands(
    driver, admin, make_server, nova
):
    """Nova shows the source host until the move ends; the migration record names the target,
    which the planner holds room on (docs/planner.md)."""
    server = make_server("in-flight", "host1")
    nova.slow_live_migrations(3.0)
    admin.compute.live_migrate_server(server.id, host="host2", block_migration="auto")

    def in_flight():
        vm = driver.get_inventory().vms[server.id]
        return vm if vm.state is VMState.MIGRATING and vm.migration_target else None

    moving = _poll_for(in_flight, "the inventory to show the move in flight")
    assert (moving.host_id, moving.migration_target) == ("host1", "host2")

    def landed():
        vm = driver.get_inventory().vms[server.id]
        return vm if vm.state is VMState.ACTIVE and vm.host_id == "host2" else None

    assert _poll_for(landed, "the server to land on host2").migration_target is None


def _poll_for(found, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while (value := found()) is None:
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def test_maintenance_disables_and_enables_the_compute_service(driver, admin):
    def service(host: str):
        return next(iter(admin.compute.services(binary="nova-compute", host=host)))

    try:
        driver.set_host_maintenance("host3", True)
        disabled = service("host3")
        assert (disabled.status, disabled.disabled_reason) == ("disabled", driver.options.maintenance_reason)
        assert driver.get_inventory().hosts["host3"].maintenance is True

        driver.set_host_maintenance("host3", False)
        assert service("host3").status == "enabled"
        assert driver.get_inventory().hosts["host3"].maintenance is False
    finally:
        admin.compute.enable_service(service("host3"))

    with pytest.raises(NotFound):
        driver.set_host_maintenance("no-such-host", True)


def test_metrics_come_from_server_diagnostics(driver, make_server, nova):
    server = make_server("busy", "host2")
    mhz = driver.options.mhz_per_vcpu
    nova.set_diagnostics(
        server.id,
        uptime=1000,
        cpu_time_ns=0,
        memory_used_mib=300,
        read_bytes=0,
        write_bytes=0,
        rx_bytes=0,
        tx_bytes=0,
    )
    now = driver.now()
    first = driver.get_metrics(now - 60, now + 60, [server.id])
    assert [(s.metric, s.value) for s in first] == [(Metric.MEMORY, 300.0)]

    # 10 s of guest uptime: 5 s of CPU time, 1000 KiB written+read, 500 KiB sent+received.
    nova.set_diagnostics(
        server.id,
        uptime=1010,
        cpu_time_ns=5e9,
        memory_used_mib=310,
        read_bytes=400 * 1024,
        write_bytes=600 * 1024,
        rx_bytes=200 * 1024,
        tx_bytes=300 * 1024,
    )
    now = driver.now()
    second = {s.metric: s.value for s in driver.get_metrics(now - 60, now + 60, [server.id])}
    assert second == pytest.approx(
        {Metric.MEMORY: 310.0, Metric.CPU: 0.5 * mhz, Metric.DISK_IO: 100.0, Metric.NETWORK: 50.0}
    )

    # Diagnostics have no history: a window that closed an hour ago gets nothing.
    assert driver.get_metrics(now - 7200, now - 3600, [server.id]) == []
