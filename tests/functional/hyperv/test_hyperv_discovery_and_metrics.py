"""Inventory and telemetry of Hyper-V, read as JSON through real pywinrm over HTTPS + NTLM."""

from __future__ import annotations

import time

import pytest

from cotenancy.model import Metric, VMState

MIB = 1024 * 1024


def by_name(inventory, name):
    return next(vm for vm in inventory.vms.values() if vm.name == name)


def test_inventory_reports_hosts_vms_sizes_and_placement(make_driver, site):
    inventory = make_driver().get_inventory()

    assert set(inventory.hosts) == {"HV01", "HV02"}
    assert inventory.hosts["HV01"].capacity.cpu == 8 * 2500
    assert inventory.hosts["HV01"].capacity.memory == 32 * 1024
    assert not inventory.hosts["HV01"].maintenance

    web = by_name(inventory, "web01")
    assert web.id == next(v.id for v in site.vms.values() if v.name == "web01")
    assert web.host_id == "HV01"
    assert web.vcpus == 2
    assert web.size.cpu == 2 * 2500
    assert web.size.memory == 4096
    assert web.state is VMState.ACTIVE
    assert web.allocation.shares == 1000
    assert web.allocation.limit is None

    db = by_name(inventory, "db01")
    assert db.attributes["dynamic_memory"] == "true"
    assert db.size.memory == 8192, "dynamic memory: the maximum is the size the guest can see"
    assert db.allocation.reservation.memory == 2048, "dynamic memory: the minimum is reserved"
    assert by_name(inventory, "batch01").host_id == "HV02"
    assert set(inventory.vms_by_host()) == {"HV01", "HV02"}


def test_host_reserve_is_subtracted_from_capacity(make_driver, site):
    inventory = make_driver(host_reserved_memory_mb=2048).get_inventory()
    assert inventory.hosts["HV02"].capacity.memory == 32 * 1024 - 2048


def test_cluster_nodes_come_from_get_clusternode_and_paused_nodes_are_in_maintenance(make_driver, site):
    for host in site.hosts.values():
        host.cluster = "HVCLU"
    site.add_host("HV03", cluster="HVCLU", node_state="Paused")

    inventory = make_driver(hosts=[], cluster="HVCLU").get_inventory()

    assert set(inventory.hosts) == {"HV01", "HV02", "HV03"}
    assert inventory.hosts["HV03"].maintenance
    assert inventory.hosts["HV01"].cluster == "HVCLU"
    assert "Get-ClusterNode" in site.calls


def test_cpu_and_memory_metrics_follow_the_hosts_counters(make_driver, site):
    driver = make_driver()
    inventory = driver.get_inventory()
    now = time.time()

    samples = driver.get_metrics(now - 60, now + 1)

    values = {(s.vm_id, s.metric): s.value for s in samples}
    web, db = by_name(inventory, "web01"), by_name(inventory, "db01")
    assert values[(web.id, Metric.CPU)] == pytest.approx(1500)
    assert values[(db.id, Metric.CPU)] == pytest.approx(6000)
    assert values[(db.id, Metric.MEMORY)] == pytest.approx(3000, rel=0.01), (
        "dynamic memory: assigned memory x pressure is the guest's demand"
    )
    assert values[(web.id, Metric.MEMORY)] == pytest.approx(1024), "static: Measure-VM AvgRAM"
    assert 0 <= values[(web.id, Metric.CPU_READY)] < 0.05
    assert values[(web.id, Metric.DISK_IO)] == pytest.approx(100, rel=0.02)
    assert values[(web.id, Metric.NETWORK)] == pytest.approx(50, rel=0.05)
    assert all(now - 60 <= s.timestamp < now + 1 for s in samples)
    assert {"Get-Counter", "Measure-VM"} <= set(site.calls)


def test_memory_demand_above_the_dynamic_maximum_shows_as_pressure(make_driver, site):
    driver = make_driver()
    db = next(vm for vm in site.vms.values() if vm.name == "db01")
    db.memory_demand_mb = 12000
    samples = driver.get_metrics(time.time() - 10, time.time() + 1, [db.id])
    memory = next(s.value for s in samples if s.metric == Metric.MEMORY)
    assert memory == pytest.approx(12000, rel=0.01)
    assert memory > driver.get_inventory().vms[db.id].size.memory


def test_contention_shows_as_cpu_ready_and_less_cpu(make_driver, site):
    driver = make_driver()
    inventory = driver.get_inventory()
    web = by_name(inventory, "web01")
    quiet = {s.metric: s.value for s in driver.get_metrics(time.time() - 60, time.time() + 1, [web.id])}

    for vm in site.vms.values():
        if vm.host == "HV01":
            vm.cpu_demand_mhz = vm.processor_count * 2500
    site.add_vm("hog", "HV01", processor_count=8, cpu_demand_mhz=20000)
    busy = {s.metric: s.value for s in driver.get_metrics(time.time() - 0.5, time.time() + 1, [web.id])}

    assert busy[Metric.CPU_READY] > 5 * quiet[Metric.CPU_READY]
    assert busy[Metric.CPU] < 2 * 2500


def test_metrics_of_past_windows_come_from_earlier_readings(make_driver, site):
    driver = make_driver()
    first = driver.get_metrics(time.time() - 10, time.time() + 1)
    taken = first[0].timestamp

    time.sleep(0.05)
    old = driver.get_metrics(taken - 1000, taken - 500, None)
    again = driver.get_metrics(taken, taken + 0.001)

    assert old == []
    assert sorted(again, key=repr) == sorted(first, key=repr)


def test_metrics_filter_by_vm(make_driver, site):
    driver = make_driver()
    web = by_name(driver.get_inventory(), "web01")
    samples = driver.get_metrics(time.time() - 10, time.time() + 1, [web.id])
    assert samples and {s.vm_id for s in samples} == {web.id}
