"""How Nova and placement records become project records (flavors, servers, groups, events)."""

from __future__ import annotations

import pytest
from openstack.compute.v2.flavor import Flavor
from openstack.compute.v2.migration import Migration
from openstack.compute.v2.server import Server
from openstack.compute.v2.server_group import ServerGroup

from cotenancy.drivers.nova import convert
from cotenancy.model import EventKind, Metric, Resources, RuleKind, VMState

MHZ = 2000.0


def flavor(name: str, vcpus: int, ram: int, disk: int = 1, **extra: object) -> Flavor:
    return Flavor.existing(id=name, name=name, vcpus=vcpus, ram=ram, disk=disk, **extra)


CATALOG = [
    flavor("m1.tiny", 1, 512),
    flavor("m1.small", 1, 2048, disk=20),
    flavor("m1.medium", 2, 4096, disk=40),
    flavor("m1.large", 4, 8192, disk=80),
    flavor("c1.medium", 4, 2048, disk=40),
]


@pytest.mark.parametrize(
    ("size", "min_disk", "expected"),
    [
        (Resources(cpu=1000, memory=256), 0, "m1.tiny"),
        (Resources(cpu=2000, memory=513), 0, "m1.small"),  # exactly one vCPU still fits
        (Resources(cpu=2001, memory=1024), 0, "m1.medium"),  # fewest vCPUs wins over RAM
        (Resources(cpu=6000, memory=1024), 0, "c1.medium"),
        (Resources(cpu=6000, memory=4096), 0, "m1.large"),
        (Resources(cpu=1000, memory=256), 30, "m1.medium"),  # root disks never shrink
    ],
)
def test_resize_picks_the_smallest_flavor_that_holds_the_size(size, min_disk, expected):
    chosen = convert.smallest_fitting_flavor(CATALOG, size, MHZ, min_disk)
    assert chosen is not None and chosen.name == expected


def test_no_flavor_fits_gives_none():
    assert convert.smallest_fitting_flavor(CATALOG, Resources(cpu=9000, memory=1), MHZ) is None


def test_disabled_flavors_are_never_chosen():
    catalog = [flavor("old", 1, 512, is_disabled=True), flavor("new", 2, 1024)]
    chosen = convert.smallest_fitting_flavor(catalog, Resources(cpu=100, memory=100), MHZ)
    assert chosen.name == "new"


def test_flavor_size_counts_vcpus_in_mhz_and_reads_io_quotas():
    specs = {
        "quota:disk_total_bytes_sec": str(10 * 1024 * 1024),
        "quota:vif_inbound_average": "1000",
        "quota:vif_outbound_average": "500",
        "quota:cpu_shares": "2048",
    }
    big = flavor("io", 4, 8192, extra_specs=specs)
    assert convert.flavor_size(big, MHZ) == Resources(
        cpu=8000.0, memory=8192.0, disk_io=10240.0, network=1500.0
    )
    assert convert.flavor_allocation(big).shares == 2000
    assert convert.flavor_allocation(flavor("plain", 1, 512)).shares == 1000


def test_a_server_becomes_a_vm_with_its_flavor_host_tenant_and_workload():
    server = Server.existing(
        id="vm-1",
        name="db",
        status="ACTIVE",
        project_id="proj-a",
        compute_host="host2",
        hypervisor_hostname="host2.example",
        availability_zone="az1",
        flavor={"original_name": "m1.medium", "vcpus": 2, "ram": 4096, "disk": 40, "extra_specs": {}},
        metadata={
            "cotenancy:app_type": "database",
            "cotenancy:priority": "9",
            "cotenancy:security_level": "confidential",
            "cotenancy:critical": "yes",
            "owner": "alice",
        },
    )
    vm = convert.server_to_vm(server, MHZ, "cotenancy:")
    assert (vm.id, vm.name, vm.host_id, vm.tenant, vm.flavor) == (
        "vm-1",
        "db",
        "host2",
        "proj-a",
        "m1.medium",
    )
    assert vm.size == Resources(cpu=4000.0, memory=4096.0)
    assert vm.vcpus == 2 and vm.state is VMState.ACTIVE and vm.critical
    assert (vm.workload.app_type, vm.workload.priority, vm.workload.security_level) == (
        "database",
        9,
        "confidential",
    )
    assert vm.attributes["availability_zone"] == "az1"


@pytest.mark.parametrize("priority", ["high", "-3", "42"])
def test_bad_workload_metadata_falls_back_or_clamps(priority):
    workload, critical = convert.workload_from_metadata({"x:priority": priority}, "x:")
    assert 0 <= workload.priority <= 10 and critical is False


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("ACTIVE", VMState.ACTIVE),
        ("MIGRATING", VMState.MIGRATING),
        ("VERIFY_RESIZE", VMState.MIGRATING),
        ("SHUTOFF", VMState.STOPPED),
        ("ERROR", VMState.ERROR),
        ("something-new", VMState.ERROR),
    ],
)
def test_server_status_maps_to_vm_state(status, state):
    assert convert.vm_state(status) is state


@pytest.mark.parametrize(
    ("policy", "kind", "hard"),
    [
        ("affinity", RuleKind.AFFINITY, True),
        ("soft-affinity", RuleKind.AFFINITY, False),
        ("anti-affinity", RuleKind.ANTI_AFFINITY, True),
        ("soft-anti-affinity", RuleKind.ANTI_AFFINITY, False),
    ],
)
def test_server_groups_become_affinity_rules(policy, kind, hard):
    group = ServerGroup.existing(id="g1", name="ha", policy=policy, member_ids=["a", "b"])
    rule = convert.rule_from_server_group(group)
    assert rule is not None
    assert (rule.name, rule.kind, rule.hard, rule.vm_ids) == (
        "server-group:ha",
        kind,
        hard,
        frozenset({"a", "b"}),
    )


def test_old_style_policies_and_lonely_groups():
    legacy = ServerGroup.existing(id="g2", name="", policies=["anti-affinity"], member_ids=["a", "b", "c"])
    assert convert.rule_from_server_group(legacy).name == "server-group:g2"
    alone = ServerGroup.existing(id="g3", name="one", policy="affinity", member_ids=["a"])
    assert convert.rule_from_server_group(alone) is None


def test_capacity_is_total_minus_reserved_times_overcommit():
    inventories = {
        "VCPU": {"total": 10, "reserved": 2, "allocation_ratio": 4.0},
        "MEMORY_MB": {"total": 8192, "reserved": 512, "allocation_ratio": 1.5},
        "DISK_GB": {"total": 1000, "reserved": 0, "allocation_ratio": 1.0},
    }
    assert convert.capacity_from_inventories(inventories, MHZ) == Resources(
        cpu=8 * 4.0 * MHZ, memory=7680 * 1.5
    )
    assert convert.capacity_from_inventories({}, MHZ) == Resources()


def test_migration_records_become_events():
    live = Migration.existing(
        id=7,
        server_id="vm-1",
        migration_type="live-migration",
        status="completed",
        source_compute="host1",
        dest_compute="host2",
        updated_at="2026-01-02T03:04:05.000000",
    )
    event = convert.migration_event(live)
    assert event.kind is EventKind.MIGRATION and event.vm_ids == ("vm-1",)
    assert event.host_id == "host2" and event.details["status"] == "completed"
    assert event.timestamp == 1767323045.0  # 2026-01-02T03:04:05Z
    resize = Migration.existing(
        id=8, server_id="vm-1", migration_type="resize", status="confirmed", created_at="2026-01-02T03:04:05Z"
    )
    assert convert.migration_event(resize).kind is EventKind.RESIZE


def test_the_target_of_a_move_in_flight_is_the_destination_of_its_unfinished_migration():
    def record(status: str, dest: str) -> Migration:
        return Migration.existing(
            id=status,
            migration_type="live-migration",
            status=status,
            source_compute="host1",
            dest_compute=dest,
        )

    earlier = [record("completed", "host3"), record("failed", "host2")]
    assert convert.migration_target([*earlier, record("running", "host2")], "host1") == "host2"
    assert convert.migration_target([*earlier, record("preparing", "host2")], "host1") == "host2"
    assert convert.migration_target(earlier, "host1") is None  # nothing in flight: no target
    assert convert.migration_target([record("running", "host1")], "host1") is None


def test_diagnostics_give_memory_at_once_and_rates_from_the_second_reading():
    def diag(uptime, cpu_ns, used, disk, net):
        return {
            "uptime": uptime,
            "cpu_details": [{"time": cpu_ns / 2}, {"time": cpu_ns / 2}],
            "memory_details": {"maximum": 4096, "used": used},
            "disk_details": [{"read_bytes": disk, "write_bytes": 0}],
            "nic_details": [{"rx_octets": net, "tx_octets": 0}],
        }

    first = convert.diagnostics_reading(diag(100, 0, 1000, 0, 0), timestamp=50.0)
    assert [(s.metric, s.value) for s in convert.diagnostics_samples("v", None, first, MHZ)] == [
        (Metric.MEMORY, 1000.0)
    ]
    # Wall time says 1000 s passed, the guest's uptime says 20 s: the hypervisor clock wins.
    second = convert.diagnostics_reading(diag(120, 30e9, 1100, 20 * 2048, 20 * 1024), timestamp=1050.0)
    values = {s.metric: s.value for s in convert.diagnostics_samples("v", first, second, MHZ)}
    assert values == {Metric.MEMORY: 1100.0, Metric.CPU: 1.5 * MHZ, Metric.DISK_IO: 2.0, Metric.NETWORK: 1.0}


def test_counters_that_went_backwards_give_no_rate():
    before = convert.DiagnosticsReading(10.0, 500.0, 9e9, None, 100.0, 100.0)
    after = convert.DiagnosticsReading(20.0, 5.0, 1e9, None, 50.0, 50.0)  # rebooted
    assert convert.diagnostics_samples("v", before, after, MHZ) == []
